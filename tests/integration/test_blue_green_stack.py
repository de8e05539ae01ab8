"""Blue-green on the real local parts: the stack's Firestore emulator, Pub/Sub emulator and the
deploy_model and rollback functions under functions-framework, driven as the trainer and a
person drive them (register_model's event; ``shopml deploy`` / ``shopml rollback``)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit.deploy_cli import EXIT_OK, EXIT_REFUSED, run_deploy, run_rollback
from devkit.local.stack import LocalStack, StackInfo
from shared import bootstrap
from shared.adapters.firestore_pointer import FirestorePointerStore
from shared.registry import register_model
from shared.serving.pointer import LivePointer
from tests.serving_fakes import model_card, tiny_onnx

pytestmark = pytest.mark.integration
MODEL = "demand"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    home = tmp_path_factory.mktemp("bluegreen")
    extra = {"SHOPML_DEPLOY_LATENCY_BUDGET_MS": "60000", "SHOPML_DEPLOY_LATENCY_SAMPLES": "10"}
    with LocalStack(home, functions=["deploy_model", "rollback"], extra_env=extra) as info:
        yield info


def pointer_store(info: StackInfo) -> FirestorePointerStore:
    settings = info.settings()
    return FirestorePointerStore(settings.project, emulator_host=settings.firestore_emulator_host)


def wait_for(info: StackInfo, check: object, timeout_s: float = 30.0) -> LivePointer:
    store = pointer_store(info)
    deadline = time.monotonic() + timeout_s
    while True:
        pointer = store.get(MODEL)
        if check(pointer):  # type: ignore[operator]
            return pointer
        if time.monotonic() > deadline:
            raise AssertionError(f"pointer never got there: {pointer}")
        time.sleep(0.1)


def register(info: StackInfo, version: str, **card: object) -> None:
    bootstrap.override(settings=info.settings())
    try:
        register_model(
            bootstrap.registry(),
            bootstrap.publisher(),
            MODEL,
            version,
            tiny_onnx(),
            model_card(**card),  # type: ignore[arg-type]
            promote=card.get("decision", "promote") == "promote",
        )
    finally:
        bootstrap.reset()


def test_the_stack_runs_the_firestore_emulator_and_says_where(stack: StackInfo) -> None:
    assert stack.firestore_host and stack.env["FIRESTORE_EMULATOR_HOST"] == stack.firestore_host
    state = json.loads((Path(stack.home) / "run" / "stack.json").read_text())
    assert state["env"]["FIRESTORE_EMULATOR_HOST"] == stack.firestore_host
    assert "firestore-emulator" in state["pids"]


def test_register_deploy_cli_deploy_then_rollback_through_the_topic(
    stack: StackInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOPML_HOME", stack.home)
    register(stack, "1.0.0")
    first = wait_for(stack, lambda p: p.live_version == "1.0.0")
    assert first.live_slot == "blue"

    # A version training refused: deploy_model leaves it; a person may force it, and it says so.
    register(stack, "1.1.0", decision="reject")
    out = io.StringIO()
    assert run_deploy(MODEL, "1.1.0", home=Path(stack.home), out=out) == EXIT_REFUSED
    assert "promoted_by_training" in out.getvalue()
    register(stack, "1.2.0")
    second = wait_for(stack, lambda p: p.live_version == "1.2.0")
    assert (second.live_slot, second.previous_version) == ("green", "1.0.0")

    out = io.StringIO()
    code = run_rollback(MODEL, "forecasts too high", via_topic=True, home=Path(stack.home), out=out)
    assert code == EXIT_OK, out.getvalue()
    back = pointer_store(stack).get(MODEL)
    assert (back.live_version, back.live_slot) == ("1.0.0", "blue")

    # Nothing older than 1.0.0 that training promoted: a second rollback changes nothing.
    out = io.StringIO()
    assert run_rollback(MODEL, "again", home=Path(stack.home), out=out) == EXIT_REFUSED
    assert "nothing to roll back to" in out.getvalue()
    assert pointer_store(stack).get(MODEL).generation == back.generation

    out = io.StringIO()
    assert run_deploy(MODEL, "1.1.0", force=True, home=Path(stack.home), out=out) == EXIT_OK
    assert pointer_store(stack).get(MODEL).live_version == "1.1.0"
    assert "forced" in out.getvalue()
