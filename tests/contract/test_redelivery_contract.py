"""Loading is idempotent under redelivery, on every backend.

A message delivered again (same ``webhook_id``) adds nothing but, when it comes as a new Pub/Sub
message (a Shopify retry), its ``raw_events`` audit row; the same Pub/Sub message twice adds
nothing at all. DuckDB skips a row whose id its table holds, so the tables themselves hold one
row per line item. BigQuery drops repeated row ids only on a best-effort basis (bqemulator not
at all), so there the ``*_latest`` views are what must fold the repeats: the test asserts on
the views on every backend and on the tables where the backend promises it (DuckDB).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from shared.loading import load, plan_message
from shared.logs import get_logger
from shared.settings import REPO_ROOT
from shared.validation import LoadPlan
from tests.contract.conftest import Backend

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "webhooks"
ORDER = json.loads((FIXTURES / "orders_create.json").read_text())
SHOP = "redelivery.myshopify.com"
LOG = get_logger("contract.redelivery")
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def push(doc: dict[str, Any], webhook_id: str, message_id: str) -> dict[str, Any]:
    """The push envelope Pub/Sub delivers for one Shopify webhook."""
    attributes = {
        "shopify_topic": "orders/create",
        "shop_domain": SHOP,
        "webhook_id": webhook_id,
        "api_version": "2025-07",
        "received_at": "2025-03-01T10:15:01+00:00",
        "source": "webhook",
    }
    data = base64.b64encode(json.dumps(doc).encode()).decode()
    return {"message": {"data": data, "attributes": attributes, "messageId": message_id}}


def deliver(backend: Backend, deliveries: Iterable[tuple[dict[str, Any], str, str]]) -> list[str]:
    """Each (body, webhook_id, message_id) through the load use case; the outcomes' statuses."""
    return [
        load(push(doc, webhook_id, message_id), message_id, backend.warehouse.write_batch, LOG).status
        for doc, webhook_id, message_id in deliveries
    ]


def plan_of(doc: dict[str, Any], webhook_id: str, message_id: str) -> LoadPlan:
    return plan_message(push(doc, webhook_id, message_id), message_id, NOW, store_pii=False, pii_hash_key="")


def count(backend: Backend, table: str, webhook_id: str) -> int:
    rows = backend.warehouse.query(
        f"SELECT COUNT(*) AS n FROM {table} WHERE webhook_id = @w",  # noqa: S608 - our table names
        {"w": webhook_id},
    )
    return int(rows[0]["n"])


def test_an_order_delivered_three_times_leaves_one_row_per_line_item(backend: Backend) -> None:
    expected = plan_of(ORDER, "w-1", "m-1").rows_by_table
    assert set(expected) == {"orders", "order_line_items"} and len(expected["order_line_items"]) > 1
    # Pub/Sub redelivers m-1 (same message), then Shopify retries (same webhook, new message).
    statuses = deliver(backend, [(ORDER, "w-1", "m-1"), (ORDER, "w-1", "m-1"), (ORDER, "w-1", "m-2")])
    assert statuses == ["loaded"] * 3

    assert count(backend, "orders_latest", "w-1") == 1
    assert count(backend, "order_line_items_latest", "w-1") == len(expected["order_line_items"])
    if backend.name == "duckdb":  # BigQuery's row-id de-duplication is best effort (bqemulator: none)
        for table, rows in expected.items():
            assert count(backend, table, "w-1") == len(rows), table
        raw = backend.warehouse.query(
            "SELECT message_id FROM raw_events WHERE webhook_id = @w ORDER BY message_id", {"w": "w-1"}
        )
        assert [r["message_id"] for r in raw] == ["m-1", "m-2"]  # one audit row per Pub/Sub message


def test_other_webhooks_for_the_same_order_still_add_their_versions(backend: Backend) -> None:
    updated = {**ORDER, "updated_at": "2025-03-01T11:00:00-05:00"}
    deliver(backend, [(ORDER, "w-1", "m-1"), (ORDER, "w-1", "m-1b"), (updated, "w-2", "m-2")])
    line_items = len(plan_of(ORDER, "w-1", "m-1").rows_by_table["order_line_items"])
    latest = backend.warehouse.query(
        "SELECT webhook_id FROM orders_latest WHERE shop_domain = @s", {"s": SHOP}
    )
    assert latest == [{"webhook_id": "w-2"}]
    assert count(backend, "order_line_items_latest", "w-2") == line_items
    if backend.name == "duckdb":
        assert count(backend, "orders", "w-1") == 1 and count(backend, "orders", "w-2") == 1
        assert count(backend, "order_line_items", "w-1") == line_items


def test_a_batch_holding_the_same_message_several_times_writes_it_once(backend: Backend) -> None:
    """The pull loader writes many plans in one ``write_batch``: repeats inside it fold too."""
    plans = [plan_of(ORDER, "w-9", "m-9"), plan_of(ORDER, "w-9", "m-9"), plan_of(ORDER, "w-9", "m-10")]
    rows: dict[str, list[dict[str, Any]]] = {}
    ids: dict[str, list[str]] = {}
    for plan in plans:
        plan_rows, plan_ids = plan.writes()
        for table, table_rows in plan_rows.items():
            rows.setdefault(table, []).extend(table_rows)
            ids.setdefault(table, []).extend(plan_ids[table])
    backend.warehouse.write_batch(rows, ids)

    line_items = len(plans[0].rows_by_table["order_line_items"])
    assert count(backend, "orders_latest", "w-9") == 1
    assert count(backend, "order_line_items_latest", "w-9") == line_items
    if backend.name == "duckdb":
        assert count(backend, "orders", "w-9") == 1
        assert count(backend, "order_line_items", "w-9") == line_items
        assert count(backend, "raw_events", "w-9") == 2  # m-9 once, m-10 once


def test_quarantine_and_drift_rows_are_not_repeated_by_redelivery(backend: Backend) -> None:
    rejected = {**ORDER, "total_price": "a lot"}
    drifting = {**ORDER, "a_field_no_schema_declares": 1}
    statuses = deliver(
        backend,
        [
            (rejected, "w-bad", "m-bad"),
            (rejected, "w-bad", "m-bad-2"),
            (drifting, "w-drift", "m-drift"),
            (drifting, "w-drift", "m-drift"),
        ],
    )
    assert statuses == ["rejected", "rejected", "loaded", "loaded"]
    report = backend.warehouse.query(
        "SELECT events FROM schema_drift_report WHERE field_path = @f", {"f": "a_field_no_schema_declares"}
    )
    assert report == [{"events": 1}]
    if backend.name == "duckdb":
        assert count(backend, "rejected_events", "w-bad") == 1
        assert count(backend, "schema_drift", "w-drift") == 1
        assert count(backend, "raw_events", "w-bad") == 2 and count(backend, "raw_events", "w-drift") == 1
