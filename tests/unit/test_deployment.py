"""Deploy through gates and roll back: what goes live, what is refused and why, what is recorded."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.object_store_registry import ObjectStoreRegistry
from shared.adapters.object_stores import LocalObjectStore
from shared.errors import PermanentError
from shared.serving.deployment import (
    GATES,
    Deployer,
    DeployRequest,
    GateSettings,
    RollbackRequest,
    deploy_request_from_event,
    rollback_request_from_message,
)
from tests.serving_fakes import InMemoryPointerStore, RecordingWarehouse, model_card, tiny_onnx

AT = datetime(2024, 5, 1, 3, 0, tzinfo=UTC)
MODEL = "demand"
# Latency is a benchmark's business; these tests keep the gate but with room for a busy machine.
ROOMY = GateSettings(latency_budget_ms=60_000, latency_samples=10)


class World:
    def __init__(self, root: Path, gates: GateSettings = ROOMY) -> None:
        self.registry = ObjectStoreRegistry(LocalObjectStore(root / "registry"))
        self.store = InMemoryPointerStore()
        self.warehouse = RecordingWarehouse()
        self.deployer = Deployer(
            self.registry, self.store, self.warehouse, gate_settings=gates, clock=lambda: AT
        )

    def register(self, version: str, onnx: bytes | None = None, **card: Any) -> None:
        self.registry.register(MODEL, version, onnx or tiny_onnx(), model_card(**card), aliases=())

    def deploy(self, version: str, **options: Any) -> Any:
        return self.deployer.deploy(DeployRequest(MODEL, version, requested_by="tester", **options))

    def rollback(self, key: str, reason: str = "forecasts too high") -> Any:
        return self.deployer.rollback(RollbackRequest(MODEL, reason, "on-call", key))

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.warehouse.rows.get("model_deployments", [])

    def alias(self, name: str) -> str | None:
        found = self.registry.get(MODEL, name)
        return None if found is None else found.version


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_a_promoted_version_passes_every_gate_goes_live_and_is_recorded(world: World) -> None:
    world.register("1.0.0")
    outcome = world.deploy("1.0.0", reason="candidate_registered", idempotency_key="k1")
    assert outcome.action == "deploy" and outcome.changed
    assert [g.name for g in outcome.gates] == list(GATES) and all(g.passed for g in outcome.gates)
    live = world.store.get(MODEL)
    assert (live.live_slot, live.live_version, live.generation) == ("blue", "1.0.0", 1)
    assert world.alias("live") == "1.0.0"
    (row,) = world.rows
    assert row["action"] == "deploy" and row["version"] == "1.0.0" and row["from_version"] is None
    assert row["slot"] == "blue" and row["generation"] == 1 and row["forced"] is False
    assert row["idempotency_key"] == "k1" and row["requested_by"] == "tester" and row["decided_at"] == AT
    gates = json.loads(row["gates"])
    assert set(gates) == set(GATES) and gates["latency"]["p99_ms"] > 0 and gates["smoke"]["negative"] == 0


def test_the_next_version_goes_to_the_other_slot_and_previous_follows(world: World) -> None:
    world.register("1.0.0")
    world.register("1.1.0")
    world.deploy("1.0.0")
    outcome = world.deploy("1.1.0")
    live = world.store.get(MODEL)
    assert (live.live_slot, live.live_version, live.previous_version) == ("green", "1.1.0", "1.0.0")
    assert outcome.from_version == "1.0.0"
    assert (world.alias("live"), world.alias("previous")) == ("1.1.0", "1.0.0")


@pytest.mark.parametrize(
    ("card", "gate", "says"),
    [
        (
            {"decision": "reject", "reasons": ["WAPE 0.9 is not 1.0% below zero (0.8)"]},
            "promoted_by_training",
            "WAPE 0.9",
        ),
        ({"baseline_verdict": "fail"}, "promoted_by_training", "not promoted"),
        ({"champion_decision": "reject"}, "promoted_by_training", "not promoted"),
        ({"parity_ok": None}, "onnx_parity", "no parity recorded"),
        ({"parity_ok": False}, "onnx_parity", "parity failed"),
    ],
)
def test_a_card_that_fails_a_gate_leaves_the_live_model_and_says_why(
    world: World, card: dict[str, Any], gate: str, says: str
) -> None:
    world.register("1.0.0")
    world.deploy("1.0.0")
    world.register("1.1.0", **card)
    outcome = world.deploy("1.1.0")
    assert outcome.action == "refused" and gate in outcome.message and says in outcome.message
    failed = {g.name for g in outcome.gates if not g.passed}
    assert failed == {gate}
    assert world.store.get(MODEL).live_version == "1.0.0" and world.alias("live") == "1.0.0"
    row = world.rows[-1]
    assert row["action"] == "refused" and row["requested_action"] == "deploy" and row["version"] == "1.1.0"
    assert json.loads(row["gates"])[gate]["passed"] is False and row["generation"] == 1


def test_a_model_with_negative_forecasts_fails_the_smoke_gate(world: World) -> None:
    world.register("1.0.0", onnx=tiny_onnx(negative=True))
    outcome = world.deploy("1.0.0")
    smoke = next(g for g in outcome.gates if g.name == "smoke")
    assert outcome.action == "refused" and not smoke.passed and smoke.measured["negative"] > 0
    assert not world.store.get(MODEL).is_live


def test_a_model_slower_than_the_budget_fails_the_latency_gate(tmp_path: Path) -> None:
    strict = World(tmp_path, GateSettings(latency_budget_ms=1e-6, latency_samples=5))
    strict.register("1.0.0")
    outcome = strict.deploy("1.0.0")
    latency = next(g for g in outcome.gates if g.name == "latency")
    assert outcome.action == "refused" and not latency.passed and "budget" in latency.detail


def test_a_model_that_does_not_load_fails_latency_and_smoke(world: World) -> None:
    world.register("1.0.0", onnx=b"not an onnx model")
    outcome = world.deploy("1.0.0")
    failed = {g.name for g in outcome.gates if not g.passed}
    assert outcome.action == "refused" and failed == {"latency", "smoke"}


def test_force_skips_the_gates_and_the_record_says_so(world: World) -> None:
    world.register("1.0.0", decision="reject")
    outcome = world.deploy("1.0.0", force=True)
    assert outcome.action == "deploy" and outcome.gates == () and "forced" in outcome.message
    assert world.rows[-1]["forced"] is True and json.loads(world.rows[-1]["gates"]) == {}


def test_an_unregistered_version_is_refused_even_when_forced(world: World) -> None:
    outcome = world.deploy("3.0.0", force=True)
    assert outcome.action == "refused" and "not registered" in outcome.message
    assert world.rows[-1]["action"] == "refused"


def test_an_automatic_deploy_never_replaces_a_newer_live_version_a_person_may(world: World) -> None:
    world.register("1.0.0")
    world.register("1.1.0")
    world.deploy("1.1.0")
    assert world.deploy("1.0.0").action == "refused"
    assert world.deploy("1.0.0", require_newer=False).action == "deploy"


def test_the_same_deploy_request_twice_deploys_once_and_records_once(world: World) -> None:
    world.register("1.0.0")
    assert world.deploy("1.0.0", idempotency_key="candidate_registered:demand:1.0.0").action == "deploy"
    again = world.deploy("1.0.0", idempotency_key="candidate_registered:demand:1.0.0")
    assert again.action == "duplicate" and world.store.get(MODEL).generation == 1 and len(world.rows) == 1


def test_rollback_flips_back_and_records_who_and_why(world: World) -> None:
    world.register("1.0.0")
    world.register("1.1.0")
    world.deploy("1.0.0")
    world.deploy("1.1.0")
    outcome = world.rollback("r-1")
    live = world.store.get(MODEL)
    assert outcome.action == "rollback" and (live.live_slot, live.live_version) == ("blue", "1.0.0")
    assert (world.alias("live"), world.alias("previous")) == ("1.0.0", "1.1.0")
    row = world.rows[-1]
    assert row["action"] == "rollback" and row["version"] == "1.0.0" and row["from_version"] == "1.1.0"
    assert (
        row["reason"] == "forecasts too high"
        and row["requested_by"] == "on-call"
        and row["idempotency_key"] == "r-1"
    )


def test_the_same_rollback_request_rolls_back_once(world: World) -> None:
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        world.register(version)
        world.deploy(version)
    assert world.rollback("r-1").action == "rollback"
    again = world.rollback("r-1")
    assert again.action == "duplicate" and world.store.get(MODEL).live_version == "1.1.0"
    assert [r["action"] for r in world.rows].count("rollback") == 1


def test_a_second_rollback_loads_the_next_older_promoted_version_never_the_one_left(world: World) -> None:
    world.register("1.0.0")
    world.register("1.1.0", decision="reject")  # never allowed to serve
    world.register("1.2.0")
    world.register("1.3.0")
    for version in ("1.0.0", "1.2.0", "1.3.0"):
        world.deploy(version)
    assert world.rollback("r-1").version == "1.2.0"
    second = world.rollback("r-2")
    live = world.store.get(MODEL)
    assert second.action == "rollback" and live.live_version == "1.0.0"
    assert live.slot_version(live.live_slot or "blue") == "1.0.0" and set(live.retired) == {"1.3.0", "1.2.0"}


def test_a_rollback_with_nowhere_to_go_changes_nothing_and_says_so(world: World) -> None:
    world.register("1.0.0")
    world.register("1.1.0")
    world.deploy("1.0.0")
    world.deploy("1.1.0")
    world.rollback("r-1")
    before = world.store.get(MODEL)
    outcome = world.rollback("r-2")
    assert outcome.action == "refused" and "nothing to roll back to" in outcome.message
    assert world.store.get(MODEL) == before
    assert world.rows[-1]["action"] == "refused" and world.rows[-1]["requested_action"] == "rollback"


def test_a_rollback_with_nothing_live_is_refused(world: World) -> None:
    outcome = world.rollback("r-1")
    assert outcome.action == "refused" and "no version" in outcome.message


def test_only_candidate_registered_events_ask_for_a_deploy_keyed_by_model_and_version() -> None:
    data = {"model": "demand", "version": "1.3.0", "decision": "candidate"}
    request = deploy_request_from_event(data, {"event_type": "candidate_registered"})
    assert request is not None and (request.model, request.version) == ("demand", "1.3.0")
    assert request.idempotency_key == "candidate_registered:demand:1.3.0" and request.require_newer
    assert deploy_request_from_event(data, {"event_type": "rejected"}) is None
    with pytest.raises(PermanentError):
        deploy_request_from_event(
            {"model": "demand", "version": "latest"}, {"event_type": "candidate_registered"}
        )


def test_a_rollback_request_needs_every_field() -> None:
    good = {"model": "demand", "reason": "drift", "requested_by": "drift_monitor", "idempotency_key": "d-1"}
    assert rollback_request_from_message(good).idempotency_key == "d-1"
    with pytest.raises(PermanentError, match="reason"):
        rollback_request_from_message({**good, "reason": " "})
    with pytest.raises(PermanentError, match="idempotency_key"):
        rollback_request_from_message({k: v for k, v in good.items() if k != "idempotency_key"})
