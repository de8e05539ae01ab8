"""Latest-state views (shared/sql/views/*.sql): BigQuery SQL, run on DuckDB through SQLGlot.

Tables are created straight from shared/schemas/tables/*.json by a small local helper and
filled with the rows ``plan_load`` makes from Shopify-shaped events, delivered out of order,
duplicated and tied, and the views must return exactly the newest state.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from shared.validation import plan_load
from tests.unit.test_validation import encode, fixture

ROOT = Path(__file__).resolve().parents[2]
VIEWS = sorted((ROOT / "shared" / "sql" / "views").glob("*.sql"))
TABLE_FILES = {
    p.stem: json.loads(p.read_text()) for p in (ROOT / "shared" / "schemas" / "tables").glob("*.json")
}
DUCK_TYPES = {
    "STRING": "VARCHAR",
    "INT64": "BIGINT",
    "NUMERIC": "DECIMAL(38, 9)",
    "TIMESTAMP": "TIMESTAMPTZ",
    "BOOL": "BOOLEAN",
    "FLOAT64": "DOUBLE",
    "DATE": "DATE",
    "JSON": "JSON",
}
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
LATEST_VIEWS = {
    "orders_latest",
    "order_line_items_latest",
    "refunds_latest",
    "refund_line_items_latest",
    "products_latest",
    "variants_latest",
    "inventory_levels_latest",
    "customers_latest",
}


def duck_type(column: dict[str, Any]) -> str:
    if column["type"] == "RECORD":
        inner = ", ".join(f"{f['name']} {duck_type(f)}" for f in column["fields"])
        base = f"STRUCT({inner})"
    else:
        base = DUCK_TYPES[column["type"]]
    return f"{base}[]" if column["mode"] == "REPEATED" else base


def to_duckdb(sql: str) -> str:
    (translated,) = sqlglot.transpile(sql, read="bigquery", write="duckdb")
    return translated


@pytest.fixture
def db() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for name, doc in TABLE_FILES.items():
        columns = ", ".join(
            f"{c['name']} {duck_type(c)}{' NOT NULL' if c['mode'] == 'REQUIRED' else ''}"
            for c in doc["schema"]
        )
        con.execute(f"CREATE TABLE {name} ({columns})")
    for path in VIEWS:
        con.execute(f"CREATE VIEW {path.stem} AS {to_duckdb(path.read_text())}")
    yield con
    con.close()


class Store:
    """Delivers events to the DuckDB tables the way validate_load would."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.messages = 0

    def deliver(
        self,
        topic: str,
        body: dict[str, Any],
        webhook_id: str,
        received: datetime,
        api_version: str = "2025-07",
    ) -> None:
        self.messages += 1
        attrs = {
            "shopify_topic": topic,
            "shop_domain": "demo-store.myshopify.com",
            "webhook_id": webhook_id,
            "api_version": api_version,
            "received_at": received.isoformat(),
            "triggered_at": received.isoformat(),
            "source": "webhook",
        }
        result = plan_load(attrs, encode(body), f"msg-{self.messages}", None, received + timedelta(seconds=1))
        assert result.status == "loaded", [str(r) for r in result.reasons]
        rows_by_table, _ = result.writes()
        for table, rows in rows_by_table.items():
            names = list(rows[0])
            marks = ", ".join("?" for _ in names)
            insert = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})"  # noqa: S608 - our table files
            self.con.executemany(insert, [list(r.values()) for r in rows])

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return self.con.execute(sql).fetchall()


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


# --- The SQL files themselves ----------------------------------------------------------------------------


def test_there_is_a_latest_view_per_typed_table_and_the_drift_report() -> None:
    assert {p.stem for p in VIEWS} == LATEST_VIEWS | {"schema_drift_report", "drift_reports_latest"}


def test_drift_reports_latest_is_the_newest_check_per_model(db: duckdb.DuckDBPyConnection) -> None:
    rows = [("c1", "demand", at(0)), ("c2", "demand", at(60)), ("c3", "other", at(5))]
    for check_id, model, when in rows:
        db.execute(
            "INSERT INTO drift_reports (check_id, model, checked_at, status, current_rows, reference_rows, "
            "features_judged, drifted_importance, severity, rollback_requested, training_requested, "
            "notification, duration_seconds) VALUES (?, ?, ?, 'checked', 0, 0, 0, 0, 'none', false, false, "
            "'none', 0)",
            [check_id, model, when],
        )
    found = db.execute("SELECT model, check_id FROM drift_reports_latest ORDER BY model").fetchall()
    assert found == [("demand", "c2"), ("other", "c3")]


@pytest.mark.parametrize("path", VIEWS, ids=lambda p: p.stem)
def test_view_file_is_one_select_on_bare_table_names_named_after_the_file(path: Path) -> None:
    sql = path.read_text()
    assert sql.startswith(f"-- {path.stem}:"), "the first comment names the view as the file does"
    statements = sqlglot.parse(sql, read="bigquery")
    assert len(statements) == 1 and isinstance(statements[0], exp.Select)
    for table in statements[0].find_all(exp.Table):
        assert not table.args.get("db") and not table.args.get("catalog"), "the adapter qualifies table names"
        assert table.name in TABLE_FILES, f"unknown table {table.name}"
    translated = to_duckdb(sql)
    assert ("QUALIFY ROW_NUMBER() OVER" in translated) == (
        path.stem in LATEST_VIEWS | {"drift_reports_latest"}
    )


def test_every_view_runs_on_empty_tables(db: duckdb.DuckDBPyConnection) -> None:
    for path in VIEWS:
        assert db.execute(f"SELECT * FROM {path.stem}").fetchall() == []  # noqa: S608 - our view files


# --- Orders -------------------------------------------------------------------------------------------


def test_orders_latest_is_the_newest_version_whatever_the_delivery_order(
    db: duckdb.DuckDBPyConnection,
) -> None:
    store = Store(db)
    # updated (newest) arrives first, then paid, then create, then duplicates of both updates
    store.deliver("orders/updated", fixture("orders_updated.json"), "wh-updated", at(1))
    store.deliver("orders/paid", fixture("orders_paid.json"), "wh-paid", at(2))
    store.deliver("orders/create", fixture("orders_create.json"), "wh-create", at(3))
    store.deliver("orders/updated", fixture("orders_updated.json"), "wh-updated", at(4))
    store.deliver("orders/paid", fixture("orders_paid.json"), "wh-paid", at(5))
    assert store.query("SELECT COUNT(*) FROM orders") == [(5,)]
    assert store.query("SELECT id, webhook_id, financial_status, current_total_price FROM orders_latest") == [
        (820982911946154508, "wh-updated", "partially_refunded", Decimal("298.01"))
    ]
    lines = store.query("SELECT id, webhook_id, current_quantity FROM order_line_items_latest ORDER BY id")
    assert lines == [
        (315789986012684393, "wh-updated", 1),
        (487817672276298554, "wh-updated", 0),
        (976318377106520349, "wh-updated", 1),
    ]


def test_line_items_follow_the_winning_version(db: duckdb.DuckDBPyConnection) -> None:
    store = Store(db)
    first = fixture("orders_create_5_items.json")
    edited = fixture("orders_create_5_items.json")
    edited["updated_at"] = "2024-11-30T09:00:00-05:00"
    edited["line_items"] = edited["line_items"][:3]
    edited["line_items"][0]["quantity"] = 1
    store.deliver("orders/updated", edited, "wh-edit", at(1))
    store.deliver("orders/create", first, "wh-create", at(2))
    rows = store.query("SELECT id, quantity, webhook_id FROM order_line_items_latest ORDER BY id")
    assert rows == [
        (13000000000101, 1, "wh-edit"),
        (13000000000102, 1, "wh-edit"),
        (13000000000103, 3, "wh-edit"),
    ]
    assert store.query("SELECT line_item_count FROM orders_latest") == [(3,)]


def test_ties_on_updated_at_are_broken_by_received_at_then_webhook_id(db: duckdb.DuckDBPyConnection) -> None:
    store = Store(db)
    paid = fixture("orders_create_5_items.json")
    fulfilled = dict(paid, fulfillment_status="fulfilled")
    store.deliver("orders/updated", fulfilled, "wh-1", at(2))
    store.deliver("orders/paid", paid, "wh-2", at(1))
    assert store.query("SELECT webhook_id, fulfillment_status FROM orders_latest") == [("wh-1", "fulfilled")]

    other = dict(paid, id=5000000000999, financial_status="pending")
    other_paid = dict(other, financial_status="paid")
    store.deliver("orders/updated", other_paid, "wh-b", at(5))
    store.deliver("orders/create", other, "wh-a", at(5))
    winner = store.query("SELECT webhook_id, financial_status FROM orders_latest WHERE id = 5000000000999")
    assert winner == [("wh-b", "paid")]
    assert store.query(
        "SELECT DISTINCT webhook_id FROM order_line_items_latest WHERE order_id = 5000000000999"
    ) == [("wh-b",)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_delivery_order_with_duplicates_gives_the_newest_version(
    db: duckdb.DuckDBPyConnection, data: Any
) -> None:
    db.execute("DELETE FROM orders; DELETE FROM order_line_items")
    store = Store(db)
    order_id = 5000000000000 + data.draw(st.integers(1, 10**6))
    versions = data.draw(st.lists(st.integers(0, 50), min_size=1, max_size=6, unique=True))
    events = []
    for n, minute in enumerate(versions):
        body = fixture("orders_create_5_items.json")
        body["id"] = order_id
        body["updated_at"] = (datetime(2024, 11, 29, tzinfo=UTC) + timedelta(minutes=minute)).isoformat()
        body["line_items"] = body["line_items"][: 1 + minute % 5]
        events.append((f"wh-{n}", body))
    deliveries = events + data.draw(st.lists(st.sampled_from(events), max_size=4))
    order = data.draw(st.permutations(range(len(deliveries))))
    for step, index in enumerate(order):
        webhook_id, body = deliveries[index]
        store.deliver("orders/updated", body, webhook_id, at(step))
    newest_minute = max(versions)
    expected_webhook = f"wh-{versions.index(newest_minute)}"
    latest = store.query("SELECT webhook_id, updated_at FROM orders_latest")
    assert latest == [
        (expected_webhook, datetime(2024, 11, 29, tzinfo=UTC) + timedelta(minutes=newest_minute))
    ]
    lines = store.query("SELECT webhook_id, COUNT(*) FROM order_line_items_latest GROUP BY webhook_id")
    assert lines == [(expected_webhook, 1 + newest_minute % 5)]


# --- Refunds ------------------------------------------------------------------------------------------


def test_refunds_are_deduplicated_across_topics_and_deliveries(db: duckdb.DuckDBPyConnection) -> None:
    store = Store(db)
    store.deliver("refunds/create", fixture("refunds_create.json"), "wh-refund", at(1))
    store.deliver("orders/updated", fixture("orders_updated.json"), "wh-updated", at(2))
    store.deliver("refunds/create", fixture("refunds_create.json"), "wh-refund", at(3))
    assert store.query("SELECT COUNT(*) FROM refunds") == [(3,)]
    assert store.query("SELECT id, transactions_amount, webhook_id FROM refunds_latest") == [
        (890088186047892319, Decimal("99.99"), "wh-refund")
    ]
    assert store.query("SELECT id, variant_id, quantity FROM refund_line_items_latest") == [
        (487817672276298627, 642667041472713922, 1)
    ]


def test_units_sold_net_of_refunds_per_variant_and_day(db: duckdb.DuckDBPyConnection) -> None:
    store = Store(db)
    store.deliver("orders/create", fixture("orders_create.json"), "wh-create", at(1))
    store.deliver("refunds/create", fixture("refunds_create.json"), "wh-refund", at(2))
    sold = store.query(
        to_duckdb(
            """
            SELECT variant_id, SUM(units) AS units FROM (
              SELECT variant_id, quantity AS units FROM order_line_items_latest WHERE variant_id IS NOT NULL
              UNION ALL
              SELECT variant_id, -quantity AS units FROM refund_line_items_latest
            ) GROUP BY variant_id ORDER BY variant_id
            """
        )
    )
    assert sold == [(642667041472713922, 0), (757650484644203962, 1)]


# --- Products and variants ----------------------------------------------------------------------------


def test_products_latest_and_the_variants_of_the_winning_version(db: duckdb.DuckDBPyConnection) -> None:
    store = Store(db)
    update = fixture("products_update.json")
    update["variants"] = update["variants"][:1]  # the medium variant was removed
    store.deliver("products/update", update, "wh-update", at(1))
    store.deliver("products/create", fixture("products_create.json"), "wh-create", at(2))
    store.deliver("products/update", update, "wh-update", at(3))
    assert store.query("SELECT id, webhook_id, deleted, variant_count FROM products_latest") == [
        (788032119674292922, "wh-update", False, 1)
    ]
    assert store.query("SELECT id, price, webhook_id FROM variants_latest") == [
        (642667041472713922, Decimal("17.99"), "wh-update")
    ]


def test_a_deleted_product_stays_deleted_and_loses_its_variants(db: duckdb.DuckDBPyConnection) -> None:
    store = Store(db)
    store.deliver("products/create", fixture("products_create.json"), "wh-create", at(1))
    store.deliver("products/delete", {"id": 788032119674292922}, "wh-delete", at(2))
    late = fixture("products_update.json")
    late["updated_at"] = "2030-01-01T00:00:00Z"  # even a later-dated update delivered after the delete
    store.deliver("products/update", late, "wh-late", at(3))
    assert store.query("SELECT id, deleted, webhook_id FROM products_latest") == [
        (788032119674292922, True, "wh-delete")
    ]
    assert store.query("SELECT COUNT(*) FROM variants_latest") == [(0,)]


def test_a_product_without_updated_at_loses_to_any_dated_version(db: duckdb.DuckDBPyConnection) -> None:
    store = Store(db)
    test_notification = dict(fixture("products_create.json"), updated_at=None, title="Test notification")
    store.deliver("products/create", fixture("products_create.json"), "wh-real", at(1))
    store.deliver("products/update", test_notification, "wh-test", at(2))
    assert store.query("SELECT webhook_id, title FROM products_latest") == [("wh-real", "Example T-Shirt")]


# --- Inventory levels and customers -------------------------------------------------------------------


def test_inventory_levels_latest_per_item_and_location(db: duckdb.DuckDBPyConnection) -> None:
    store = Store(db)
    base = fixture("inventory_levels_update.json")

    def level(location: int, available: int, hour: int) -> dict[str, Any]:
        return dict(
            base, location_id=location, available=available, updated_at=f"2025-03-01T{hour:02d}:00:00-05:00"
        )

    store.deliver("inventory_levels/update", level(1, 2, 12), "wh-3", at(1))
    store.deliver("inventory_levels/update", level(1, 5, 10), "wh-1", at(2))
    store.deliver("inventory_levels/update", level(1, 9, 11), "wh-2", at(3))
    store.deliver("inventory_levels/update", level(1, 2, 12), "wh-3", at(4))
    store.deliver("inventory_levels/update", level(2, 40, 9), "wh-4", at(5))
    rows = store.query(
        "SELECT location_id, available, updated_at FROM inventory_levels_latest ORDER BY location_id"
    )
    assert rows == [
        (1, 2, datetime(2025, 3, 1, 17, 0, tzinfo=UTC)),
        (2, 40, datetime(2025, 3, 1, 14, 0, tzinfo=UTC)),
    ]


def test_customers_latest(db: duckdb.DuckDBPyConnection) -> None:
    store = Store(db)
    store.deliver("customers/update", fixture("customers_update.json"), "wh-update", at(1))
    store.deliver("customers/create", fixture("customers_create.json"), "wh-create", at(2), "2024-10")
    null_dated = dict(fixture("customers_create.json"), updated_at=None, orders_count=99)
    store.deliver("customers/update", null_dated, "wh-test", at(3), "2024-10")
    assert store.query("SELECT id, webhook_id, orders_count FROM customers_latest") == [
        (706405506930370084, "wh-update", 1)
    ]


# --- Schema drift report ------------------------------------------------------------------------------


def test_schema_drift_report_counts_events_per_topic_version_and_field(db: duckdb.DuckDBPyConnection) -> None:
    store = Store(db)
    body = fixture("orders_create_5_items.json")
    body["loyalty_tier"] = "gold"
    store.deliver("orders/create", body, "wh-1", at(1))
    store.deliver("orders/create", body, "wh-1", at(2))  # a duplicate delivery counts once
    store.deliver("orders/create", dict(body, id=5000000000124), "wh-2", at(3))
    store.deliver("orders/create", fixture("orders_create_5_items.json"), "wh-3", at(4), "2099-01")
    rows = store.query(
        "SELECT shopify_topic, api_version, kind, field_path, events, shops, first_seen_at, last_seen_at "
        "FROM schema_drift_report ORDER BY field_path"
    )
    assert rows == [
        ("orders/create", "2099-01", "unknown_api_version", "(api_version)", 1, 1, at(4), at(4)),
        # read with the newest schema (2026-04), which no longer has checkout_id
        ("orders/create", "2099-01", "unknown_field", "checkout_id", 1, 1, at(4), at(4)),
        ("orders/create", "2025-07", "unknown_field", "loyalty_tier", 2, 1, at(1), at(3)),
    ]


def test_views_hold_one_row_per_key_on_a_shuffled_stream(db: duckdb.DuckDBPyConnection) -> None:
    """Every fixture, twice, shuffled: each latest view keeps one row per its key."""
    store = Store(db)
    events = [
        (entry["topic"], fixture(entry["file"]), f"wh-{entry['file']}", entry["api_version"])
        for entry in json.loads((ROOT / "tests" / "fixtures" / "webhooks" / "index.json").read_text())[
            "fixtures"
        ]
    ]
    deliveries = events * 2
    random.Random(7).shuffle(deliveries)
    for step, (topic, body, webhook_id, version) in enumerate(deliveries):
        store.deliver(topic, body, webhook_id, at(step), version)
    for view in sorted(LATEST_VIEWS):
        table = view.removesuffix("_latest")
        key = ", ".join(TABLE_FILES[table]["latest_key"])
        duplicates = store.query(f"SELECT {key}, COUNT(*) FROM {view} GROUP BY {key} HAVING COUNT(*) > 1")  # noqa: S608
        assert duplicates == [], view
        rows = store.query(f"SELECT COUNT(*) FROM {view}")[0][0]  # noqa: S608 - names from our files
        # the fixtures delete their product, so its variants are gone whatever the order
        assert (rows == 0) == (view == "variants_latest"), view
