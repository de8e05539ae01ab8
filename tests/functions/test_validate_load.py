"""validate_load through the HTTP layer (functions-framework, real CloudEvents): the status code
is what Pub/Sub acts on. 2xx acknowledges (loaded, or quarantined: a permanent problem is never
retried), 5xx asks for redelivery (a transient warehouse error), and no answer carries a trace."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent

from shared import bootstrap
from shared.errors import TransientError
from shared.settings import Settings
from tests.fakes import MemoryWarehouse

ORDER = (Path(__file__).resolve().parents[1] / "fixtures" / "webhooks" / "orders_create.json").read_bytes()


def pubsub_event(body: bytes, webhook_id: str = "wh-http-1", message_id: str = "m-http-1") -> CloudEvent:
    """What the Pub/Sub push subscription delivers, as functions-framework receives it."""
    message = {
        "data": base64.b64encode(body).decode(),
        "attributes": {
            "shopify_topic": "orders/create",
            "shop_domain": "demo-store.myshopify.com",
            "webhook_id": webhook_id,
            "api_version": "2025-07",
            "source": "webhook",
        },
        "messageId": message_id,
        "publishTime": "2025-03-01T10:15:01Z",
    }
    return CloudEvent(
        {
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
            "source": "//pubsub.googleapis.com/projects/shopml-local/topics/shopify-events",
            "id": message_id,
        },
        {"message": message, "subscription": "projects/shopml-local/subscriptions/validate-load"},
    )


@pytest.fixture
def warehouse() -> Iterator[MemoryWarehouse]:
    memory = MemoryWarehouse()
    bootstrap.override(settings=Settings.from_env({}), warehouse=memory)
    yield memory
    bootstrap.reset()


@pytest.fixture
def client(function_client: Any, warehouse: MemoryWarehouse) -> Any:
    return function_client("validate_load")


def post(client: Any, event: CloudEvent, *, structured: bool = False) -> Any:
    headers, body = (to_structured if structured else to_binary)(event)
    return client.post("/", headers=headers, data=body)


def assert_no_trace(response: Any) -> None:
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and 'File "' not in text and ".py" not in text, text


def test_a_valid_order_is_loaded_and_acknowledged(client: Any, warehouse: MemoryWarehouse) -> None:
    response = post(client, pubsub_event(ORDER))
    assert 200 <= response.status_code < 300
    assert_no_trace(response)
    assert [r["status"] for r in warehouse.tables["raw_events"]] == ["loaded"]
    assert len(warehouse.tables["orders"]) == 1 and warehouse.tables["order_line_items"]


def test_a_structured_cloudevent_is_loaded_too(client: Any, warehouse: MemoryWarehouse) -> None:
    response = post(client, pubsub_event(ORDER), structured=True)
    assert 200 <= response.status_code < 300
    assert len(warehouse.tables["orders"]) == 1


def test_an_invalid_order_is_quarantined_and_acknowledged(client: Any, warehouse: MemoryWarehouse) -> None:
    doc = json.loads(ORDER)
    doc["total_price"] = "a lot"
    response = post(client, pubsub_event(json.dumps(doc).encode()))
    assert 200 <= response.status_code < 300  # acknowledged: retrying cannot make it valid
    assert_no_trace(response)
    [rejected] = warehouse.tables["rejected_events"]
    assert any(reason["path"].endswith("total_price") for reason in rejected["reasons"])
    assert "orders" not in warehouse.tables


def test_a_malformed_push_message_is_quarantined_and_acknowledged(
    client: Any, warehouse: MemoryWarehouse
) -> None:
    event = pubsub_event(ORDER)
    event.data = {"message": {"data": "%%% not base64"}}
    response = post(client, event)
    assert 200 <= response.status_code < 300
    [rejected] = warehouse.tables["rejected_events"]
    assert rejected["reasons"][0]["path"] == "(envelope)"


def test_a_transient_warehouse_error_answers_5xx_without_a_trace(
    client: Any, warehouse: MemoryWarehouse, capsys: pytest.CaptureFixture[str]
) -> None:
    warehouse.fail_with = TransientError("warehouse file is locked by another process (/srv/secret/w.duckdb)")
    response = post(client, pubsub_event(ORDER))
    assert 500 <= response.status_code < 600  # Pub/Sub redelivers with backoff, then dead-letters
    assert_no_trace(response)
    assert "locked" not in response.get_data(as_text=True)
    assert warehouse.tables == {}
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert any(entry["severity"] == "ERROR" and "redeliver" in entry["message"] for entry in logged)

    warehouse.fail_with = None  # the redelivery, once the warehouse is back
    assert 200 <= post(client, pubsub_event(ORDER)).status_code < 300
    assert len(warehouse.tables["orders"]) == 1


def test_the_same_message_delivered_twice_is_stored_once(client: Any, warehouse: MemoryWarehouse) -> None:
    for _ in range(2):
        assert 200 <= post(client, pubsub_event(ORDER)).status_code < 300
    assert len(warehouse.tables["raw_events"]) == 1
    assert len(warehouse.tables["orders"]) == 1


def test_an_unexpected_error_answers_5xx_without_its_message_or_trace(
    client: Any, warehouse: MemoryWarehouse
) -> None:
    warehouse.fail_with = RuntimeError("boom in /srv/app/shared/secret_module.py line 3")
    response = post(client, pubsub_event(ORDER))
    assert 500 <= response.status_code < 600  # kept for redelivery, never acknowledged as loaded
    assert_no_trace(response)
    assert "boom" not in response.get_data(as_text=True)
