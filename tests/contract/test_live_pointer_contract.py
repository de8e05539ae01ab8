"""The live pointer store's contract, the same tests on every adapter: in memory (always) and
Firestore (the official emulator, started once per session; marked integration).

What ``predict`` and the deployer rely on: a missing pointer reads as generation 0 with nothing
live; a write succeeds only from the stored generation; of concurrent writers from the same
generation exactly one wins; two concurrent deploys through the use case: exactly one goes live
and the other is refused; a watcher sees every change.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.errors import PermanentError
from shared.ports import LivePointerStore
from shared.serving.deployment import Deployer, DeployRequest, GateSettings
from shared.serving.pointer import LivePointer, deploy
from tests.serving_fakes import InMemoryPointerStore, RecordingWarehouse, model_card, tiny_onnx

AT = datetime(2024, 5, 1, 3, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def firestore_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a Firestore emulator this session started (and stops, as a group)."""
    from devkit.local.processes import (
        firestore_emulator_argv,
        free_port,
        start_process,
        stop_processes,
        wait_until,
    )

    if shutil.which("gcloud") is None:
        pytest.skip("gcloud (the Firestore emulator) is not installed")
    import os

    from devkit.local.processes import StackError, firestore_ready

    logs = tmp_path_factory.mktemp("firestore")
    stack_id = f"contract-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "SHOPML_STACK_ID": stack_id}
    # free_port() only finds a port free now: another process may take it before the Java
    # emulator binds (seen once in a full run: BindException). A new port is then tried.
    for attempt in range(3):
        port = free_port()
        process = start_process("firestore", firestore_emulator_argv(port), env, logs, Path.cwd())
        try:
            wait_until(process, firestore_ready(port), 60, "Firestore emulator")
            break
        except StackError as exc:
            stop_processes([process.pid], stack_id)
            if "bind" not in str(exc).lower() or attempt == 2:
                raise
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop_processes([process.pid], stack_id)


@pytest.fixture(params=["memory", pytest.param("firestore", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest) -> LivePointerStore:
    if request.param == "memory":
        return InMemoryPointerStore()
    from shared.adapters.firestore_pointer import FirestorePointerStore

    host = request.getfixturevalue("firestore_emulator")
    return FirestorePointerStore(
        f"contract-{uuid.uuid4().hex[:8]}", collection="live_pointers", emulator_host=host
    )


def model() -> str:
    return f"m{uuid.uuid4().hex[:10]}"


def test_a_model_without_a_pointer_reads_as_generation_zero_with_nothing_live(
    store: LivePointerStore,
) -> None:
    name = model()
    found = store.get(name)
    assert found == LivePointer(name) and found.generation == 0 and not found.is_live


def test_a_swap_from_the_stored_generation_is_written_and_read_back_whole(store: LivePointerStore) -> None:
    name = model()
    first = deploy(LivePointer(name), "1.0.0", AT, "deploy 1.0.0")
    assert store.compare_and_swap(name, 0, first)
    second = deploy(first, "1.1.0", AT, "deploy 1.1.0")
    assert store.compare_and_swap(name, 1, second)
    found = store.get(name)
    assert found.to_dict() == second.to_dict()
    assert (found.live_slot, found.live_version, found.previous_version) == ("green", "1.1.0", "1.0.0")


def test_a_swap_from_a_stale_generation_writes_nothing(store: LivePointerStore) -> None:
    name = model()
    first = deploy(LivePointer(name), "1.0.0", AT, "d")
    assert store.compare_and_swap(name, 0, first)
    stale = deploy(LivePointer(name), "9.0.0", AT, "stale")
    assert store.compare_and_swap(name, 0, stale) is False
    assert store.get(name).live_version == "1.0.0"


def test_a_new_pointer_must_be_the_next_generation_of_the_same_model(store: LivePointerStore) -> None:
    name = model()
    with pytest.raises(PermanentError):
        store.compare_and_swap(name, 0, LivePointer(name, generation=5))
    with pytest.raises(PermanentError):
        store.compare_and_swap(name, 0, deploy(LivePointer(model()), "1.0.0", AT, "other model"))


def test_eight_concurrent_swaps_from_the_same_generation_have_exactly_one_winner(
    store: LivePointerStore,
) -> None:
    name = model()
    base = deploy(LivePointer(name), "1.0.0", AT, "d")
    assert store.compare_and_swap(name, 0, base)
    barrier = threading.Barrier(8)
    results: list[tuple[str, bool]] = []
    lock = threading.Lock()

    def attempt(number: int) -> None:
        candidate = deploy(base, f"2.{number}.0", AT, f"writer {number}")
        barrier.wait()
        won = store.compare_and_swap(name, base.generation, candidate)
        with lock:
            results.append((candidate.live_version or "", won))

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    winners = [version for version, won in results if won]
    assert len(results) == 8 and len(winners) == 1
    found = store.get(name)
    assert found.generation == 2 and found.live_version == winners[0]


class ReadTogether:
    """A ``LivePointerStore`` around another that holds each thread's first read until every
    thread has read: the deploys then surely start from the same generation."""

    def __init__(self, inner: LivePointerStore, parties: int) -> None:
        self.inner = inner
        self.barrier = threading.Barrier(parties)
        self.readers: set[int] = set()

    def get(self, model: str) -> LivePointer:
        found = self.inner.get(model)
        if threading.get_ident() not in self.readers:
            self.readers.add(threading.get_ident())
            self.barrier.wait(timeout=60)
        return found

    def compare_and_swap(self, model: str, expected_generation: int, new: LivePointer) -> bool:
        return self.inner.compare_and_swap(model, expected_generation, new)

    def watch(self, model: str, callback: Callable[[LivePointer], None]) -> Callable[[], None]:
        return self.inner.watch(model, callback)


def test_two_concurrent_deploys_exactly_one_goes_live_and_the_other_is_refused(
    store: LivePointerStore, tmp_path: Path
) -> None:
    from shared.adapters.object_store_registry import ObjectStoreRegistry
    from shared.adapters.object_stores import LocalObjectStore

    name = model()
    registry = ObjectStoreRegistry(LocalObjectStore(tmp_path / "registry"))
    for version in ("1.0.0", "1.1.0"):
        registry.register(name, version, tiny_onnx(), model_card(), aliases=())
    warehouse = RecordingWarehouse()
    # The race is under test, not the latency gate: a budget no busy machine misses.
    gates = GateSettings(latency_budget_ms=60_000, latency_samples=10)
    deployer = Deployer(registry, ReadTogether(store, 2), warehouse, gate_settings=gates)
    outcomes: list[Any] = []

    def deploy_version(version: str) -> None:
        outcomes.append(deployer.deploy(DeployRequest(name, version, requested_by="test")))

    threads = [threading.Thread(target=deploy_version, args=(v,)) for v in ("1.0.0", "1.1.0")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(o.action for o in outcomes) == ["deploy", "refused"]
    winner = next(o for o in outcomes if o.action == "deploy")
    loser = next(o for o in outcomes if o.action == "refused")
    live = store.get(name)
    assert live.generation == 1 and live.live_version == winner.version
    assert loser.message.startswith("conflict") and loser.pointer.generation == 0
    assert registry.get(name, "live") is not None and registry.get(name, "live").version == winner.version  # type: ignore[union-attr]
    rows = warehouse.rows["model_deployments"]
    assert sorted((r["action"], r["version"]) for r in rows) == sorted(
        [("deploy", winner.version), ("refused", loser.version)]
    )


def test_a_watcher_sees_the_current_pointer_then_changes_in_order_up_to_the_latest(
    store: LivePointerStore,
) -> None:
    # Firestore may merge changes that land close together into one snapshot: the contract is
    # the current pointer first, then generations in order, ending with the newest.
    name = model()
    seen: list[int] = []
    first_seen = threading.Event()
    latest_seen = threading.Event()

    def on_change(pointer: LivePointer) -> None:
        seen.append(pointer.generation)
        first_seen.set()
        if pointer.generation == 2:
            latest_seen.set()

    stop: Callable[[], None] = store.watch(name, on_change)
    try:
        assert first_seen.wait(10), "the watcher was not called with the current pointer"
        first = deploy(LivePointer(name), "1.0.0", AT, "d")
        assert store.compare_and_swap(name, 0, first)
        assert store.compare_and_swap(name, 1, deploy(first, "1.1.0", AT, "d"))
        assert latest_seen.wait(10), f"the watcher saw only generations {seen}"
    finally:
        stop()
    assert seen[0] == 0 and seen[-1] == 2 and seen == sorted(seen)
