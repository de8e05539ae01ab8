"""Daily demand features (shared/sql/features/variant_daily_features.sql) on DuckDB.

Three kinds of test: hand-made tables with known answers for every feature family; the
generated history (devkit/simulator/history.py) against the demand model it came from; and
the leakage test: cutting every row stamped at or after 00:00 of D must leave every feature
of D (all but the label) and every column of the days before D unchanged. The leakage check
itself is shown to catch SQL that reads day D.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from devkit.simulator.demand import promo_distance
from devkit.simulator.history import History, generate_history, write_tables
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.features import COLUMNS
from shared.features.build import build_features, feature_sql
from tests.samples import sample_row

SHOP = "features-test.myshopify.com"
START, END = date(2024, 3, 1), date(2024, 3, 10)
V1, V2, V3 = 40_000_000_000_001, 40_000_000_000_002, 40_000_000_000_003
P1, P2, P3 = 7_000_000_000_001, 7_000_000_000_002, 7_000_000_000_003
ITEM1 = 42_000_000_000_001
LOC_A, LOC_B = 71_000_000_001, 71_000_000_002


def ts(day: str, hms: str = "12:00:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{hms}").replace(tzinfo=UTC)


class Tables:
    """Rows for a fresh in-memory warehouse, every required column filled."""

    def __init__(self) -> None:
        self.warehouse = DuckDBWarehouse(":memory:")
        self.serial = itertools.count(1)

    def put(self, table: str, **values: Any) -> None:
        n = next(self.serial)
        values.setdefault("shop_domain", SHOP)
        values.setdefault("webhook_id", f"wh-{n}")
        values.setdefault("shopify_topic", "test/topic")
        values.setdefault("received_at", ts("2024-04-01") + timedelta(seconds=n))
        values.setdefault("loaded_at", ts("2024-04-01") + timedelta(seconds=n))
        spec = self.warehouse.schema.table(table)
        self.warehouse.insert_rows(table, [sample_row(spec, values, seed=n, fill_nullable=False)])

    def order(self, order_id: int, created: datetime, lines: list[tuple[int, int, int]], **more: Any) -> None:
        """An order version with its line items ``(line_id, variant_id, quantity)``."""
        webhook = f"wh-order-{order_id}-{more.get('updated_at', created).isoformat()}"
        self.put(
            "orders",
            id=order_id,
            created_at=created,
            updated_at=more.pop("updated_at", created),
            currency="USD",
            total_price="1.00",
            line_item_count=len(lines),
            webhook_id=webhook,
            **more,
        )
        for line_id, variant_id, quantity in lines:
            self.put(
                "order_line_items",
                order_id=order_id,
                id=line_id,
                order_created_at=created,
                order_updated_at=created,
                currency="USD",
                variant_id=variant_id,
                quantity=quantity,
                price="1.00",
                webhook_id=webhook,
            )

    def refund(
        self, refund_id: int, order_id: int, line_id: int, variant_id: int | None, qty: int, at: datetime
    ) -> None:
        self.put(
            "refund_line_items",
            id=refund_id * 10,
            refund_id=refund_id,
            order_id=order_id,
            line_item_id=line_id,
            variant_id=variant_id,
            quantity=qty,
            refund_created_at=at,
        )

    def version(
        self, product: int, variant: int, at: datetime, price: str, compare: str | None, **more: Any
    ) -> None:
        webhook = f"wh-product-{product}-{variant}-{at.isoformat()}-{price}"
        self.put(
            "products",
            id=product,
            product_type=more.pop("product_type", "Mug"),
            created_at=more.pop("created_at"),
            updated_at=at,
            deleted=False,
            variant_count=1,
            webhook_id=webhook,
        )
        self.put(
            "variants",
            id=variant,
            product_id=product,
            product_updated_at=at,
            updated_at=at,
            price=price,
            compare_at_price=compare,
            webhook_id=webhook,
            **more,
        )

    def level(self, location: int, at: datetime, available: int | None, item: int = ITEM1) -> None:
        self.put(
            "inventory_levels",
            inventory_item_id=item,
            location_id=location,
            available=available,
            updated_at=at,
        )

    def promotion(
        self,
        promo_id: int,
        starts: datetime,
        ends: datetime | None,
        discount: float,
        created: datetime,
        updated: datetime | None = None,
    ) -> None:
        self.put(
            "promotions",
            id=promo_id,
            title=f"promo {promo_id}",
            starts_at=starts,
            ends_at=ends,
            discount=discount,
            created_at=created,
            updated_at=updated or created,
            source="merchant",
        )


@pytest.fixture(scope="module")
def hand_made() -> pd.DataFrame:
    t = Tables()
    p1_created = ts("2024-02-20", "10:00:00")
    # V1: price 10.00 against 20.00 (discount 0.5) from creation; two versions on 03-04, the
    # newer by updated_at (delivered first) wins from 03-05; one stamped exactly 03-06 00:00
    # counts from 03-07 (a feature of D sees rows stamped strictly before D 00:00).
    t.version(P1, V1, p1_created, "10.00", "20.00", created_at=p1_created, inventory_item_id=ITEM1)
    t.version(
        P1, V1, ts("2024-03-04", "15:00:00"), "12.00", None, created_at=p1_created, inventory_item_id=ITEM1
    )
    t.version(
        P1, V1, ts("2024-03-04", "09:00:00"), "11.00", None, created_at=p1_created, inventory_item_id=ITEM1
    )
    t.version(
        P1, V1, ts("2024-03-06", "00:00:00"), "9.00", "8.00", created_at=p1_created, inventory_item_id=ITEM1
    )
    # Inventory of ITEM1: location A 50 long ago, 5 on 02-29, 3 on 03-02; B 10 then 7 on 03-01.
    t.level(LOC_A, ts("2024-01-01"), 50)
    t.level(LOC_A, ts("2024-02-29", "23:00:00"), 5)
    t.level(LOC_A, ts("2024-03-02", "08:00:00"), 3)
    t.level(LOC_B, ts("2024-03-01", "13:00:00"), 7)
    t.level(LOC_B, ts("2024-03-01", "12:00:00"), 10)
    # Sales of V1 (net by event day): 02-25 +1; 03-02 +3; 03-03 +2 -1 (refund before the
    # cancellation); 03-04 -2 (cancellation; the refund after it is ignored); 03-05 -1
    # (refund of 03-02's order); 03-06 +4 (order with two versions: counted once); 03-08 +2 -1.
    t.order(5001, ts("2024-02-25"), [(1, V1, 1)])
    t.order(5002, ts("2024-03-02", "10:00:00"), [(2, V1, 3)])
    t.order(5003, ts("2024-03-03", "09:00:00"), [(3, V1, 2)])
    t.order(
        5003,
        ts("2024-03-03", "09:00:00"),
        [(3, V1, 2)],
        updated_at=ts("2024-03-04", "01:00:00"),
        cancelled_at=ts("2024-03-04", "01:00:00"),
    )
    t.refund(901, 5003, 3, V1, 1, ts("2024-03-03", "20:00:00"))
    t.refund(902, 5003, 3, V1, 2, ts("2024-03-04", "05:00:00"))
    t.refund(903, 5002, 2, None, 1, ts("2024-03-05"))  # variant taken from the order line
    t.order(5004, ts("2024-03-06", "08:00:00"), [(4, V1, 4)])
    t.order(5004, ts("2024-03-06", "08:00:00"), [(4, V1, 4)], updated_at=ts("2024-03-08"))
    t.order(5005, ts("2024-03-08", "07:00:00"), [(5, V1, 2)])
    t.refund(904, 5004, 4, V1, 1, ts("2024-03-08", "09:00:00"))
    t.order(5006, ts("2024-03-02", "11:00:00"), [(6, V1, 100)], test=True)  # a test order: ignored
    # V2: launched 03-04 12:00 and sold at once; its product deleted on 03-09 (tombstone).
    p2_created = ts("2024-03-04", "12:00:00")
    t.version(P2, V2, p2_created, "26.00", None, created_at=p2_created, product_type="Cap")
    t.order(5007, ts("2024-03-04", "18:00:00"), [(7, V2, 1)])
    t.put("products", id=P2, updated_at=ts("2024-03-09"), deleted=True, variant_count=0)
    # V3: a sale on 03-03 before its product's created_at (03-05): rows start on the sale's day.
    p3_created = ts("2024-03-05")
    t.version(P3, V3, p3_created, "5.00", None, created_at=p3_created, product_type="Socks")
    t.order(5008, ts("2024-03-03", "10:00:00"), [(8, V3, 2)])
    # Promotions: A covers 03-03..03-04; B covers 03-08 (announced 03-06 10:00, so known from
    # 03-07); C runs from 03-09, open-ended, announced exactly at 03-01 00:00 (known from
    # 03-02), its discount raised from 0.3 to 0.35 on 03-07 12:00 (so from 03-08).
    t.promotion(1, ts("2024-03-03", "00:00:00"), ts("2024-03-05", "00:00:00"), 0.2, ts("2024-02-01"))
    t.promotion(
        2, ts("2024-03-08", "06:00:00"), ts("2024-03-08", "18:00:00"), 0.1, ts("2024-03-06", "10:00:00")
    )
    t.promotion(3, ts("2024-03-09", "00:00:00"), None, 0.3, ts("2024-03-01", "00:00:00"))
    t.promotion(
        3,
        ts("2024-03-09", "00:00:00"),
        None,
        0.35,
        ts("2024-03-01", "00:00:00"),
        ts("2024-03-07", "12:00:00"),
    )
    frame = build_features(t.warehouse, START, END)
    return frame


def rows_of(frame: pd.DataFrame, variant: int) -> pd.DataFrame:
    out = frame[frame["variant_id"] == variant].copy()
    out.index = [d.date().isoformat() for d in out["date"]]
    return out


V1_NET = {  # floored net units of V1 from its first day (02-20) to END
    "2024-02-25": 1.0,
    "2024-03-02": 3.0,
    "2024-03-03": 1.0,
    "2024-03-06": 4.0,
    "2024-03-08": 1.0,
}


def v1_series() -> pd.Series:
    days = pd.date_range("2024-02-20", END.isoformat(), freq="D")
    return pd.Series(
        [V1_NET.get(d.date().isoformat(), 0.0) for d in days], index=[d.date().isoformat() for d in days]
    )


def test_columns_dtypes_and_one_row_per_variant_and_day(hand_made: pd.DataFrame) -> None:
    assert tuple(hand_made.columns) == COLUMNS
    assert hand_made["variant_id"].dtype == np.int64 and hand_made["product_id"].dtype == np.int64
    assert hand_made["date"].dtype == "datetime64[ns]"
    for name in COLUMNS:
        if name not in ("shop_domain", "variant_id", "product_id", "date", "product_type"):
            assert hand_made[name].dtype == np.float64, name
    assert not hand_made.duplicated(["shop_domain", "variant_id", "date"]).any()
    assert hand_made["date"].min() == pd.Timestamp(START) and hand_made["date"].max() == pd.Timestamp(END)


def test_label_is_net_of_cancellations_and_refunds_by_event_day_floored(hand_made: pd.DataFrame) -> None:
    v1 = rows_of(hand_made, V1)
    assert list(v1.index) == [d.date().isoformat() for d in pd.date_range(START, END)]
    assert v1["units"].to_dict() == v1_series()[v1.index].to_dict()
    assert v1.loc["2024-03-04", "units"] == 0.0  # -2: floored


def test_rows_start_at_product_creation_or_first_sale(hand_made: pd.DataFrame) -> None:
    v2, v3 = rows_of(hand_made, V2), rows_of(hand_made, V3)
    assert v2.index[0] == "2024-03-04" and v2.loc["2024-03-04", "units"] == 1.0
    assert v3.index[0] == "2024-03-03" and v3.loc["2024-03-03", "units"] == 2.0
    assert np.isnan(v2.loc["2024-03-04", "lag_1"]) and np.isnan(v2.loc["2024-03-04", "rmean_7"])
    assert v2.loc["2024-03-05", "lag_1"] == 1.0 and np.isnan(v2.loc["2024-03-05", "lag_7"])
    assert v2.loc["2024-03-05", "rmean_7"] == 1.0 and v2.loc["2024-03-05", "rstd_7"] == 0.0
    assert v3.loc["2024-03-04", "product_age_days"] == -1.0  # sold before its product's created_at


def test_lags_and_rolling_windows_on_a_dense_spine(hand_made: pd.DataFrame) -> None:
    v1, series = rows_of(hand_made, V1), v1_series()
    days = list(series.index)
    for day in v1.index:
        i = days.index(day)
        for k in (1, 7, 14, 28):
            expected = series.iloc[i - k] if i - k >= 0 else np.nan
            assert v1.loc[day, f"lag_{k}"] == pytest.approx(expected, nan_ok=True), (day, k)
        for k in (7, 28):
            window = series.iloc[max(i - k, 0) : i].to_numpy()
            assert v1.loc[day, f"rmean_{k}"] == pytest.approx(window.mean()), (day, k)
            assert v1.loc[day, f"rstd_{k}"] == pytest.approx(window.std(), abs=1e-9), (day, k)
    # 03-06: lag_28 is 02-07, before V1 existed
    assert np.isnan(v1.loc["2024-03-06", "lag_28"])
    assert v1.loc["2024-03-06", "rmean_7"] == pytest.approx(4 / 7)
    assert v1.loc["2024-03-06", "rmean_28"] == pytest.approx(5 / 15)  # 15 days existed


def test_intermittency_features_read_the_28_days_before(hand_made: pd.DataFrame) -> None:
    v1, series = rows_of(hand_made, V1), v1_series()
    days = list(series.index)
    for day in v1.index:
        i = days.index(day)
        window = series.iloc[max(i - 28, 0) : i].to_numpy()
        assert v1.loc[day, "sale_days_28"] == pytest.approx((window > 0).mean()), day
        sold = np.flatnonzero(window > 0)
        expected = float(window.size - sold[-1]) if sold.size else np.nan
        assert v1.loc[day, "days_since_sale"] == pytest.approx(expected, nan_ok=True), day
    assert v1.loc["2024-03-06", "days_since_sale"] == 3.0  # last sale 03-03; 03-04 netted to 0
    assert v1.loc["2024-03-06", "sale_days_28"] == pytest.approx(3 / 15)  # V1 existed 15 days
    v2 = rows_of(hand_made, V2)
    assert (
        np.isnan(v2.loc["2024-03-04", "days_since_sale"]) and v2.loc["2024-03-05", "days_since_sale"] == 1.0
    )


def test_shop_trading_shares_per_weekday_from_orders_before_midnight(hand_made: pd.DataFrame) -> None:
    """Non-test orders on 02-25 (Sun), 03-02 (Sat), 03-03 (Sun), 03-04 (Mon), 03-06 (Wed),
    03-08 (Fri): the share of the 4 same weekdays in D-28..D-1 with an order."""
    shop = [f"shop_trading_dow{k}" for k in range(1, 8)]
    for variant in (V1, V2, V3):  # shop level: the same on every variant's row of a day
        rows = rows_of(hand_made, variant)
        assert rows.loc["2024-03-09", shop].tolist() == [0.25, 0.0, 0.25, 0.0, 0.25, 0.25, 0.5]
    v1 = rows_of(hand_made, V1)
    # On Monday 03-04 its own orders do not count yet; the test order of 03-02 never does.
    assert v1.loc["2024-03-04", shop].tolist() == [0.0, 0.0, 0.0, 0.0, 0.0, 0.25, 0.5]
    assert v1.loc["2024-03-01", shop].tolist() == [0.0] * 6 + [0.25]


def test_price_and_discount_as_of_midnight(hand_made: pd.DataFrame) -> None:
    v1 = rows_of(hand_made, V1)
    expected = {
        "2024-03-01": (10.0, 0.5),
        "2024-03-04": (10.0, 0.5),  # 03-04's versions are stamped during the day
        "2024-03-05": (12.0, 0.0),  # the newer of 03-04 by updated_at (compare_at NULL)
        "2024-03-06": (12.0, 0.0),  # stamped exactly 03-06 00:00: not yet
        "2024-03-07": (9.0, 0.0),  # compare_at 8.00 is below the price: no markdown
        "2024-03-10": (9.0, 0.0),
    }
    for day, (price, discount) in expected.items():
        assert (v1.loc[day, "price"], v1.loc[day, "discount"]) == (price, discount), day
    v2 = rows_of(hand_made, V2)
    assert np.isnan(v2.loc["2024-03-04", "price"]) and v2.loc["2024-03-05", "price"] == 26.0


def test_inventory_is_the_sum_over_locations_of_the_newest_level_before_midnight(
    hand_made: pd.DataFrame,
) -> None:
    v1 = rows_of(hand_made, V1)
    assert v1.loc["2024-03-01", "inventory_on_hand"] == 5.0  # A: 5 (02-29 23:00); B not yet
    assert v1.loc["2024-03-02", "inventory_on_hand"] == 12.0  # A 5 + B 7 (newest of 03-01)
    assert v1.loc["2024-03-03", "inventory_on_hand"] == 10.0  # A 3 + B 7
    assert v1.loc["2024-03-10", "inventory_on_hand"] == 10.0
    assert rows_of(hand_made, V2)["inventory_on_hand"].isna().all()  # no inventory item


def test_product_type_and_age(hand_made: pd.DataFrame) -> None:
    v1, v2 = rows_of(hand_made, V1), rows_of(hand_made, V2)
    assert set(v1["product_type"]) == {"Mug"}
    assert set(v2["product_type"]) == {"Cap"}  # the delete tombstone has no type: the last real version's
    assert v1.loc["2024-03-01", "product_age_days"] == 10.0
    assert v2.loc["2024-03-04", "product_age_days"] == 0.0 and v2.loc["2024-03-10", "product_age_days"] == 6.0


def test_calendar_columns(hand_made: pd.DataFrame) -> None:
    v1 = rows_of(hand_made, V1)
    assert v1.loc["2024-03-01", "dow"] == 5.0  # Friday
    assert v1.loc["2024-03-04", "dow"] == 1.0 and v1.loc["2024-03-10", "dow"] == 7.0
    assert set(v1["month"]) == {3.0}


def test_promotions_as_announced(hand_made: pd.DataFrame) -> None:
    v1 = rows_of(hand_made, V1)
    nan = np.nan
    expected = {  # active, discount, days_to_promo, days_since_promo
        "2024-03-01": (0, 0.0, 2, nan),  # only A is known (C is announced at 03-01 00:00 exactly)
        "2024-03-02": (0, 0.0, 1, nan),
        "2024-03-03": (1, 0.2, 0, 0),
        "2024-03-04": (1, 0.2, 0, 0),
        "2024-03-05": (0, 0.0, 4, 1),  # next known: C on 03-09 (B not announced yet)
        "2024-03-06": (0, 0.0, 3, 2),
        "2024-03-07": (0, 0.0, 1, 3),  # B known now
        "2024-03-08": (1, 0.1, 0, 0),  # B covers the part of 03-08 it overlaps
        "2024-03-09": (1, 0.35, 0, 0),  # C, its newer version
        "2024-03-10": (1, 0.35, 0, 0),
    }
    for day, values in expected.items():
        got = tuple(v1.loc[day, ["promo_active", "promo_discount", "days_to_promo", "days_since_promo"]])
        assert got == pytest.approx(values, nan_ok=True), day
    assert (hand_made.groupby("date")["promo_discount"].nunique() == 1).all()  # store-wide


def test_an_empty_warehouse_gives_an_empty_frame_with_the_columns() -> None:
    frame = build_features(DuckDBWarehouse(":memory:"), START, END)
    assert tuple(frame.columns) == COLUMNS and len(frame) == 0


def test_a_variant_known_only_from_orders_still_gets_its_rows() -> None:
    """Orders can arrive before (or without) the catalogue: e.g. a replay of order history."""
    t = Tables()
    t.order(7001, ts("2024-03-02", "10:00:00"), [(71, 990001, 3)])
    t.order(7002, ts("2024-03-04", "10:00:00"), [(72, 990001, 1)])
    frame = build_features(t.warehouse, START, END)
    rows = rows_of(frame, 990001)
    assert rows.index[0] == "2024-03-02" and rows.index[-1] == END.isoformat()  # from its first sale
    assert rows.loc["2024-03-02", "units"] == 3 and rows.loc["2024-03-03", "units"] == 0
    assert rows.loc["2024-03-05", "lag_1"] == 1
    assert pd.isna(rows.loc["2024-03-05", "lag_7"])  # 02-27: before the variant's first sale
    assert (rows["product_id"] == 0).all()  # the line items named no product
    # One that last sold long before the window (lags included) is not carried on for ever.
    t.order(7003, ts("2023-06-01", "10:00:00"), [(73, 990002, 1)])
    assert 990002 not in set(build_features(t.warehouse, START, END)["variant_id"])
    assert rows["price"].isna().all() and rows["product_type"].isna().all()  # no catalogue yet


def test_the_slow_path_without_query_frame_gives_the_same_frame(hand_made: pd.DataFrame) -> None:
    class RowsOnly:
        def __init__(self, inner: DuckDBWarehouse) -> None:
            self.inner = inner

        def query(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
            return self.inner.query(sql, params)

    t = Tables()
    t.version(
        P1, V1, ts("2024-02-20"), "10.00", "20.00", created_at=ts("2024-02-20"), inventory_item_id=ITEM1
    )
    t.order(5001, ts("2024-03-02"), [(1, V1, 2)])
    t.level(LOC_A, ts("2024-03-01"), 4)
    fast = build_features(t.warehouse, START, END)
    slow = build_features(RowsOnly(t.warehouse), START, END)  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(fast, slow)


# --- The generated history against its demand model --------------------------------------------


HISTORY_START, HISTORY_END = date(2024, 1, 1), date(2024, 8, 1)  # [start, end)


@pytest.fixture(scope="module")
def history() -> History:
    return generate_history(40, HISTORY_START, HISTORY_END, seed=3)


def load(history: History, cut: date | None = None) -> DuckDBWarehouse:
    """A fresh warehouse with the history; with ``cut``, minus every row stamped at or after it."""
    warehouse = DuckDBWarehouse(":memory:")
    write_tables(warehouse, history.tables)
    if cut is not None:
        at = datetime.combine(cut, datetime.min.time(), UTC)
        with warehouse.connection() as con:
            # an order version made at/after the cut, and that version's line items
            con.execute(
                "DELETE FROM order_line_items WHERE webhook_id IN "
                "(SELECT webhook_id FROM orders WHERE updated_at >= $at)",
                {"at": at},
            )
            for table, column in (
                ("orders", "updated_at"),
                ("refunds", "created_at"),
                ("refund_line_items", "refund_created_at"),
                ("products", "updated_at"),
                ("variants", "updated_at"),
                ("inventory_levels", "updated_at"),
                ("promotions", "created_at"),
            ):
                con.execute(f"DELETE FROM {table} WHERE {column} >= $at", {"at": at})  # noqa: S608 - our names
    return warehouse


@pytest.fixture(scope="module")
def history_features(history: History) -> pd.DataFrame:
    return build_features(load(history), HISTORY_START, HISTORY_END - timedelta(days=1))


def test_generated_history_features_match_the_demand_model(
    history: History, history_features: pd.DataFrame
) -> None:
    demand, tables = history.demand, history.tables
    n_days, n = demand.units.shape
    truth = pd.DataFrame(
        {
            "date": np.repeat(demand.dates, n).astype("datetime64[ns]"),
            "variant_id": np.tile(demand.variant_ids, n_days),
            "sold": demand.units.ravel().astype(float),
            "list_price": demand.price.ravel(),
            "stock": (demand.inventory_on_hand - demand.restock).ravel().astype(float),
            "promo": np.repeat(demand.promo, n).astype(float),
            "promo_off": np.repeat(demand.discount, n).astype(float),
        }
    )
    to_next, since = promo_distance(demand.dates, demand.promotions)
    truth["to_next"], truth["since"] = np.repeat(to_next, n), np.repeat(since, n)

    def by_day(frame: pd.DataFrame, at: str, qty: str, sign: int) -> pd.Series:
        day = frame[at].dt.tz_convert(None).dt.normalize().astype("datetime64[ns]")
        return (sign * frame[qty]).groupby([day.rename("date"), frame["variant_id"]]).sum()

    lines, orders = tables["order_line_items"], tables["orders"]
    cancel = orders[orders["cancelled_at"].notna()] if "cancelled_at" in orders else orders.iloc[:0]
    extra = lines[lines["order_id"].isin(cancel["id"]) & (lines["shopify_topic"] == "orders/create")]
    extra = extra.merge(cancel[["id", "cancelled_at"]], left_on="order_id", right_on="id")
    moves = pd.concat(
        [
            by_day(tables["refund_line_items"], "refund_created_at", "quantity", -1),
            by_day(extra, "order_created_at", "quantity", 1),
            by_day(extra, "cancelled_at", "quantity", -1),
        ]
    )
    moves = moves.groupby(level=[0, 1]).sum().rename("moved").reset_index()
    got = history_features.merge(truth, on=["date", "variant_id"], how="left").merge(
        moves, on=["date", "variant_id"], how="left"
    )
    assert got["sold"].notna().all()
    expected_units = np.maximum(got["sold"] + got["moved"].fillna(0), 0)
    assert (got["units"] == expected_units).all()
    priced = got["price"].notna()
    assert priced.mean() > 0.99  # NULL only on a launch day (its first version is stamped that day)
    assert np.allclose(got.loc[priced, "price"], got.loc[priced, "list_price"])
    stocked = got["inventory_on_hand"].notna()
    assert stocked.mean() > 0.99
    assert (got.loc[stocked, "inventory_on_hand"] == got.loc[stocked, "stock"]).all()
    assert (got["promo_active"] == got["promo"]).all()
    assert np.allclose(got["promo_discount"], got["promo_off"])
    assert got["days_since_promo"].equals(got["since"].rename("days_since_promo"))
    announced = got["to_next"] <= 29  # announced at noon 30 to 60 days ahead: known 29 days ahead
    assert announced.any()
    assert (got.loc[announced, "days_to_promo"] == got.loc[announced, "to_next"]).all()


# --- Leakage --------------------------------------------------------------------------------------


WINDOW_START = HISTORY_START + timedelta(days=35)


def cut_days(history: History) -> list[date]:
    """Days that matter: a price change, a launch, a promotion's announcement and a refund day."""
    tables = history.tables
    updates = tables["products"][tables["products"]["shopify_topic"] == "products/update"]
    launches = tables["products"][tables["products"]["created_at"].dt.date > WINDOW_START]
    announced = tables["promotions"]["created_at"].dt.date
    announced = announced[(announced > WINDOW_START) & (announced < HISTORY_END - timedelta(days=1))]
    days = {
        (updates["updated_at"].iloc[len(updates) // 2] + pd.Timedelta(hours=2)).date(),
        launches["created_at"].iloc[0].date(),
        announced.iloc[0],
        WINDOW_START + timedelta(days=40),
    }
    return sorted(d for d in days if WINDOW_START < d < HISTORY_END - timedelta(days=1))


def leaks(history: History, cut: date, sql: str | None = None) -> list[str]:
    """What differs between the features of days <= ``cut`` on all the data and on the data
    stamped before ``cut`` 00:00 (the label of ``cut`` itself excluded)."""
    last = HISTORY_END - timedelta(days=1)  # both over the whole window, compared up to the cut
    full = build_features(load(history), WINDOW_START, last, sql=sql)
    past = build_features(load(history, cut), WINDOW_START, last, sql=sql)
    full, past = full[full["date"] <= pd.Timestamp(cut)], past[past["date"] <= pd.Timestamp(cut)]
    problems = []
    key = ["shop_domain", "variant_id", "date"]
    day = pd.Timestamp(cut)
    before_full, before_past = full[full["date"] < day], past[past["date"] < day]
    if not before_full[key].reset_index(drop=True).equals(before_past[key].reset_index(drop=True)):
        problems.append("the rows of the days before the cut differ")
    else:
        for column in COLUMNS:
            a, b = before_full[column].reset_index(drop=True), before_past[column].reset_index(drop=True)
            if not a.equals(b):
                problems.append(f"{column} before the cut")
    on_full, on_past = full[full["date"] == day], past[past["date"] == day]
    merged = on_full.merge(on_past, on=key, how="outer", suffixes=("", "_past"), indicator=True)
    if (merged["_merge"] == "right_only").any():
        problems.append("rows on the cut day that the full data lacks")
    new = merged[merged["_merge"] == "left_only"]
    if (new["product_age_days"] != 0).any():  # only products created during the cut day may be missing
        problems.append("rows on the cut day missing from the past data")
    both = on_full.merge(on_past, on=key, how="inner", suffixes=("", "_past"))
    for column in COLUMNS:
        if column in key or column == "units":
            continue
        a, b = both[column].reset_index(drop=True), both[f"{column}_past"].reset_index(drop=True)
        if not a.equals(b.rename(column)):
            problems.append(f"{column} on the cut day")
    return problems


@pytest.fixture(scope="module")
def cuts(history: History) -> list[date]:
    days = cut_days(history)
    assert len(days) >= 3
    return days


def test_no_feature_sees_data_stamped_at_or_after_midnight_of_its_day(
    history: History, cuts: list[date]
) -> None:
    for cut in cuts:
        assert leaks(history, cut) == [], cut


def test_a_cut_changes_the_label_of_its_day(history: History, cuts: list[date]) -> None:
    cut = cuts[-1]
    full = build_features(load(history), cut, cut)
    past = build_features(load(history, cut), cut, cut)
    assert full["units"].sum() > 0 and past["units"].sum() == 0


LEAKY = {
    "lag_1 reads D": ("LAG(units, 1)", "LAG(units, 0)"),
    "rolling window includes D": ("7 PRECEDING AND 1 PRECEDING", "6 PRECEDING AND CURRENT ROW"),
    "as-of joins take rows stamped during D": ("INTERVAL 1 DAY) AS DATE)", "INTERVAL 0 DAY) AS DATE)"),
    "shop trading counts the orders of D": (
        "AND CAST(DATE_SUB(c.cal_day, INTERVAL 1 DAY) AS DATE)",
        "AND c.cal_day",
    ),
    "days since a sale counts D": (
        "ORDER BY cal_day ROWS BETWEEN 28 PRECEDING AND 1 PRECEDING\n      ),\n      DAY",
        "ORDER BY cal_day ROWS BETWEEN 28 PRECEDING AND CURRENT ROW\n      ),\n      DAY",
    ),
    "promotions announced during D count": (
        "TIMESTAMP(c.cal_day)",
        "TIMESTAMP(DATE_ADD(c.cal_day, INTERVAL 1 DAY))",
    ),
}


@pytest.mark.parametrize("mutation", sorted(LEAKY))
def test_the_leakage_check_catches_sql_that_reads_day_d(
    history: History, cuts: list[date], mutation: str
) -> None:
    old, new = LEAKY[mutation]
    sql = feature_sql()
    assert old in sql
    leaky = sql.replace(old, new)
    assert any(leaks(history, cut, sql=leaky) for cut in cuts), mutation
