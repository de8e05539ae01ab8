"""Bulk history (devkit/simulator/history.py): rows that fit the typed tables, consistent with
the demand model, the same for the same seed, written in bulk or row by row alike."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest

from devkit.simulator.events import StoreSimulator
from devkit.simulator.history import (
    HISTORY_TABLES,
    History,
    frame_rows,
    generate_history,
    write_history,
)
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.warehouse_schema import RowDoesNotFit, conform_rows, load_schema

START, END = date(2024, 1, 1), date(2024, 4, 1)  # [start, end)
SCHEMA = load_schema()


@pytest.fixture(scope="module")
def history() -> History:
    return generate_history(60, START, END, seed=5)


def utc_day(series: pd.Series) -> pd.Series:
    return series.dt.tz_convert(None).dt.normalize()


def test_every_table_is_generated_with_backfill_rows(history: History) -> None:
    assert set(history.tables) == set(HISTORY_TABLES)
    for name, frame in history.tables.items():
        assert len(frame) > 0, name
        assert (frame["source"] == "backfill").all(), name


def test_frames_hold_only_table_columns_and_every_required_one(history: History) -> None:
    for name, frame in history.tables.items():
        spec = SCHEMA.table(name)
        assert set(frame.columns) <= set(spec.by_name), name
        for column in spec.columns:
            if column.required:
                assert column.name in frame.columns, (name, column.name)
                assert frame[column.name].notna().all(), (name, column.name)


def test_rows_conform_to_the_table_schemas(history: History) -> None:
    for name, frame in history.tables.items():
        sample = frame.sample(min(len(frame), 300), random_state=0)
        rows = conform_rows(SCHEMA.table(name), frame_rows(SCHEMA, name, sample))
        assert len(rows) == len(sample)


def test_sold_units_per_variant_and_utc_day_equal_the_demand_model(history: History) -> None:
    lines, orders = history.tables["order_line_items"], history.tables["orders"]
    cancelled_ids = set(orders.loc[orders["cancelled_at"].notna(), "id"])
    sold = lines[(lines["shopify_topic"] == "orders/create") & ~lines["order_id"].isin(cancelled_ids)]
    per_day = sold.groupby([utc_day(sold["order_created_at"]), sold["variant_id"]])["quantity"].sum()
    demand = history.demand
    t, v = np.nonzero(demand.units)
    expected = pd.Series(
        demand.units[t, v].astype(np.int64),
        index=pd.MultiIndex.from_arrays(
            [pd.DatetimeIndex(demand.dates[t].astype("datetime64[ns]")), demand.variant_ids[v]]
        ),
    )
    assert per_day.sort_index().to_numpy().tolist() == expected.sort_index().to_numpy().tolist()
    assert per_day.index.equals(expected.sort_index().index.set_names(per_day.index.names))


def test_orders_line_items_and_totals_are_consistent(history: History) -> None:
    orders, lines = history.tables["orders"], history.tables["order_line_items"]
    created = orders[orders["shopify_topic"] == "orders/create"]
    assert created["id"].is_unique and (created["id"].diff().dropna() > 0).sum() > 0
    assert lines.groupby("webhook_id").size().reindex(orders["webhook_id"]).to_numpy().tolist() == (
        orders["line_item_count"].tolist()
    )
    first = created.sort_values("created_at")
    assert first["id"].is_monotonic_increasing  # ids grow with creation time
    totals = (
        lines[lines["shopify_topic"] == "orders/create"]
        .groupby("order_id")
        .apply(lambda g: round(float((g["price"] * g["quantity"]).sum()), 2), include_groups=False)
    )
    assert np.allclose(created.set_index("id")["total_line_items_price"].reindex(totals.index), totals)
    money = created["subtotal_price"] + created["total_shipping_price"] + created["total_tax"]
    assert np.allclose(created["total_price"], money)


def test_cancellations_and_refunds_come_after_their_orders_inside_the_range(history: History) -> None:
    orders, lines = history.tables["orders"], history.tables["order_line_items"]
    end = pd.Timestamp(END, tz="UTC")
    cancelled = orders[orders["cancelled_at"].notna()]
    assert 0 < len(cancelled) < 0.05 * len(orders)
    assert (cancelled["cancelled_at"] > cancelled["created_at"]).all() and (
        cancelled["cancelled_at"] < end
    ).all()
    assert set(cancelled["id"]) <= set(orders.loc[orders["shopify_topic"] == "orders/create", "id"])
    refund_lines = history.tables["refund_line_items"]
    assert len(refund_lines) > 0 and (refund_lines["refund_created_at"] < end).all()
    joined = refund_lines.merge(
        lines.drop_duplicates("id"), left_on="line_item_id", right_on="id", suffixes=("", "_line")
    )
    assert len(joined) == len(refund_lines)
    assert (joined["quantity"] <= joined["quantity_line"]).all() and (joined["quantity"] >= 1).all()
    assert (joined["refund_created_at"] - joined["order_created_at"] >= pd.Timedelta(days=3)).all()
    assert not joined["order_id"].isin(cancelled["id"]).any()
    refunds = history.tables["refunds"]
    assert refunds["id"].tolist() == refund_lines["refund_id"].tolist()


def test_catalogue_versions_follow_price_changes(history: History) -> None:
    products, variants = history.tables["products"], history.tables["variants"]
    assert set(variants["webhook_id"]) == set(products["webhook_id"])
    assert products.groupby("id")["shopify_topic"].first().eq("products/create").all()
    catalogue = history.catalogue
    assert set(products["id"]) == {p.id for p in catalogue.products if p.created_at.date() < END}
    demand = history.demand
    changes = int(
        pd.DataFrame(demand.price[1:] != demand.price[:-1])
        .T.groupby(catalogue.product_position)
        .any()
        .to_numpy()
        .sum()
    )
    updates = (products["shopify_topic"] == "products/update").sum()
    assert 0 < updates <= changes  # changes before a product's creation fold into its first version
    assert (variants["compare_at_price"].isna() | (variants["compare_at_price"] > variants["price"])).all()


def test_inventory_rows_are_the_stock_left_each_evening(history: History) -> None:
    levels, demand = history.tables["inventory_levels"], history.demand
    item_of = {v.inventory_item_id: i for i, v in enumerate(history.catalogue.variants)}
    col = levels["inventory_item_id"].map(item_of).to_numpy()
    day = ((utc_day(levels["updated_at"]) - pd.Timestamp(START)).dt.days).to_numpy()
    assert (levels["updated_at"].dt.hour == 23).all() and (levels["updated_at"].dt.minute == 59).all()
    inside = day >= 0
    left = demand.inventory_on_hand - demand.units
    assert (levels["available"].to_numpy()[inside] == left[day[inside], col[inside]]).all()
    opening = demand.inventory_on_hand[0] - demand.restock[0]
    assert (levels["available"].to_numpy()[~inside] == opening[col[~inside]]).all()
    assert not levels.duplicated(["inventory_item_id", "updated_at"]).any()


def test_promotions_are_announced_well_before_they_start(history: History) -> None:
    promotions = history.tables["promotions"]
    lead = promotions["starts_at"] - promotions["created_at"]
    assert (lead >= pd.Timedelta(days=29)).all()
    assert (promotions["created_at"] < pd.Timestamp(END, tz="UTC")).all()
    assert (promotions["ends_at"] > promotions["starts_at"]).all()
    assert set(p.start for p in history.demand.promotions) <= set(promotions["starts_at"].dt.date)


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    a = generate_history(20, START, date(2024, 2, 1), seed=9)
    b = generate_history(20, START, date(2024, 2, 1), seed=9)
    c = generate_history(20, START, date(2024, 2, 1), seed=10)
    for name in HISTORY_TABLES:
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name])
    assert not a.tables["orders"]["id"].equals(c.tables["orders"]["id"])


def test_catalogue_ids_are_the_store_simulators_for_the_same_window() -> None:
    history = generate_history(30, START, date(2024, 2, 1), seed=4)
    simulator = StoreSimulator(seed=4, n_variants=30, start=START, end=date(2024, 2, 1))
    assert history.catalogue.variant_ids.tolist() == simulator.catalogue.variant_ids.tolist()
    # A backfill before a webhook window keeps the window's catalogue.
    window = (date(2024, 3, 1), date(2024, 3, 15))
    before = generate_history(30, START, window[0], seed=4, catalogue_window=window)
    live = StoreSimulator(seed=4, n_variants=30, start=window[0], end=window[1])
    assert set(before.tables["variants"]["id"]) <= set(live.catalogue.variant_ids.tolist())
    assert before.tables["orders"]["id"].max() < 5_000_000_000_000  # below the simulator's order ids


def test_write_history_bulk_and_row_by_row_give_the_same_tables() -> None:
    class RowsOnly:
        """A Warehouse without the bulk path: write_history falls back to insert_rows."""

        def __init__(self, inner: DuckDBWarehouse) -> None:
            self.inner = inner
            self.schema = inner.schema

        def insert_rows(self, table: str, rows: Any, row_ids: Any = None) -> None:
            self.inner.insert_rows(table, rows, row_ids)

    end = date(2024, 1, 20)
    bulk, slow = DuckDBWarehouse(":memory:"), DuckDBWarehouse(":memory:")
    summary = write_history(bulk, 12, START, end, seed=2)
    write_history(RowsOnly(slow), 12, START, end, seed=2)  # type: ignore[arg-type]
    assert summary["variant_days"] == 12 * 19 and summary["days"] == 19
    for table, count in summary["rows"].items():
        assert bulk.query(f"SELECT COUNT(*) AS n FROM {table}") == [{"n": count}]  # noqa: S608
        order = {"promotions": "id", "inventory_levels": "webhook_id"}.get(table, "webhook_id, id")
        a = bulk.query(f"SELECT * EXCEPT (loaded_at) FROM {table} ORDER BY {order}")  # noqa: S608
        b = slow.query(f"SELECT * EXCEPT (loaded_at) FROM {table} ORDER BY {order}")  # noqa: S608
        assert a == b, table
    orders = bulk.query("SELECT discount_codes, total_price FROM orders LIMIT 1")[0]
    assert orders["discount_codes"] == [] and orders["total_price"].as_tuple().exponent == -9


def test_insert_frame_refuses_a_frame_that_does_not_fit() -> None:
    warehouse = DuckDBWarehouse(":memory:")
    with pytest.raises(RowDoesNotFit, match="no such column"):
        warehouse.insert_frame("promotions", pd.DataFrame({"nope": [1]}))
    frame = generate_history(5, START, date(2024, 1, 5), seed=1).tables["inventory_levels"].copy()
    frame.loc[frame.index[0], "webhook_id"] = None
    with pytest.raises(RowDoesNotFit, match="webhook_id"):
        warehouse.insert_frame("inventory_levels", frame)
    assert warehouse.query("SELECT COUNT(*) AS n FROM inventory_levels") == [{"n": 0}]
    bad_time = frame.assign(updated_at="not a time", webhook_id="w")
    with pytest.raises(RowDoesNotFit):
        warehouse.insert_frame("inventory_levels", bad_time)


def test_history_needs_a_range() -> None:
    with pytest.raises(ValueError, match="after start"):
        generate_history(5, START, START)
