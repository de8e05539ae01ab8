"""Privacy requests end to end on every warehouse backend (DuckDB, and BigQuery through the
emulator): events loaded by the real validation and load path, then ``customers/redact``,
``customers/data_request`` and ``shop/redact`` through ``handle_request``.

After ``customers/redact`` no row of any table holds the customer's id, email, phone or name
(nor the keyed hashes of email and phone), the bystander's rows are untouched, and the audit
row says what was done; after ``shop/redact`` no row of the shop remains but its audit rows.
A second delivery of the same request changes nothing more.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.object_stores import LocalObjectStore
from shared.privacy.service import PrivacyDeps, handle_request
from tests.contract.conftest import Backend
from tests.privacy_support import (
    A_ID,
    A_TRACES,
    B_EMAIL,
    B_ID,
    KEY,
    NOW,
    OTHER_SHOP,
    SHOP,
    data_request_a,
    load_history,
    redact_a,
    rows_of_shop,
    shop_redact,
    traces,
)


def deps(backend: Backend, tmp_path: Path) -> PrivacyDeps:
    return PrivacyDeps(
        warehouse=backend.warehouse,
        exports=LocalObjectStore(tmp_path / "exports"),
        hash_key=KEY.encode(),
        now=lambda: NOW + timedelta(days=2),
    )


def audit(backend: Backend) -> list[dict[str, Any]]:
    return backend.warehouse.query(
        "SELECT request_id, shopify_topic, shop_domain, customer_id_hash, status, attempt, "
        "completed_at, rows_touched, total_rows, export_uri FROM privacy_audit ORDER BY request_id, attempt"
    )


@pytest.mark.parametrize("store_pii", [False, True])
def test_customer_redact_leaves_no_trace_of_the_customer_anywhere(
    backend: Backend, tmp_path: Path, store_pii: bool
) -> None:
    load_history(backend.warehouse, store_pii=store_pii)
    assert traces(backend.warehouse, A_TRACES)  # the history does hold the customer
    before_b = traces(backend.warehouse, [str(B_ID), B_EMAIL])
    made = deps(backend, tmp_path)

    outcome = handle_request(redact_a(), made)

    assert traces(backend.warehouse, A_TRACES) == {}
    assert traces(backend.warehouse, [str(B_ID), B_EMAIL]) == before_b  # the bystander is untouched
    orders = backend.warehouse.query(
        "SELECT id, customer_id, email_hash, total_price FROM orders ORDER BY id"
    )
    assert len(orders) == 3 and all(o["total_price"] is not None for o in orders)  # sales history kept
    (row,) = audit(backend)
    assert row["status"] == "completed" and row["attempt"] == 1 and row["completed_at"] is not None
    assert row["shop_domain"] == SHOP and row["shopify_topic"] == "customers/redact"
    assert row["customer_id_hash"] and str(A_ID) not in json.dumps(row, default=str)
    touched = {(r["place"], r["action"]): r["rows"] for r in row["rows_touched"]}
    assert touched[("customers", "deleted")] == 1
    assert touched[("orders", "anonymised")] == 2
    # The customer, two versions of their order, its refund (a listed order), the broken and the
    # unparsable delivery.
    assert touched[("raw_events", "anonymised")] == 6
    assert touched[("rejected_events", "anonymised")] == 2
    assert row["total_rows"] == sum(touched.values()) == outcome.redacted_rows == 11

    # Redelivered: nothing more is touched and no second audit row is written.
    again = handle_request(redact_a(), made)
    assert again.status == "already_done" and again.redacted_rows == outcome.redacted_rows
    assert len(audit(backend)) == 1
    # A new request for the same customer (another webhook) finds nothing left to do.
    other = handle_request(redact_a("wh-redact-a-again"), made)
    assert other.status == "completed" and other.redacted_rows == 0


def test_data_request_exports_the_customers_rows_and_records_where(backend: Backend, tmp_path: Path) -> None:
    load_history(backend.warehouse)
    made = deps(backend, tmp_path)
    outcome = handle_request(data_request_a(), made)
    assert outcome.export_uri is not None and outcome.export_uri.startswith("file://")
    (key,) = made.exports.list("data-requests/")
    assert str(A_ID) not in key  # the folder is a keyed hash of the id
    document = json.loads(made.exports.get(key) or b"")
    tables = document["tables"]
    assert [r["id"] for r in tables["customers"]] == [A_ID]
    assert sorted(r["customer_id"] for r in tables["orders"]) == [A_ID, A_ID]
    assert {r["order_id"] for r in tables["order_line_items"]} == {tables["orders"][0]["id"]}
    # Raw bodies: the customer, two order versions, the broken one, the refund, the unparsable one.
    assert len(tables["refunds"]) == 1 and len(tables["raw_events"]) == 6
    assert B_EMAIL not in json.dumps(document) and str(B_ID) not in json.dumps(document)
    (row,) = audit(backend)
    assert row["export_uri"] == outcome.export_uri and row["status"] == "completed"
    # customers/redact later deletes the export too.
    handle_request(redact_a(), made)
    assert made.exports.list("data-requests/") == []
    redact_row = next(r for r in audit(backend) if r["shopify_topic"] == "customers/redact")
    assert {(r["place"], r["rows"]) for r in redact_row["rows_touched"]} >= {("exports", 1)}


def test_shop_redact_erases_every_row_of_the_shop_and_keeps_the_others(
    backend: Backend, tmp_path: Path
) -> None:
    load_history(backend.warehouse, shops=(SHOP, OTHER_SHOP))
    other_before = rows_of_shop(backend.warehouse, OTHER_SHOP)
    assert rows_of_shop(backend.warehouse, SHOP)
    made = deps(backend, tmp_path)
    handle_request(data_request_a(), made)  # an export of the shop exists

    outcome = handle_request(shop_redact(), made)

    assert rows_of_shop(backend.warehouse, SHOP) == {"privacy_audit": 2}  # only the record of it
    assert rows_of_shop(backend.warehouse, OTHER_SHOP) == other_before
    assert made.exports.list(f"data-requests/{SHOP}/") == []
    row = next(r for r in audit(backend) if r["shopify_topic"] == "shop/redact")
    assert row["status"] == "completed" and row["customer_id_hash"] is None
    touched = {r["place"]: r["rows"] for r in row["rows_touched"]}
    assert touched["raw_events"] == 8 and touched["orders"] == 3 and touched["exports"] == 1
    assert outcome.total_rows == row["total_rows"] == outcome.redacted_rows + 1  # + the export
    assert handle_request(shop_redact(), made).status == "already_done"
