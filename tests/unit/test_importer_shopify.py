"""The order importer on a Shopify admin order export (tests/fixtures/shopify/orders_export.csv)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devkit.importer import ImportReport, import_orders
from devkit.importer.shopify import ORDER_ID_BASE, variant_id_for
from shared.settings import Settings
from tests.fakes import MemoryWarehouse

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "shopify" / "orders_export.csv"
SHOP = "fern-and-linen.myshopify.com"


@pytest.fixture
def imported() -> tuple[ImportReport, MemoryWarehouse]:
    warehouse = MemoryWarehouse()
    report = import_orders(
        FIXTURE, warehouse=warehouse, shop_domain=SHOP, settings=Settings(warehouse_url="duckdb:///:memory:")
    )
    return report, warehouse


def test_orders_lines_refunds_and_the_bad_row(imported: tuple[ImportReport, MemoryWarehouse]) -> None:
    report, warehouse = imported
    assert report.fmt == "shopify" and report.file_lines == 10
    assert (report.orders, report.lines) == (7, 9)
    assert (report.refunds, report.refund_lines) == (2, 1)
    assert report.refunds_without_order == 0 and report.lines_without_sku == 1
    assert dict(report.rejected) == {"unreadable line item": 1}
    assert report.examples["unreadable line item"][0] == (11, "#1007: unreadable Lineitem quantity")
    assert {table: len(rows) for table, rows in warehouse.tables.items()} == {
        "raw_events": 7,
        "orders": 7,
        "order_line_items": 9,
        "refunds": 2,
        "refund_line_items": 1,
    }
    assert {r["shop_domain"] for r in warehouse.tables["orders"]} == {SHOP}
    assert "schema_drift" not in warehouse.tables and "rejected_events" not in warehouse.tables


def test_variants_are_keyed_by_sku(imported: tuple[ImportReport, MemoryWarehouse]) -> None:
    _, warehouse = imported
    lines = warehouse.tables["order_line_items"]
    mugs = [r for r in lines if r["sku"] == "MUG-FERN-L"]
    assert len(mugs) == 2 and {r["variant_id"] for r in mugs} == {variant_id_for("MUG-FERN-L", "")}
    assert {r["title"] for r in mugs} == {"Fern Print Mug"} and {r["variant_title"] for r in mugs} == {
        "Large"
    }
    small = {r["variant_id"] for r in lines if r["sku"] == "MUG-FERN-S"}
    assert len(small) == 1 and small != {mugs[0]["variant_id"]}
    assert len({r["product_id"] for r in lines if (r["sku"] or "").startswith("MUG-FERN")}) == 1
    wrapping = next(r for r in lines if r["title"] == "Gift wrapping")
    assert wrapping["sku"] is None and wrapping["variant_id"] == variant_id_for("", "Gift wrapping")
    discounted = next(r for r in lines if r["order_id"] == 5400000000002)
    assert str(discounted["discount_allocations_amount"]) == "1.60"


def test_order_fields_cancellation_and_refunds(imported: tuple[ImportReport, MemoryWarehouse]) -> None:
    _, warehouse = imported
    orders = {o["name"]: o for o in warehouse.tables["orders"]}
    first = orders["#1001"]
    assert first["id"] == 5400000000001 and str(first["created_at"]) == "2025-03-01 15:15:00+00:00"
    assert (
        str(first["total_price"]) == "49.09"
        and first["currency"] == "USD"
        and first["taxes_included"] is False
    )
    assert first["shipping_country_code"] == "US" and first["shipping_province_code"] == "IL"
    assert str(first["total_shipping_price"]) == "5.00"
    assert str(orders["#1005"]["cancelled_at"]) == "2025-03-03 15:00:00+00:00"
    assert orders["#1006"]["id"] >= ORDER_ID_BASE and orders["#1006"]["source_name"] == "pos"
    topics = {o["name"]: o["shopify_topic"] for o in warehouse.tables["orders"]}
    assert topics["#1001"] == "orders/create"
    assert topics["#1003"] == topics["#1004"] == topics["#1005"] == "orders/updated"
    refunds = {r["order_id"]: r for r in warehouse.tables["refunds"]}
    whole, part = refunds[5400000000003], refunds[5400000000004]
    assert str(whole["transactions_amount"]) == "30.28" and whole["refund_line_item_count"] == 1
    assert str(part["transactions_amount"]) == "4.00" and part["refund_line_item_count"] == 0
    (returned,) = warehouse.tables["refund_line_items"]
    assert returned["sku"] == "TOWEL-LIN" and returned["quantity"] == 3
    # dated at the order's latest known time (its fulfilment), not its creation
    assert str(returned["refund_created_at"]) == "2025-03-03 13:00:00+00:00"


def test_personal_data_follows_the_webhook_rules(tmp_path: Path) -> None:
    hashed = MemoryWarehouse()
    import_orders(FIXTURE, warehouse=hashed, settings=Settings(warehouse_url="x", pii_hash_key="k"))
    order = next(o for o in hashed.tables["orders"] if o["name"] == "#1001")
    assert order["email"] is None and order["phone"] is None and order["shipping_address_json"] is None
    assert order["email_hash"] and len(order["email_hash"]) == 64
    clear = MemoryWarehouse()
    import_orders(
        FIXTURE, warehouse=clear, settings=Settings(warehouse_url="x", store_pii=True, pii_hash_key="k")
    )
    order = next(o for o in clear.tables["orders"] if o["name"] == "#1001")
    assert order["email"] == "sample.person@example.com"
    assert json.loads(order["shipping_address_json"])["city"] == "Springfield"
    assert (
        order["email_hash"] == next(o for o in hashed.tables["orders"] if o["name"] == "#1001")["email_hash"]
    )


def test_importing_the_export_twice_adds_nothing(imported: tuple[ImportReport, MemoryWarehouse]) -> None:
    _, warehouse = imported
    before = {table: len(rows) for table, rows in warehouse.tables.items()}
    import_orders(FIXTURE, warehouse=warehouse, shop_domain=SHOP, settings=Settings(warehouse_url="x"))
    assert {table: len(rows) for table, rows in warehouse.tables.items()} == before
