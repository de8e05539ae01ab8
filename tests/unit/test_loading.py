"""The load use case with an in-memory warehouse: what gets written, quarantined or retried."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from shared.errors import TransientError
from shared.loading import load
from shared.logs import get_logger
from tests.fakes import MemoryWarehouse

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "webhooks"
ORDER = (FIXTURES / "orders_create.json").read_bytes()


def push_data(
    body: bytes, webhook_id: str = "wh-1", topic: str = "orders/create", **extra: str
) -> dict[str, Any]:
    attributes = {
        "shopify_topic": topic,
        "shop_domain": "demo-store.myshopify.com",
        "webhook_id": webhook_id,
        "api_version": "2025-07",
        "triggered_at": "2025-03-01T10:15:00Z",
        "received_at": "2025-03-01T10:15:01+00:00",
        "source": "webhook",
        **extra,
    }
    return {
        "message": {"data": base64.b64encode(body).decode(), "attributes": attributes, "messageId": "m-1"}
    }


@pytest.fixture
def warehouse() -> MemoryWarehouse:
    return MemoryWarehouse()


@pytest.fixture
def writer(warehouse: MemoryWarehouse):  # type: ignore[no-untyped-def]
    return warehouse.write_batch


LOG = get_logger("test")


def test_valid_order_lands_raw_and_typed(warehouse: MemoryWarehouse, writer: Any) -> None:
    outcome = load(push_data(ORDER), "ce-1", writer, LOG)
    assert outcome.status == "loaded"
    assert [r["status"] for r in warehouse.tables["raw_events"]] == ["loaded"]
    stored = json.loads(warehouse.tables["raw_events"][0]["body"])  # personal fields scrubbed
    assert stored["id"] == json.loads(ORDER)["id"] and stored["email"] == "redacted"
    assert len(warehouse.tables["orders"]) == 1
    assert warehouse.tables["order_line_items"]
    assert "rejected_events" not in warehouse.tables


def test_invalid_event_is_quarantined_with_reasons_not_typed(warehouse: MemoryWarehouse, writer: Any) -> None:
    doc = json.loads(ORDER)
    doc["total_price"] = "a lot"
    outcome = load(push_data(json.dumps(doc).encode()), "ce-2", writer, LOG)
    assert outcome.status == "rejected"
    assert any("total_price" in r for r in outcome.reasons)
    assert "orders" not in warehouse.tables
    [rejected] = warehouse.tables["rejected_events"]
    assert rejected["webhook_id"] == "wh-1"
    assert any(r["path"].endswith("total_price") for r in rejected["reasons"])
    assert warehouse.tables["raw_events"][0]["status"] == "rejected"


def test_permanent_warehouse_error_quarantines_instead_of_retrying(
    warehouse: MemoryWarehouse, writer: Any
) -> None:
    warehouse.reject_table = "orders"
    outcome = load(push_data(ORDER), "ce-3", writer, LOG)
    assert outcome.status == "rejected"
    assert outcome.reasons[0].startswith("(load)")
    [rejected] = warehouse.tables["rejected_events"]
    assert rejected["reasons"][0]["path"] == "(load)"
    assert "NUMERIC" in rejected["reasons"][0]["got"]
    assert "orders" not in warehouse.tables


def test_transient_warehouse_error_raises_for_redelivery(warehouse: MemoryWarehouse, writer: Any) -> None:
    warehouse.fail_with = TransientError("warehouse file is locked by another process")
    with pytest.raises(TransientError):
        load(push_data(ORDER), "ce-4", writer, LOG)
    assert warehouse.tables == {}
    warehouse.fail_with = None
    assert load(push_data(ORDER), "ce-4", writer, LOG).status == "loaded"  # the redelivery


def test_malformed_envelope_is_quarantined_with_the_envelope_kept(
    warehouse: MemoryWarehouse, writer: Any
) -> None:
    outcome = load({"message": {"data": "%%%"}}, "ce-5", writer, LOG)
    assert outcome.status == "rejected"
    [rejected] = warehouse.tables["rejected_events"]
    assert rejected["reasons"][0]["path"] == "(envelope)"
    assert "%%%" in rejected["body"]
    assert rejected["message_id"] == "ce-5"


def test_loaded_events_reach_the_feature_seam_and_rejected_do_not(writer: Any) -> None:
    seen: list[str] = []
    load(
        push_data(ORDER), "ce-6", writer, LOG, on_loaded=lambda plan: seen.append(plan.raw_row["webhook_id"])
    )
    load(
        push_data(b"not json", webhook_id="bad"),
        "ce-7",
        writer,
        LOG,
        on_loaded=lambda plan: seen.append("bad"),
    )
    assert seen == ["wh-1"]
