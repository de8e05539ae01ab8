"""deploy_model and rollback through the HTTP layer: real CloudEvents carrying Pub/Sub pushes,
as register_model and a rollback requester publish them."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from shared import bootstrap
from shared.adapters.object_store_registry import ObjectStoreRegistry
from shared.adapters.object_stores import LocalObjectStore
from shared.errors import TransientError
from shared.ports import ModelVersion
from shared.registry import register_model
from shared.serving.pointer import LivePointer
from shared.settings import Settings
from tests.serving_fakes import InMemoryPointerStore, RecordingWarehouse, model_card, tiny_onnx

MODEL = "demand"


class CapturingPublisher:
    """An ``EventPublisher`` that keeps what it was given (register_model publishes here)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes, dict[str, str]]] = []

    def publish(self, topic: str, data: bytes, attributes: Any) -> str:
        self.messages.append((topic, data, dict(attributes)))
        return str(len(self.messages))


class UnreachableStore(InMemoryPointerStore):
    def get(self, model: str) -> LivePointer:
        raise TransientError("Firestore unavailable")


def push_event(data: bytes, attributes: dict[str, str], topic: str, message_id: str = "m-1") -> CloudEvent:
    message = {
        "data": base64.b64encode(data).decode(),
        "attributes": attributes,
        "messageId": message_id,
        "publishTime": "2025-03-02T02:00:00Z",
    }
    return CloudEvent(
        {
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
            "source": f"//pubsub.googleapis.com/projects/shopml-local/topics/{topic}",
        },
        {"message": message},
    )


def post(client: Any, event: CloudEvent) -> Any:
    headers, body = to_binary(event)
    return client.post("/", headers=headers, data=body)


class Parts:
    def __init__(self, root: Path) -> None:
        self.registry = ObjectStoreRegistry(LocalObjectStore(root / "registry"))
        self.store = InMemoryPointerStore()
        self.warehouse = RecordingWarehouse()
        self.publisher = CapturingPublisher()

    def register(self, version: str, promote: bool = True, **card: Any) -> ModelVersion:
        return register_model(
            self.registry, self.publisher, MODEL, version, tiny_onnx(), model_card(**card), promote=promote
        )

    def model_event(self) -> CloudEvent:
        topic, data, attributes = self.publisher.messages[-1]
        assert topic == "model-events"
        return push_event(data, attributes, topic)

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.warehouse.rows.get("model_deployments", [])


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Parts]:
    made = Parts(tmp_path)
    settings = Settings.from_env(
        {
            "SHOPML_HOME": str(tmp_path),
            "SHOPML_DEPLOY_LATENCY_BUDGET_MS": "60000",
            "SHOPML_DEPLOY_LATENCY_SAMPLES": "10",
        }
    )
    bootstrap.override(
        settings=settings, registry=made.registry, live_pointer=made.store, warehouse=made.warehouse
    )
    yield made
    bootstrap.reset()


def rollback_event(key: str, reason: str = "forecasts far too high") -> CloudEvent:
    body = {"model": MODEL, "reason": reason, "requested_by": "drift_monitor", "idempotency_key": key}
    return push_event(json.dumps(body).encode(), {}, "rollback-requests", message_id=key)


def test_candidate_registered_goes_live_through_the_gates(function_client, parts: Parts) -> None:  # type: ignore[no-untyped-def]
    parts.register("1.0.0")
    response = post(function_client("deploy_model"), parts.model_event())
    assert response.status_code == 200
    live = parts.store.get(MODEL)
    assert live.live_version == "1.0.0" and parts.registry.get(MODEL, "live").version == "1.0.0"  # type: ignore[union-attr]
    (row,) = parts.rows
    assert row["action"] == "deploy" and row["requested_by"] == "model-events"
    assert all(verdict["passed"] for verdict in json.loads(row["gates"]).values())


def test_a_redelivered_candidate_event_deploys_once(function_client, parts: Parts) -> None:  # type: ignore[no-untyped-def]
    parts.register("1.0.0")
    client = function_client("deploy_model")
    assert post(client, parts.model_event()).status_code == 200
    assert post(client, parts.model_event()).status_code == 200
    assert parts.store.get(MODEL).generation == 1 and len(parts.rows) == 1


def test_a_rejected_version_event_deploys_nothing(function_client, parts: Parts) -> None:  # type: ignore[no-untyped-def]
    parts.register("1.0.0", promote=False, decision="reject")
    assert post(function_client("deploy_model"), parts.model_event()).status_code == 200
    assert not parts.store.get(MODEL).is_live and parts.rows == []


def test_a_candidate_failing_a_gate_is_acknowledged_recorded_and_not_live(
    function_client: Any, parts: Parts
) -> None:
    parts.register("1.0.0", parity_ok=None)
    assert post(function_client("deploy_model"), parts.model_event()).status_code == 200
    assert not parts.store.get(MODEL).is_live
    assert parts.rows[-1]["action"] == "refused" and "onnx_parity" in parts.rows[-1]["reason"]


def test_a_malformed_model_event_is_acknowledged(function_client, parts: Parts) -> None:  # type: ignore[no-untyped-def]
    event = push_event(b"not json", {"event_type": "candidate_registered"}, "model-events")
    assert post(function_client("deploy_model"), event).status_code == 200
    assert not parts.store.get(MODEL).is_live


def test_an_unreachable_pointer_store_makes_pub_sub_redeliver(function_client, parts: Parts) -> None:  # type: ignore[no-untyped-def]
    parts.register("1.0.0")
    bootstrap.override(live_pointer=UnreachableStore())
    assert post(function_client("deploy_model"), parts.model_event()).status_code == 500


def test_a_rollback_request_flips_back_once_per_key_and_records_who_and_why(
    function_client: Any, parts: Parts
) -> None:
    deploy_client = function_client("deploy_model")
    for version in ("1.0.0", "1.1.0"):
        parts.register(version)
        assert post(deploy_client, parts.model_event()).status_code == 200
    client = function_client("rollback")
    assert post(client, rollback_event("drift-2025-03-02")).status_code == 200
    assert post(client, rollback_event("drift-2025-03-02")).status_code == 200
    live = parts.store.get(MODEL)
    assert live.live_version == "1.0.0" and live.generation == 3
    assert parts.registry.get(MODEL, "live").version == "1.0.0"  # type: ignore[union-attr]
    rollbacks = [r for r in parts.rows if r["action"] == "rollback"]
    assert len(rollbacks) == 1
    assert (
        rollbacks[0]["requested_by"] == "drift_monitor" and rollbacks[0]["reason"] == "forecasts far too high"
    )


def test_a_rollback_with_nowhere_to_go_is_acknowledged_and_recorded(function_client, parts: Parts) -> None:  # type: ignore[no-untyped-def]
    parts.register("1.0.0")
    assert post(function_client("deploy_model"), parts.model_event()).status_code == 200
    assert post(function_client("rollback"), rollback_event("r-1")).status_code == 200
    assert parts.store.get(MODEL).live_version == "1.0.0"
    assert parts.rows[-1]["action"] == "refused" and "nothing to roll back to" in parts.rows[-1]["reason"]


def test_a_rollback_request_without_a_key_is_acknowledged_and_changes_nothing(
    function_client: Any, parts: Parts
) -> None:
    body = json.dumps({"model": MODEL, "reason": "x", "requested_by": "me"}).encode()
    event = push_event(body, {}, "rollback-requests")
    assert post(function_client("rollback"), event).status_code == 200
    assert parts.store.get(MODEL).generation == 0
