"""Validation and normalisation of webhook events (shared/validation): examples.

Fixtures are Shopify-shaped bodies in tests/fixtures/webhooks (index.json says what each shows).
Property-based tests are in test_validation_properties.py; the schema and table files are
checked in test_validation_schema.py.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from shared.validation import (
    DRIFT_TABLE,
    RAW_TABLE,
    REJECTED_TABLE,
    LoadPlan,
    Reason,
    plan_load,
    rejection_row,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"
INDEX = json.loads((FIXTURES / "index.json").read_text())["fixtures"]
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
RECEIVED = "2025-03-01T11:59:59.500000+00:00"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def encode(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def attributes(
    topic: str, api_version: str = "2025-07", webhook_id: str = "wh-1", **extra: str
) -> dict[str, str]:
    attrs = {
        "shopify_topic": topic,
        "shop_domain": "demo-store.myshopify.com",
        "webhook_id": webhook_id,
        "event_id": "ev-1",
        "api_version": api_version,
        "triggered_at": "2025-03-01T11:59:58.000Z",
        "received_at": RECEIVED,
        "source": "webhook",
    }
    attrs.update(extra)
    return attrs


def plan(body: Any, topic: str = "orders/create", api_version: str = "2025-07", **kwargs: Any) -> LoadPlan:
    data = body if isinstance(body, bytes) else encode(body)
    attrs = kwargs.pop("attrs", None) or attributes(topic, api_version)
    return plan_load(attrs, data, "msg-1", NOW - timedelta(seconds=1), NOW, **kwargs)


def strings_in(value: Any) -> list[str]:
    """Every string anywhere in a row structure (for the PII checks)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in strings_in(v)]
    return []


# --- Fixtures: every documented shape loads ----------------------------------------------------


@pytest.mark.parametrize("entry", INDEX, ids=[e["file"] for e in INDEX])
def test_documented_payload_loads_without_drift(entry: dict[str, str]) -> None:
    result = plan(fixture(entry["file"]), entry["topic"], entry["api_version"])
    assert result.status == "loaded", [str(r) for r in result.reasons]
    assert result.rejection is None and result.reasons == []
    assert result.unknown_fields == []
    assert result.drift_rows == []
    assert result.raw_row["status"] == "loaded"


def test_old_order_without_graphql_ids_money_bags_or_current_totals_is_loaded() -> None:
    body = fixture("orders_create_2019_10.json")
    text = json.dumps(body)
    assert "admin_graphql_api_id" not in text and "_set" not in text and "current_total" not in text
    result = plan(body, "orders/create", "2019-10")
    assert result.status == "loaded"
    order = result.rows_by_table["orders"][0]
    assert order["total_price"] == Decimal("598.94")
    assert order["current_total_price"] is None and order["total_shipping_price"] is None
    assert [li["variant_id"] for li in result.rows_by_table["order_line_items"]] == [
        39072856,
        49148385,
        457924702,
    ]


def test_order_becomes_order_and_line_item_rows_with_shopify_names() -> None:
    result = plan(fixture("orders_create_5_items.json"))
    (order,) = result.rows_by_table["orders"]
    lines = result.rows_by_table["order_line_items"]
    assert order["id"] == 5000000000123 and order["name"] == "#1042"
    assert order["total_price"] == Decimal("166.36") and order["subtotal_price"] == Decimal("147.60")
    assert order["total_tax"] == Decimal("11.81") and order["total_shipping_price"] == Decimal("6.95")
    assert order["currency"] == "USD" and order["line_item_count"] == 5
    assert order["discount_codes"] == [{"code": "BFCM24", "amount": Decimal("16.40"), "type": "percentage"}]
    assert [li["quantity"] for li in lines] == [2, 1, 3, 1, 2]
    assert lines[0]["price"] == Decimal("24.00") and lines[0]["discount_allocations_amount"] == Decimal(
        "4.80"
    )
    assert sum((li["tax_amount"] for li in lines), Decimal(0)) == Decimal("11.81")
    assert {li["order_id"] for li in lines} == {order["id"]}
    assert {li["order_updated_at"] for li in lines} == {order["updated_at"]}
    for row in [order, *lines]:
        assert row["shop_domain"] == "demo-store.myshopify.com"
        assert row["webhook_id"] == "wh-1" and row["shopify_topic"] == "orders/create"
        assert row["received_at"] == datetime(2025, 3, 1, 11, 59, 59, 500000, tzinfo=UTC)
        assert row["loaded_at"] == NOW


def test_custom_line_item_keeps_null_variant_and_product() -> None:
    result = plan(fixture("orders_create.json"))
    custom = result.rows_by_table["order_line_items"][2]
    assert custom["variant_id"] is None and custom["product_id"] is None and custom["sku"] is None


def test_cancelled_paid_and_updated_orders_go_to_the_same_tables() -> None:
    for name, topic in [
        ("orders_cancelled.json", "orders/cancelled"),
        ("orders_paid.json", "orders/paid"),
        ("orders_updated.json", "orders/updated"),
    ]:
        result = plan(fixture(name), topic)
        assert set(result.rows_by_table) >= {"orders", "order_line_items"}
        assert result.rows_by_table["orders"][0]["shopify_topic"] == topic
    cancelled = plan(fixture("orders_cancelled.json"), "orders/cancelled").rows_by_table["orders"][0]
    assert cancelled["cancelled_at"] == datetime(2022, 1, 1, 0, 0, tzinfo=UTC)
    assert cancelled["cancel_reason"] == "customer"


def test_refund_rows_carry_units_per_variant_and_negative_adjustments() -> None:
    result = plan(fixture("refunds_create.json"), "refunds/create")
    (refund,) = result.rows_by_table["refunds"]
    (line,) = result.rows_by_table["refund_line_items"]
    assert refund["order_id"] == 820982911946154508
    assert refund["transactions_amount"] == Decimal("99.99")
    assert refund["order_adjustments_amount"] == Decimal("-10.00")
    assert line["variant_id"] == 642667041472713922 and line["quantity"] == 1
    assert line["subtotal"] == Decimal("89.99") and line["total_tax"] == Decimal("0.0")
    assert line["refund_created_at"] == datetime(2022, 1, 3, 17, 0, tzinfo=UTC)


def test_refund_embedded_in_orders_updated_is_loaded_too() -> None:
    result = plan(fixture("orders_updated.json"), "orders/updated")
    assert [r["id"] for r in result.rows_by_table["refunds"]] == [890088186047892319]
    assert result.rows_by_table["refund_line_items"][0]["line_item_id"] == 487817672276298554


def test_product_rows_and_variants() -> None:
    result = plan(fixture("products_update.json"), "products/update")
    (product,) = result.rows_by_table["products"]
    variants = result.rows_by_table["variants"]
    assert product["deleted"] is False and product["variant_count"] == 2
    assert [v["price"] for v in variants] == [Decimal("17.99"), Decimal("19.99")]
    assert {v["product_id"] for v in variants} == {product["id"]}
    assert {v["product_updated_at"] for v in variants} == {product["updated_at"]}


def test_products_delete_is_a_tombstone_dated_by_the_trigger_time() -> None:
    result = plan({"id": 788032119674292922}, "products/delete")
    (row,) = result.rows_by_table["products"]
    assert row["deleted"] is True and row["id"] == 788032119674292922
    assert row["updated_at"] == datetime(2025, 3, 1, 11, 59, 58, tzinfo=UTC)
    assert "variants" not in result.rows_by_table


def test_inventory_level_is_keyed_by_item_and_location() -> None:
    result = plan(fixture("inventory_levels_update.json"), "inventory_levels/update")
    (row,) = result.rows_by_table["inventory_levels"]
    assert (row["inventory_item_id"], row["location_id"], row["available"]) == (
        271878346596884015,
        24826418,
        6,
    )
    untracked = plan(
        {**fixture("inventory_levels_update.json"), "available": None}, "inventory_levels/update"
    )
    assert untracked.rows_by_table["inventory_levels"][0]["available"] is None
    oversold = plan({**fixture("inventory_levels_update.json"), "available": -3}, "inventory_levels/update")
    assert oversold.rows_by_table["inventory_levels"][0]["available"] == -3


def test_app_uninstalled_is_kept_raw_only() -> None:
    result = plan(fixture("app_uninstalled.json"), "app/uninstalled")
    assert result.status == "loaded" and result.rows_by_table == {}
    assert set(result.writes()[0]) == {RAW_TABLE}


# --- Normalisation -------------------------------------------------------------------------------


def test_money_is_exact_decimal() -> None:
    body = fixture("orders_create_5_items.json")
    body["total_price"] = "12345678901234567890123456789.123456789"
    body["line_items"][0]["price"] = "0.10"
    result = plan(body)
    assert result.rows_by_table["orders"][0]["total_price"] == Decimal(
        "12345678901234567890123456789.123456789"
    )
    assert result.rows_by_table["order_line_items"][0]["price"] == Decimal("0.10")
    assert str(result.rows_by_table["order_line_items"][0]["price"]) == "0.10"


def test_numeric_money_in_refund_lines_is_read_exactly() -> None:
    body = fixture("refunds_create.json")
    body["refund_line_items"][0]["subtotal"] = 0.1
    body["refund_line_items"][0]["total_tax"] = 7
    (line,) = plan(body, "refunds/create").rows_by_table["refund_line_items"]
    assert line["subtotal"] == Decimal("0.1") and line["total_tax"] == Decimal(7)


def test_timestamps_with_offsets_become_utc() -> None:
    body = fixture("orders_create_5_items.json")
    body["created_at"] = "2024-03-01T10:15:00-05:00"
    body["updated_at"] = "2024-03-01T16:15:00.250+01:00"
    body["processed_at"] = "2024-03-01T15:15:00Z"
    order = plan(body).rows_by_table["orders"][0]
    expected = datetime(2024, 3, 1, 15, 15, tzinfo=UTC)
    assert order["created_at"] == expected and order["created_at"].tzinfo == UTC
    assert order["updated_at"] == expected + timedelta(milliseconds=250)
    assert order["processed_at"] == expected
    assert order["created_at"].utcoffset() == timedelta(0)


def test_numeric_string_ids_are_accepted() -> None:
    body = fixture("orders_create_5_items.json")
    body["id"] = "5000000000123"
    body["line_items"][0]["variant_id"] = "40000000000011"
    result = plan(body)
    assert result.rows_by_table["orders"][0]["id"] == 5000000000123
    assert result.rows_by_table["order_line_items"][0]["variant_id"] == 40000000000011


def test_negative_money_is_valid() -> None:
    body = fixture("orders_create_5_items.json")
    body["subtotal_price"] = "-5.00"
    assert plan(body).rows_by_table["orders"][0]["subtotal_price"] == Decimal("-5.00")


def test_empty_string_in_an_optional_money_field_is_null() -> None:
    body = fixture("products_update.json")
    body["variants"][0]["compare_at_price"] = ""
    assert plan(body, "products/update").rows_by_table["variants"][0]["compare_at_price"] is None


def test_shop_domain_is_lower_cased() -> None:
    attrs = attributes("orders/create")
    attrs["shop_domain"] = "Demo-Store.myshopify.com"
    result = plan(fixture("orders_create.json"), attrs=attrs)
    assert result.rows_by_table["orders"][0]["shop_domain"] == "demo-store.myshopify.com"


# --- Rejections: every one names what was wrong -------------------------------------------------


def reasons_of(result: LoadPlan) -> dict[str, tuple[str, str]]:
    assert result.status == "rejected"
    assert result.rows_by_table == {} and result.row_ids_by_table == {}
    assert result.rejection is not None and result.raw_row["status"] == "rejected"
    assert result.rejection["reasons"] and result.rejection["reason_summary"]
    return {r.path: (r.expected, r.got) for r in result.reasons}


@pytest.mark.parametrize(
    ("mutate", "path", "got"),
    [
        (lambda b: b.update(total_price="abc"), "total_price", "string 'abc'"),
        (lambda b: b.update(id="12x"), "id", "string '12x'"),
        (lambda b: b.update(id=-1), "id", "integer -1"),
        (lambda b: b.update(id=2**63), "id", f"integer {2**63}"),
        (lambda b: b.update(id=1.5), "id", "number 1.5"),
        (lambda b: b.update(id=True), "id", "boolean true"),
        (lambda b: b["line_items"][1].update(quantity=-1), "line_items[1].quantity", "integer -1"),
        (lambda b: b["line_items"][0].pop("price"), "line_items[0].price", "missing"),
        (lambda b: b["line_items"][0].update(price=None), "line_items[0].price", "null"),
        (lambda b: b.pop("currency"), "currency", "missing"),
        (lambda b: b.update(line_items={}), "line_items", "object"),
        (lambda b: b.update(line_items=[1]), "line_items[0]", "integer 1"),
        (lambda b: b.update(created_at="2024-03-01T10:15:00"), "created_at", "string '2024-03-01T10:15:00'"),
        (lambda b: b.update(updated_at="yesterday"), "updated_at", "string 'yesterday'"),
        (lambda b: b.update(total_price="1e3"), "total_price", "string '1e3'"),
        (lambda b: b.update(total_price="1.1234567891"), "total_price", "string '1.1234567891'"),
        (lambda b: b.update(total_price=" 1.00"), "total_price", "string ' 1.00'"),
        (lambda b: b.update(taxes_included="yes"), "taxes_included", "string 'yes'"),
        (lambda b: b.update(customer={"id": "guest"}), "customer.id", "string 'guest'"),
        (
            lambda b: b["line_items"][0]["tax_lines"][0].update(price=[]),
            "line_items[0].tax_lines[0].price",
            "array",
        ),
        (
            lambda b: b["total_shipping_price_set"]["shop_money"].pop("amount"),
            "total_shipping_price_set.shop_money.amount",
            "missing",
        ),
    ],
)
def test_wrong_type_or_missing_required_field_is_rejected_with_its_path(
    mutate: Any, path: str, got: str
) -> None:
    body = fixture("orders_create_5_items.json")
    mutate(body)
    reasons = reasons_of(plan(body))
    assert path in reasons, reasons
    assert reasons[path][1] == got


def test_every_reason_is_collected() -> None:
    body = fixture("orders_create_5_items.json")
    body["total_price"] = "abc"
    del body["line_items"][3]["id"]
    reasons = reasons_of(plan(body))
    assert set(reasons) == {"total_price", "line_items[3].id"}
    assert plan(body).rejection["reason_summary"].endswith("(+1 more)")  # type: ignore[index]


def test_reasons_are_capped_and_the_rest_counted() -> None:
    body = fixture("orders_create_5_items.json")
    body["line_items"] = [{"id": "x"}] * 60  # 3 reasons each
    result = plan(body)
    assert len(result.reasons) == 101
    assert (result.reasons[-1].path, result.reasons[-1].got) == ("(more)", "80 more")
    assert result.rejection is not None and result.rejection["reason_summary"].endswith("(+179 more)")


def test_rejection_row_quarantines_a_loaded_plan_the_same_way() -> None:
    loaded = plan(fixture("orders_create.json"))
    reason = Reason("(warehouse)", "a row that fits orders", "column total_price out of range")
    row = rejection_row(loaded.raw_row, [reason], loaded.schema_version, NOW)
    assert row["reasons"] == [reason.as_row()] and row["body"] == loaded.raw_row["body"]
    assert (
        row["reason_summary"]
        == "(warehouse): expected a row that fits orders, got column total_price out of range"
    )
    with pytest.raises(ValueError, match="at least one reason"):
        rejection_row(loaded.raw_row, [], None, NOW)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xff\xfe{}", "UTF-8 text"),
        (b'{"id": 1', "JSON"),
        (b"", "JSON"),
        (b'{"total_price": NaN}', "JSON"),
        (b"[1, 2]", "JSON object"),
        (b'"order"', "JSON object"),
        (b"null", "JSON object"),
    ],
)
def test_unreadable_bodies_are_rejected(data: bytes, expected: str) -> None:
    reasons = reasons_of(plan(data))
    assert reasons["(body)"][0] == expected


def test_rejection_keeps_the_exact_body_and_attributes() -> None:
    data = b"\xff not utf-8 {"
    result = plan(data)
    assert result.rejection is not None
    assert result.rejection["body_encoding"] == "base64"
    assert base64.b64decode(result.rejection["body"]) == data
    assert result.rejection["body_sha256"] == hashlib.sha256(data).hexdigest()
    assert json.loads(result.rejection["attributes_json"])["webhook_id"] == "wh-1"
    assert result.rejection["rejected_at"] == NOW
    assert result.raw_row["body"] == result.rejection["body"]


@pytest.mark.parametrize("missing", ["webhook_id", "shop_domain", "shopify_topic"])
def test_missing_attribute_is_rejected(missing: str) -> None:
    attrs = attributes("orders/create")
    del attrs[missing]
    reasons = reasons_of(plan(fixture("orders_create.json"), attrs=attrs))
    assert reasons[f"attributes.{missing}"] == ("non-empty string", "missing")


@pytest.mark.parametrize("topic", ["customers/redact", "orders/delete", "orders"])
def test_unknown_topic_is_rejected(topic: str) -> None:
    reasons = reasons_of(plan(fixture("orders_create.json"), topic))
    assert reasons["attributes.shopify_topic"][1] == f"string {topic!r}"


def test_rejection_without_webhook_id_is_keyed_by_message_id() -> None:
    attrs = attributes("orders/create")
    del attrs["webhook_id"]
    _, ids = plan(b"{}", attrs=attrs).writes()
    assert ids[REJECTED_TABLE] == ["msg-1:rejected_events:0"]


# --- Drift: unknown fields are counted, never fatal ---------------------------------------------


def test_unknown_fields_are_loaded_and_counted_with_their_paths() -> None:
    body = fixture("orders_create_5_items.json")
    body["loyalty_tier"] = "gold"
    for item in body["line_items"]:
        item["carbon_grams"] = 12
    body["customer"]["pronouns"] = None
    result = plan(body)
    assert result.status == "loaded"
    assert result.unknown_fields == ["loyalty_tier", "line_items[].carbon_grams", "customer.pronouns"]
    drift = {(r["kind"], r["field_path"]) for r in result.drift_rows}
    assert drift == {
        ("unknown_field", "loyalty_tier"),
        ("unknown_field", "line_items[].carbon_grams"),
        ("unknown_field", "customer.pronouns"),
    }
    assert all(
        r["shopify_topic"] == "orders/create" and r["api_version"] == "2025-07" for r in result.drift_rows
    )
    assert "loyalty_tier" not in result.rows_by_table["orders"][0]


def test_changed_type_of_an_unloaded_field_is_drift_not_rejection() -> None:
    body = fixture("orders_create_5_items.json")
    body["total_weight"] = "heavy"
    body["line_items"][0]["grams"] = None
    body["line_items"][1]["product_exists"] = "yes"
    result = plan(body)
    assert result.status == "loaded"
    changed = {
        (r["field_path"], r["expected"], r["got"]) for r in result.drift_rows if r["kind"] == "type_changed"
    }
    assert changed == {
        ("total_weight", "number", "string"),
        ("line_items[].product_exists", "bool", "string"),
    }


def test_newer_api_version_uses_the_newest_schema_and_is_reported() -> None:
    body = fixture("orders_create.json")
    del body["checkout_id"]  # gone from order webhooks since 2026-04
    for version in ("2031-01", "unstable"):
        result = plan(body, "orders/create", version)
        assert result.status == "loaded" and result.api_version_known is False
        assert result.schema_version == "2026-04"
        (row,) = result.drift_rows
        assert (row["kind"], row["field_path"], row["got"]) == (
            "unknown_api_version",
            "(api_version)",
            version,
        )


def test_api_version_picks_the_schema_of_its_time() -> None:
    legacy_variants = fixture("products_update_2023_10.json")
    old = plan(legacy_variants, "products/update", "2023-10")
    assert old.schema_version == "2019-10" and old.unknown_fields == []
    new = plan(legacy_variants, "products/update", "2025-07")
    assert new.schema_version == "2024-07" and new.status == "loaded"
    assert set(new.unknown_fields) == {
        "variants[].fulfillment_service",
        "variants[].inventory_management",
        "variants[].grams",
        "variants[].weight",
        "variants[].weight_unit",
        "variants[].requires_shipping",
    }


# --- Row ids, writes, raw row --------------------------------------------------------------------


def test_row_ids_are_deterministic_per_webhook() -> None:
    first = plan(fixture("orders_updated.json"), "orders/updated")
    again = plan(fixture("orders_updated.json"), "orders/updated")
    assert first.row_ids_by_table == again.row_ids_by_table
    assert first.rows_by_table == again.rows_by_table
    assert first.row_ids_by_table["order_line_items"] == [
        "wh-1:order_line_items:0",
        "wh-1:order_line_items:1",
        "wh-1:order_line_items:2",
    ]
    assert first.row_ids_by_table["orders"] == ["wh-1:orders:0"]
    for table, rows in first.rows_by_table.items():
        assert len(first.row_ids_by_table[table]) == len(rows)


def test_writes_include_raw_drift_and_rejection_with_ids() -> None:
    body = fixture("orders_create.json")
    body["brand_new"] = 1
    rows, ids = plan(body).writes()
    assert set(rows) == {RAW_TABLE, "orders", "order_line_items", DRIFT_TABLE}
    assert ids[RAW_TABLE] == ["msg-1"] and ids[DRIFT_TABLE] == ["wh-1:schema_drift:0"]
    assert all(len(rows[t]) == len(ids[t]) for t in rows)
    bad = dict(body, total_price="x")
    rows, ids = plan(bad).writes()
    assert set(rows) == {RAW_TABLE, DRIFT_TABLE, REJECTED_TABLE}


def test_raw_row_keeps_the_exact_body_and_attributes() -> None:
    # Exact when the body holds nothing personal, or when STORE_PII keeps personal data in clear.
    for data, options in [
        (encode(fixture("products_create.json")) + b"  \n", {}),
        (encode(fixture("orders_create.json")) + b"  \n", {"store_pii": True}),
    ]:
        topic = "products/create" if b"variants" in data else "orders/create"
        raw = plan(data, topic, **options).raw_row
        assert raw["body"].encode("utf-8") == data and raw["body_encoding"] == "utf-8"
        assert raw["body_sha256"] == hashlib.sha256(data).hexdigest()
    data = encode(fixture("orders_create.json")) + b"  \n"
    result = plan(data)
    raw = result.raw_row
    assert json.loads(raw["attributes_json"]) == attributes("orders/create")
    assert raw["message_id"] == "msg-1" and raw["publish_time"] == NOW - timedelta(seconds=1)
    assert raw["triggered_at"] == datetime(2025, 3, 1, 11, 59, 58, tzinfo=UTC)
    assert raw["loaded_at"] == NOW


def test_received_at_falls_back_to_publish_time_then_now() -> None:
    attrs = attributes("orders/create")
    del attrs["received_at"]
    published = datetime(2025, 3, 1, 6, 0, tzinfo=timezone(timedelta(hours=-5)))
    result = plan_load(attrs, encode(fixture("orders_create.json")), "m", published, NOW)
    assert result.raw_row["received_at"] == datetime(2025, 3, 1, 11, 0, tzinfo=UTC)
    result = plan_load(attrs, encode(fixture("orders_create.json")), "m", None, NOW)
    assert result.rows_by_table["orders"][0]["received_at"] == NOW


# --- Personal data ----------------------------------------------------------------------------------

ORDER_PII = [
    "jon@example.com",
    "john@example.com",
    "555-555-SHIP",
    "123 Shipping Street",
    "Shipper",
    "Shippington",
]
CUSTOMER_PII = ["bob@example.com", "+16135551111", "Biller", "O'Connor", "555-555-5555", "K2P 2L8"]


def test_no_email_phone_name_or_address_in_clear_by_default() -> None:
    for name, topic, secrets in [
        ("orders_create.json", "orders/create", ORDER_PII),
        (
            "orders_create_2019_10.json",
            "orders/create",
            ["bob.norman@example.com", "+557734881234", "Chestnut"],
        ),
        ("customers_create.json", "customers/create", CUSTOMER_PII),
    ]:
        result = plan(fixture(name), topic, pii_hash_key="secret-key")
        text = "\n".join(
            strings_in(result.rows_by_table) + strings_in(result.drift_rows) + [result.raw_row["body"]]
        )
        for secret in secrets:
            assert secret not in text, f"{secret!r} in clear in {name}"
        # ...nor in quarantine: a rejected body and its reasons are scrubbed the same way.
        broken = dict(fixture(name), created_at="not a time", email=12345)
        rejected = plan(broken, topic, pii_hash_key="secret-key")
        assert rejected.rejection is not None
        quarantine = rejected.rejection["body"] + json.dumps(rejected.rejection["reasons"])
        for secret in secrets:
            assert secret not in quarantine, f"{secret!r} in clear in the quarantined {name}"


def test_raw_body_hashes_join_the_typed_hashes_and_load_the_same_rows() -> None:
    body = fixture("orders_create.json")
    result = plan(body, pii_hash_key="secret-key")
    stored = json.loads(result.raw_row["body"])
    order = result.rows_by_table["orders"][0]
    assert stored["email"] == "hmac:" + order["email_hash"]
    assert stored["customer"]["id"] == body["customer"]["id"] == order["customer_id"]
    assert stored["total_price"] == body["total_price"]  # only personal fields change
    assert result.raw_row["body_sha256"] == hashlib.sha256(result.raw_row["body"].encode()).hexdigest()
    # Replaying the stored body loads the same typed rows, but for the personal columns' sources.
    again = plan(stored, pii_hash_key="secret-key")
    assert again.status == "loaded"
    for table, rows in result.rows_by_table.items():
        strip = {"email_hash", "phone_hash"}
        assert [{k: v for k, v in r.items() if k not in strip} for r in again.rows_by_table[table]] == [
            {k: v for k, v in r.items() if k not in strip} for r in rows
        ]
    # Without a key a personal value is "redacted": an unkeyed hash of an email is guessable.
    unkeyed = json.loads(plan(body).raw_row["body"])
    assert unkeyed["email"] == "redacted" and unkeyed["customer"]["first_name"] == "redacted"


def test_pii_is_present_when_store_pii_is_on() -> None:
    result = plan(fixture("customers_create.json"), "customers/create", store_pii=True, pii_hash_key="k")
    (row,) = result.rows_by_table["customers"]
    assert row["email"] == "bob@example.com" and row["phone"] == "+16135551111"
    assert row["first_name"] == "Bob" and row["last_name"] == "Biller"
    assert json.loads(row["default_address_json"])["address1"] == "151 O'Connor Street"
    order = plan(fixture("orders_create.json"), store_pii=True).rows_by_table["orders"][0]
    assert order["email"] == "jon@example.com"
    assert json.loads(order["shipping_address_json"])["address1"] == "123 Shipping Street"


def test_email_and_phone_hashes_are_keyed_and_normalised() -> None:
    body = fixture("customers_create.json")
    first = plan(body, "customers/create", pii_hash_key="k1").rows_by_table["customers"][0]
    shouty = dict(body, email="  BOB@Example.COM ", phone="+1 (613) 555-1111")
    same = plan(shouty, "customers/create", pii_hash_key="k1").rows_by_table["customers"][0]
    other_key = plan(body, "customers/create", pii_hash_key="k2").rows_by_table["customers"][0]
    assert first["email_hash"] == same["email_hash"] and first["phone_hash"] == same["phone_hash"]
    assert first["email_hash"] != other_key["email_hash"]
    assert len(first["email_hash"]) == 64
    no_key = plan(body, "customers/create").rows_by_table["customers"][0]
    assert no_key["email_hash"] is None and no_key["phone_hash"] is None


def test_coarse_location_is_kept() -> None:
    row = plan(fixture("customers_create.json"), "customers/create").rows_by_table["customers"][0]
    assert (row["country_code"], row["province_code"]) == ("CA", "ON")
    order = plan(fixture("orders_create.json")).rows_by_table["orders"][0]
    assert (order["shipping_country_code"], order["billing_country_code"]) == ("US", "US")


def test_plan_does_not_modify_its_inputs() -> None:
    body = fixture("orders_updated.json")
    attrs = attributes("orders/updated")
    before = (copy.deepcopy(body), dict(attrs))
    plan_load(attrs, encode(body), "m", None, NOW)
    assert (body, attrs) == before


def test_stdlib_json_fallback_is_as_strict_as_the_rust_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.validation import plan as plan_module

    for data in [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": "\\ud800"}', b'{"a": 1} x', b"{'a': 1}"]:
        with pytest.raises(ValueError):
            plan_module.parse_json(data, data.decode())
        with pytest.raises(ValueError):
            plan_module._stdlib_json(data, data.decode())
    emoji = b'{"a": "\\ud83d\\ude00", "b": 1.5, "c": 12345678901234567890123}'
    assert plan_module._stdlib_json(emoji, emoji.decode()) == plan_module.parse_json(emoji, emoji.decode())
    rust = [plan(fixture(e["file"]), e["topic"], e["api_version"]).writes() for e in INDEX]
    monkeypatch.setattr(plan_module, "parse_json", plan_module._stdlib_json)
    assert [plan(fixture(e["file"]), e["topic"], e["api_version"]).writes() for e in INDEX] == rust
