"""The feature SQL is BigQuery SQL: the same hand-made store gives the same features on every
backend (DuckDB always; the BigQuery API through bqemulator inside ``.venv-bq``).

Imports only what ``.venv-bq`` has (no pandas): the SQL file is read as text and run through
``Warehouse.query``, the port every backend implements.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from typing import Any

import pytest

from shared.features import COLUMNS
from shared.settings import REPO_ROOT
from tests.contract.conftest import Backend
from tests.samples import sample_row

SQL = (REPO_ROOT / "shared" / "sql" / "features" / "variant_daily_features.sql").read_text()
SHOP = "contract-features.myshopify.com"
PRODUCT, VARIANT, ITEM, LOCATION = 8_001, 9_001, 7_001, 6_001
START, END = date(2024, 3, 1), date(2024, 3, 7)


def at(day: str, hms: str = "12:00:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{hms}").replace(tzinfo=UTC)


def load_store(warehouse: Any) -> None:
    """One variant: on sale from 03-01; 3 units on 03-02; 2 more on 03-03, cancelled on 03-04;
    1 unit of the first order refunded on 03-05; stock 5 from 03-01 10:00; a promotion over
    03-06..03-07 announced in February."""
    serial = itertools.count(1)

    def put(table: str, **values: Any) -> None:
        n = next(serial)
        values.setdefault("shop_domain", SHOP)
        values.setdefault("webhook_id", f"wh-{n}")
        values.setdefault("shopify_topic", "test/topic")
        values.setdefault("received_at", at("2024-04-01"))
        values.setdefault("loaded_at", at("2024-04-01"))
        spec = warehouse.schema.table(table)
        warehouse.insert_rows(table, [sample_row(spec, values, seed=n, fill_nullable=False)])

    created = at("2024-03-01", "00:00:00")
    put("products", id=PRODUCT, product_type="Mug", created_at=created, updated_at=at("2024-02-28"),
        deleted=False, variant_count=1, webhook_id="wh-product")  # fmt: skip
    put("variants", id=VARIANT, product_id=PRODUCT, product_updated_at=at("2024-02-28"),
        updated_at=at("2024-02-28"), price="10.00", compare_at_price="20.00", inventory_item_id=ITEM,
        webhook_id="wh-product")  # fmt: skip
    put(
        "inventory_levels",
        inventory_item_id=ITEM,
        location_id=LOCATION,
        available=5,
        updated_at=at("2024-03-01", "10:00:00"),
    )
    for order, when, quantity, cancelled in (
        (1, at("2024-03-02"), 3, None),
        (2, at("2024-03-03"), 2, at("2024-03-04", "09:00:00")),
    ):
        webhook = f"wh-order-{order}"
        put("orders", id=order, created_at=when, updated_at=cancelled or when, cancelled_at=cancelled,
            currency="USD", total_price="1.00", line_item_count=1, webhook_id=webhook)  # fmt: skip
        put("order_line_items", order_id=order, id=100 + order, order_created_at=when, order_updated_at=when,
            currency="USD", variant_id=VARIANT, product_id=PRODUCT, quantity=quantity, price="10.00",
            webhook_id=webhook)  # fmt: skip
    put("refunds", id=500, order_id=1, created_at=at("2024-03-05"), currency="USD")
    put("refund_line_items", id=501, refund_id=500, order_id=1, line_item_id=101, variant_id=VARIANT,
        product_id=PRODUCT, quantity=1, refund_created_at=at("2024-03-05"))  # fmt: skip
    put("promotions", id=1, title="spring", starts_at=at("2024-03-06", "00:00:00"),
        ends_at=at("2024-03-08", "00:00:00"), discount=0.2, created_at=at("2024-02-01"),
        updated_at=at("2024-02-01"), source="merchant")  # fmt: skip


def bound(sql: str, start: date, end: date) -> str:
    """The window as literals: bqemulator 1.4.0 mis-binds a named parameter used more than
    once ("Parameter argument/count mismatch"); BigQuery itself does not (the adapters bind
    ``@start_date`` / ``@end_date`` as parameters, tests/unit/test_feature_sql.py)."""
    return sql.replace("@start_date", f"DATE '{start}'").replace("@end_date", f"DATE '{end}'")


def test_the_feature_sql_gives_the_same_known_answers_on_every_backend(backend: Backend) -> None:
    load_store(backend.warehouse)
    rows = backend.warehouse.query(bound(SQL, START, END))
    assert rows and list(rows[0]) == list(COLUMNS)
    by_day = {row["date"].isoformat()[:10]: row for row in rows if row["variant_id"] == VARIANT}
    assert sorted(by_day) == [f"2024-03-0{d}" for d in range(1, 8)]

    def col(name: str) -> list[Any]:
        return [None if by_day[d][name] is None else float(by_day[d][name]) for d in sorted(by_day)]

    # Net of the cancellation (03-04) and the refund (03-05), each on its own day, floored at 0.
    assert col("units") == [0, 3, 2, 0, 0, 0, 0]
    assert col("lag_1") == [None, 0, 3, 2, 0, 0, 0]
    assert col("rmean_7")[3] == pytest.approx(5 / 3)  # 03-01..03-03 (the variant's first days)
    assert col("price") == [10] * 7 and col("discount") == [0.5] * 7
    assert col("inventory_on_hand") == [None, 5, 5, 5, 5, 5, 5]  # stamped 03-01 10:00: counts from 03-02
    assert col("product_age_days") == [0, 1, 2, 3, 4, 5, 6]
    assert col("dow") == [5, 6, 7, 1, 2, 3, 4]  # 2024-03-01 was a Friday
    assert col("promo_active") == [0, 0, 0, 0, 0, 1, 1]
    assert col("promo_discount") == [0, 0, 0, 0, 0, 0.2, 0.2]
    assert col("days_to_promo") == [5, 4, 3, 2, 1, 0, 0]
    assert by_day["2024-03-03"]["product_type"] == "Mug"


def test_the_bulk_read_path_returns_what_query_returns(backend: Backend) -> None:
    """``query_frame`` (the trainer's path to 1 M feature rows: Arrow, no Python rows) gives the
    same values as ``query``, with dates as datetime64 and NUMERIC as float64."""
    import pandas as pd

    load_store(backend.warehouse)
    sql = bound(SQL, START, END)
    frame = backend.warehouse.query_frame(sql)
    rows = backend.warehouse.query(sql)
    assert list(frame.columns) == list(COLUMNS) and len(frame) == len(rows) == 7
    assert pd.api.types.is_datetime64_any_dtype(frame["date"])
    assert frame["price"].dtype == "float64"
    ordered = frame.sort_values("date").reset_index(drop=True)
    expected = sorted(rows, key=lambda row: row["date"])
    for column in ("units", "lag_1", "price", "inventory_on_hand", "days_to_promo"):
        got = [None if pd.isna(value) else float(value) for value in ordered[column]]
        want = [None if row[column] is None else float(row[column]) for row in expected]
        assert got == want, column
