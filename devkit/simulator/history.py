"""Bulk history: typed-table rows for a date range, vectorised, written in bulk.

``StoreSimulator`` builds one webhook at a time (right for the live window, far too slow for
18 months). ``generate_history`` turns the same demand model (``demand.py``) into the rows
``validate_load`` would have written for those webhooks, as pandas DataFrames with the typed
tables' column names, ``source = 'backfill'``:

* ``products`` + ``variants``: a version when the product is created (``products/create``)
  and one per list-price change (``products/update``, stamped 1-60 min before 00:00 UTC of the
  day the new price applies, so the price a day sold at is the price known at its start);
  ``variants`` carry price, compare_at_price (NULL when not above the price, as in the
  payloads), inventory_item_id and the stock at the time.
* ``orders`` + ``order_line_items`` (``orders/create``): ``DailyDemand.units`` of each UTC day
  split into lines (a unit starts a new line with ``1 - StoreConfig.multi_unit_rate``) and the
  day's lines into orders (1 + geometric lines, mean ``1 + mean_extra_lines``); list price,
  the day's store-wide promotion as a discount, 8 % tax, shipping under 75.00. Order times
  follow the simulator's hourly profile (read as UTC hours).
* cancellations: ``cancel_rate`` extra orders (copies of real baskets, like the simulator's),
  created ``authorized`` and cancelled 10 min to 4 h later (an ``orders/cancelled`` version
  with its line items); they never count as sales and never touch stock. One whose
  cancellation would fall after the range is left out.
* refunds (``refunds/create``): ``return_rate`` of the lines of real orders, part or all of
  the quantity, 3 to 21 days after the order; none after the range. No restock.
* ``inventory_levels``: one row per existing variant per day at 23:59:xx UTC with the stock
  left after that day's sales (= the stock at the start of the next day before its delivery;
  ``on_hand[t] - units[t]``), plus an opening row the evening before ``start``. One location.
* ``promotions``: ``promotion_calendar`` from ``start`` to ``end`` + ``promotion_horizon_days``,
  each announced (``created_at``) 30 to 60 days before it starts, kept if announced before
  ``end``; ``[starts_at, ends_at)`` covers its days (ends_at exclusive).

So the net units per variant and UTC day that the feature SQL computes equal ``units`` minus
the refunds dated that day (cancellations of extra orders net to zero unless they cross
midnight). Date ranges are ``[start, end)`` like the rest of the simulator. Ids: the
catalogue is ``build_catalogue(n_variants, seed, *catalogue_window)`` (default ``(start,
end)``): with the same seed, n_variants and window, product, variant and inventory item ids
are ``StoreSimulator(seed, n_variants, start, end)``'s. Orders, line items and refunds take id
blocks below the simulator's, so a backfill before a webhook window never collides with it.

``write_history(warehouse, ...)`` generates and writes: DuckDB's ``insert_frame`` (bulk, one
transaction per table), else ``insert_rows`` in chunks. Measured on the 2-core dev machine:
2,000 variants × 548 days (~3.2 M rows) generate in ~3.4 s and write to a DuckDB file in
~12 s, peak RSS ~1.3 GB.
"""

from __future__ import annotations

import time as _time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from devkit.simulator.catalogue import Catalogue, build_catalogue
from devkit.simulator.demand import DailyDemand, DemandConfig, generate_demand, promotion_calendar
from devkit.simulator.events import _HOURLY, DEFAULT_API_VERSION, DEFAULT_SHOP_DOMAIN, StoreConfig

if TYPE_CHECKING:
    from shared.ports import Warehouse

SOURCE = "backfill"
# Id blocks below StoreSimulator's (orders 5.0e12, line items 13.0e12, refunds 9.0e11,
# refund lines 5.0e11): a backfill is older than the webhook window, and ids grow with time.
ORDER_ID_BASE = 4_900_000_000_000
LINE_ITEM_ID_BASE = 12_900_000_000_000
REFUND_ID_BASE = 880_000_000_000
REFUND_LINE_ID_BASE = 480_000_000_000
PROMOTION_ID_BASE = 1_300_000_000_000
ORDER_NUMBER_BASE = 1001
HISTORY_TABLES: tuple[str, ...] = (
    "products",
    "variants",
    "orders",
    "order_line_items",
    "refunds",
    "refund_line_items",
    "inventory_levels",
    "promotions",
)
_US_PER_S = 1_000_000
_US_PER_DAY = 86_400 * _US_PER_S


@dataclass(frozen=True)
class History:
    """Generated rows per table (DataFrames with the tables' column names) and their sources."""

    tables: Mapping[str, pd.DataFrame]
    catalogue: Catalogue
    demand: DailyDemand
    shop_domain: str
    start: date
    end: date

    def counts(self) -> dict[str, int]:
        return {name: len(frame) for name, frame in self.tables.items()}


def _utc(us: np.ndarray) -> pd.DatetimeIndex:
    """Microseconds since the epoch → aware UTC timestamps."""
    return pd.to_datetime(np.asarray(us, dtype=np.int64), unit="us", utc=True)


def _day_us(day: date) -> int:
    return int(np.datetime64(day, "D").astype("datetime64[us]").astype(np.int64))


def _ids(prefix: str, n: int) -> np.ndarray:
    return (prefix + pd.RangeIndex(n).astype(str)).to_numpy(dtype=object)


def _meta(
    frame: pd.DataFrame, webhook_ids: np.ndarray, topic: str | np.ndarray, event_us: np.ndarray, api: str
) -> pd.DataFrame:
    """The event metadata columns every typed table carries (received 1 s after the event)."""
    frame["webhook_id"] = webhook_ids
    frame["event_id"] = None
    frame["shopify_topic"] = topic
    frame["api_version"] = api
    frame["source"] = SOURCE
    frame["received_at"] = _utc(event_us + _US_PER_S)
    frame["loaded_at"] = _utc(event_us + 2 * _US_PER_S)
    return frame


def generate_history(
    n_variants: int,
    start: date,
    end: date,
    seed: int = 0,
    *,
    shop_domain: str = DEFAULT_SHOP_DOMAIN,
    api_version: str = DEFAULT_API_VERSION,
    catalogue_window: tuple[date, date] | None = None,
    demand_config: DemandConfig | None = None,
    store_config: StoreConfig | None = None,
    promotion_horizon_days: int = 120,
) -> History:
    """Typed-table rows for ``[start, end)``; same arguments, same rows (see module docstring)."""
    if end <= start:
        raise ValueError(f"end {end} must be after start {start}")
    cfg = store_config or StoreConfig()
    window = catalogue_window or (start, end)
    catalogue = build_catalogue(n_variants, seed=seed, start=window[0], end=window[1])
    demand = generate_demand(catalogue, start, end, seed=seed, config=demand_config)
    rng = np.random.default_rng([seed, 0x4157])
    ctx = _Context(catalogue, demand, cfg, rng, shop_domain, api_version, start, end)
    tables: dict[str, pd.DataFrame] = {}
    tables["products"], tables["variants"] = ctx.catalogue_versions()
    orders, lines, refunds, refund_lines = ctx.orders()
    tables["orders"], tables["order_line_items"] = orders, lines
    tables["refunds"], tables["refund_line_items"] = refunds, refund_lines
    tables["inventory_levels"] = ctx.inventory_levels()
    tables["promotions"] = ctx.promotions(seed, promotion_horizon_days)
    return History(tables, catalogue, demand, shop_domain, start, end)


class _Context:
    """The arrays every table builder shares."""

    def __init__(
        self,
        catalogue: Catalogue,
        demand: DailyDemand,
        cfg: StoreConfig,
        rng: np.random.Generator,
        shop: str,
        api: str,
        start: date,
        end: date,
    ) -> None:
        self.cat, self.demand, self.cfg, self.rng = catalogue, demand, cfg, rng
        self.shop, self.api = shop, api
        self.start_us, self.end_us = _day_us(start), _day_us(end)
        self.n_days = demand.n_days
        self.day_us = self.start_us + np.arange(self.n_days, dtype=np.int64) * _US_PER_DAY
        variants = catalogue.variants
        products = catalogue.products
        self.v_id = catalogue.variant_ids
        self.v_product = catalogue.product_ids
        self.v_pos = catalogue.product_position
        self.v_item = np.array([v.inventory_item_id for v in variants], dtype=np.int64)
        self.v_sku = np.array([v.sku for v in variants], dtype=object)
        self.v_title = np.array([v.title for v in variants], dtype=object)
        self.v_position = np.array([v.position for v in variants], dtype=np.int64)
        self.v_compare = np.array(
            [np.nan if v.compare_at_price is None else float(v.compare_at_price) for v in variants]
        )
        self.v_created_us = np.array(
            [int(v.created_at.timestamp() * _US_PER_S) for v in variants], dtype=np.int64
        )
        self.p_id = np.array([p.id for p in products], dtype=np.int64)
        self.p_created_us = np.array(
            [int(p.created_at.timestamp() * _US_PER_S) for p in products], dtype=np.int64
        )
        self.p_title = np.array([p.title for p in products], dtype=object)
        self.p_vendor = np.array([p.vendor for p in products], dtype=object)
        self.p_n_variants = np.array([len(p.variants) for p in products], dtype=np.int64)
        # First day index each variant sells (negative: created before start).
        self.launch = (catalogue.created_dates() - demand.dates[0]).astype(np.int64)
        self.p_launch = np.full(len(products), np.iinfo(np.int64).max)
        np.minimum.at(self.p_launch, self.v_pos, self.launch)
        self.p_exists = self.p_created_us < self.end_us

    # -- products and variants ---------------------------------------------------------------

    def catalogue_versions(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        products = self.cat.products
        price = self.demand.price
        existing = np.nonzero(self.p_exists)[0]
        # Creation versions, priced as on the first day they sell.
        create_t = np.clip(self.p_launch[existing], 0, self.n_days - 1)
        # Price changes after creation: one version per product and day a price moved.
        moved_t, moved_v = np.nonzero(price[1:] != price[:-1])
        moved_t = moved_t + 1
        change = pd.DataFrame({"t": moved_t, "pos": self.v_pos[moved_v]}).drop_duplicates()
        change = change[self.p_exists[change["pos"]] & (change["t"] > self.p_launch[change["pos"]])]
        stamp_change = self.day_us[change["t"].to_numpy()] - self.rng.integers(
            60 * _US_PER_S, 3600 * _US_PER_S, len(change)
        )
        versions = pd.DataFrame(
            {
                "pos": np.concatenate([existing, change["pos"].to_numpy()]),
                "t": np.concatenate([create_t, change["t"].to_numpy()]),
                "stamp": np.concatenate([self.p_created_us[existing], stamp_change]),
                "create": np.concatenate([np.ones(len(existing), bool), np.zeros(len(change), bool)]),
            }
        )
        versions = versions.sort_values(["stamp", "pos"], kind="stable").reset_index(drop=True)
        n = len(versions)
        pos = versions["pos"].to_numpy()
        stamp = versions["stamp"].to_numpy()
        webhook_ids = _ids("backfill:product:", n)
        topic = np.where(versions["create"].to_numpy(), "products/create", "products/update")
        prod = pd.DataFrame(
            {
                "shop_domain": self.shop,
                "id": self.p_id[pos],
                "title": self.p_title[pos],
                "handle": np.array([products[i].handle for i in pos], dtype=object),
                "vendor": self.p_vendor[pos],
                "product_type": np.array([products[i].product_type for i in pos], dtype=object),
                "status": "active",
                "tags": np.array([", ".join(products[i].tags) for i in pos], dtype=object),
                "published_at": _utc(self.p_created_us[pos]),
                "created_at": _utc(self.p_created_us[pos]),
                "updated_at": _utc(stamp),
                "deleted": False,
                "variant_count": self.p_n_variants[pos],
            }
        )
        prod = _meta(prod, webhook_ids, topic, stamp, self.api)
        # Every variant of each version (same webhook_id as its product row).
        by_product = pd.DataFrame({"pos": self.v_pos, "v": np.arange(len(self.v_id))})
        rows = versions.reset_index(names="k").merge(by_product, on="pos").sort_values(["k", "v"])
        k, v, t = rows["k"].to_numpy(), rows["v"].to_numpy(), rows["t"].to_numpy()
        v_price = price[t, v]
        compare = self.v_compare[v]
        var = pd.DataFrame(
            {
                "shop_domain": self.shop,
                "id": self.v_id[v],
                "product_id": self.v_product[v],
                "product_updated_at": _utc(stamp[k]),
                "title": self.v_title[v],
                "sku": self.v_sku[v],
                "position": self.v_position[v],
                "price": v_price,
                "compare_at_price": np.where(compare > v_price, compare, np.nan),
                "inventory_item_id": self.v_item[v],
                "inventory_quantity": self.demand.inventory_on_hand[t, v].astype(np.int64),
                "inventory_policy": "deny",
                "taxable": True,
                "option1": self.v_title[v],
                "created_at": _utc(self.v_created_us[v]),
                "updated_at": _utc(stamp[k]),
            }
        )
        var = _meta(var, webhook_ids[k], topic[k], stamp[k], self.api)
        return prod, var

    # -- orders, cancellations, refunds ---------------------------------------------------------

    def orders(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        rng, cfg, demand = self.rng, self.cfg, self.demand
        t_vd, v_vd = np.nonzero(demand.units)
        qty_vd = demand.units[t_vd, v_vd].astype(np.int64)
        # Units → lines: a unit starts a new line unless it joins the previous one (multi-unit).
        unit_vd = np.repeat(np.arange(len(t_vd)), qty_vd)
        starts = rng.random(len(unit_vd)) >= cfg.multi_unit_rate
        if len(unit_vd):
            starts[np.r_[0, np.nonzero(np.diff(unit_vd))[0] + 1]] = True
        line_of_unit = np.cumsum(starts) - 1
        n_lines = int(line_of_unit[-1]) + 1 if len(unit_vd) else 0
        line_qty = np.bincount(line_of_unit, minlength=n_lines).astype(np.int64)
        line_vd = unit_vd[starts]
        line_t, line_v = t_vd[line_vd], v_vd[line_vd]
        # Lines → orders within each day, in random order.
        shuffle = np.lexsort((rng.random(n_lines), line_t))
        line_t, line_v, line_qty = line_t[shuffle], line_v[shuffle], line_qty[shuffle]
        new_order = rng.random(n_lines) < 1.0 / (1.0 + cfg.mean_extra_lines)
        if n_lines:
            new_order[np.r_[0, np.nonzero(np.diff(line_t))[0] + 1]] = True
        line_order = np.cumsum(new_order) - 1
        n_orders = int(line_order[-1]) + 1 if n_lines else 0
        order_t = line_t[new_order]
        hourly = np.asarray(_HOURLY, dtype=np.float64)
        hour = rng.choice(24, size=n_orders, p=hourly / hourly.sum())
        order_us = (
            self.day_us[order_t]
            + hour * 3600 * _US_PER_S
            + rng.integers(0, 3600 * _US_PER_S, n_orders) // _US_PER_S * _US_PER_S
        )
        cancelled = np.zeros(n_orders, dtype=bool)
        cancel_us = np.zeros(n_orders, dtype=np.int64)
        # Extra orders that get cancelled: copies of real baskets, a little later the same day.
        extra = np.nonzero(rng.random(n_orders) < cfg.cancel_rate)[0]
        extra_us = np.minimum(
            order_us[extra] + rng.integers(1, 600, len(extra)) * _US_PER_S,
            self.day_us[order_t[extra]] + _US_PER_DAY - _US_PER_S,
        )
        extra_cancel = extra_us + rng.integers(600, 14_400, len(extra)) * _US_PER_S
        keep = extra_cancel < self.end_us
        extra, extra_us, extra_cancel = extra[keep], extra_us[keep], extra_cancel[keep]
        in_extra = np.isin(line_order, extra)
        copy_map = np.full(n_orders, -1)
        copy_map[extra] = n_orders + np.arange(len(extra))
        line_order = np.concatenate([line_order, copy_map[line_order[in_extra]]])
        line_t = np.concatenate([line_t, line_t[in_extra]])
        line_v = np.concatenate([line_v, line_v[in_extra]])
        line_qty = np.concatenate([line_qty, line_qty[in_extra]])
        order_t = np.concatenate([order_t, order_t[extra]])
        order_us = np.concatenate([order_us, extra_us])
        cancelled = np.concatenate([cancelled, np.ones(len(extra), dtype=bool)])
        cancel_us = np.concatenate([cancel_us, extra_cancel])
        n_orders = len(order_us)
        # Ids grow with creation time.
        by_time = np.lexsort((np.arange(n_orders), order_us))
        rank = np.empty(n_orders, dtype=np.int64)
        rank[by_time] = np.arange(n_orders)
        order_id_sorted = ORDER_ID_BASE + np.cumsum(rng.integers(1, 2_000, n_orders))
        order_id = order_id_sorted[rank]
        order_number = ORDER_NUMBER_BASE + rank
        line_sort = np.lexsort((line_v, rank[line_order]))
        line_order, line_t, line_v, line_qty = (
            line_order[line_sort],
            line_t[line_sort],
            line_v[line_sort],
            line_qty[line_sort],
        )
        n_lines = len(line_order)
        line_id = LINE_ITEM_ID_BASE + np.cumsum(rng.integers(1, 2_000, n_lines))
        # Money in cents: list price, the day's store-wide discount, tax on the discounted amount.
        price_c = np.rint(demand.price[line_t, line_v] * 100).astype(np.int64)
        gross_c = price_c * line_qty
        disc_c = np.rint(gross_c * demand.discount[line_t].astype(np.float64)).astype(np.int64)
        tax_rate = float(cfg.tax_rate)
        tax_c = np.rint((gross_c - disc_c) * tax_rate).astype(np.int64)
        tli = np.bincount(line_order, weights=gross_c, minlength=n_orders).astype(np.int64)
        disc = np.bincount(line_order, weights=disc_c, minlength=n_orders).astype(np.int64)
        tax = np.bincount(line_order, weights=tax_c, minlength=n_orders).astype(np.int64)
        n_items = np.bincount(line_order, minlength=n_orders).astype(np.int64)
        subtotal = tli - disc
        shipping = np.where(
            subtotal < int(cfg.free_shipping_over * 100), int(cfg.shipping_price * 100), 0
        ).astype(np.int64)
        total = subtotal + shipping + tax

        def cents(values: np.ndarray) -> np.ndarray:
            return np.asarray(values, dtype=np.float64) / 100.0

        order_webhook = _ids("backfill:order:", n_orders)
        created = _utc(order_us)
        orders = pd.DataFrame(
            {
                "shop_domain": self.shop,
                "id": order_id,
                "name": "#" + pd.Index(order_number).astype(str),
                "order_number": order_number,
                "created_at": created,
                "updated_at": created,
                "processed_at": created,
                "currency": cfg.currency,
                "presentment_currency": cfg.currency,
                "total_price": cents(total),
                "subtotal_price": cents(subtotal),
                "total_tax": cents(tax),
                "total_discounts": cents(disc),
                "total_line_items_price": cents(tli),
                "total_shipping_price": cents(shipping),
                "total_outstanding": cents(np.where(cancelled, total, 0)),
                "current_total_price": cents(total),
                "current_subtotal_price": cents(subtotal),
                "current_total_tax": cents(tax),
                "current_total_discounts": cents(disc),
                "financial_status": np.where(cancelled, "authorized", "paid"),
                "taxes_included": False,
                "test": False,
                "source_name": "web",
                "line_item_count": n_items,
            }
        )
        orders = _meta(orders, order_webhook, "orders/create", order_us, self.api)
        lines = pd.DataFrame(
            {
                "shop_domain": self.shop,
                "order_id": order_id[line_order],
                "id": line_id,
                "order_created_at": _utc(order_us[line_order]),
                "order_updated_at": _utc(order_us[line_order]),
                "currency": cfg.currency,
                "variant_id": self.v_id[line_v],
                "product_id": self.v_product[line_v],
                "sku": self.v_sku[line_v],
                "title": self.p_title[self.v_pos[line_v]],
                "variant_title": self.v_title[line_v],
                "vendor": self.p_vendor[self.v_pos[line_v]],
                "quantity": line_qty,
                "current_quantity": line_qty,
                "fulfillable_quantity": line_qty,
                "price": cents(price_c),
                "total_discount": cents(disc_c),
                "discount_allocations_amount": cents(disc_c),
                "tax_amount": cents(tax_c),
                "gift_card": False,
                "taxable": True,
                "requires_shipping": True,
            }
        )
        lines = _meta(lines, order_webhook[line_order], "orders/create", order_us[line_order], self.api)
        # The cancelled version of each extra order, and its line items again.
        gone = np.nonzero(cancelled)[0]
        cancel_webhook = _ids("backfill:cancel:", len(gone))
        cancel_version = orders.iloc[gone].copy()
        at = _utc(cancel_us[gone])
        cancel_version["updated_at"] = at
        cancel_version["cancelled_at"] = at
        cancel_version["closed_at"] = at
        cancel_version["cancel_reason"] = "customer"
        cancel_version["financial_status"] = "voided"
        cancel_version["total_outstanding"] = 0.0
        for name in ("current_total_price", "current_subtotal_price", "current_total_tax"):
            cancel_version[name] = 0.0
        cancel_version = _meta(cancel_version, cancel_webhook, "orders/cancelled", cancel_us[gone], self.api)
        webhook_of = np.full(n_orders, None, dtype=object)
        webhook_of[gone] = cancel_webhook
        cancelled_line = cancelled[line_order]
        cancel_lines = lines[cancelled_line].copy()
        line_cancel_us = cancel_us[line_order[cancelled_line]]
        cancel_lines["order_updated_at"] = _utc(line_cancel_us)
        cancel_lines["current_quantity"] = 0
        cancel_lines["fulfillable_quantity"] = 0
        cancel_lines = _meta(
            cancel_lines,
            webhook_of[line_order[cancelled_line]],
            "orders/cancelled",
            line_cancel_us,
            self.api,
        )
        orders = pd.concat([orders, cancel_version], ignore_index=True)
        lines = pd.concat([lines, cancel_lines], ignore_index=True)
        # Refunds: some lines of real orders, part or all of the quantity, 3-21 days later.
        refundable = np.nonzero(~cancelled_line)[0]
        picked = refundable[rng.random(len(refundable)) < cfg.return_rate]
        refund_us = (
            order_us[line_order[picked]]
            + (rng.uniform(*cfg.return_delay_days, len(picked)) * 86_400).astype(np.int64) * _US_PER_S
        )
        keep = refund_us < self.end_us
        picked, refund_us = picked[keep], refund_us[keep]
        refund_qty = rng.integers(1, line_qty[picked] + 1)
        order_of = np.lexsort((picked, refund_us))
        picked, refund_us, refund_qty = picked[order_of], refund_us[order_of], refund_qty[order_of]
        n_refunds = len(picked)
        refund_id = REFUND_ID_BASE + np.cumsum(rng.integers(1, 2_000, n_refunds))
        refund_line_id = REFUND_LINE_ID_BASE + np.cumsum(rng.integers(1, 2_000, n_refunds))
        unit_net = (gross_c[picked] - disc_c[picked]) / line_qty[picked]
        refund_sub_c = np.rint(unit_net * refund_qty).astype(np.int64)
        refund_tax_c = np.rint(refund_sub_c * tax_rate).astype(np.int64)
        refund_webhook = _ids("backfill:refund:", n_refunds)
        refund_at = _utc(refund_us)
        refunds = pd.DataFrame(
            {
                "shop_domain": self.shop,
                "id": refund_id,
                "order_id": order_id[line_order[picked]],
                "created_at": refund_at,
                "processed_at": refund_at,
                "restock": False,
                "currency": cfg.currency,
                "transactions_amount": cents(refund_sub_c + refund_tax_c),
                "order_adjustments_amount": 0.0,
                "refund_line_item_count": np.ones(n_refunds, dtype=np.int64),
            }
        )
        refunds = _meta(refunds, refund_webhook, "refunds/create", refund_us, self.api)
        refund_lines = pd.DataFrame(
            {
                "shop_domain": self.shop,
                "id": refund_line_id,
                "refund_id": refund_id,
                "order_id": order_id[line_order[picked]],
                "line_item_id": line_id[picked],
                "variant_id": self.v_id[line_v[picked]],
                "product_id": self.v_product[line_v[picked]],
                "sku": self.v_sku[line_v[picked]],
                "quantity": refund_qty.astype(np.int64),
                "restock_type": "no_restock",
                "location_id": np.full(n_refunds, cfg.location_id, dtype=np.int64),
                "subtotal": cents(refund_sub_c),
                "total_tax": cents(refund_tax_c),
                "refund_created_at": refund_at,
                "refund_processed_at": refund_at,
            }
        )
        refund_lines = _meta(refund_lines, refund_webhook, "refunds/create", refund_us, self.api)
        return orders, lines, refunds, refund_lines

    # -- inventory -------------------------------------------------------------------------------

    def inventory_levels(self) -> pd.DataFrame:
        demand = self.demand
        # Row t (t = -1 .. T-1) at 23:59:xx of day t: stock entering day t + 1 before its delivery.
        after = (demand.inventory_on_hand - demand.units).astype(np.int64)
        opening = (demand.inventory_on_hand[0] - demand.restock[0]).astype(np.int64)[None, :]
        available = np.vstack([opening, after])  # (T + 1, n)
        days = np.arange(-1, self.n_days, dtype=np.int64)
        exists = days[:, None] >= np.maximum(self.launch, -1)[None, :]
        t_idx, v_idx = np.nonzero(exists)
        count = len(t_idx)
        stamp = (
            self.start_us
            + days[t_idx] * _US_PER_DAY
            + (23 * 3600 + 59 * 60) * _US_PER_S
            + self.rng.integers(5, 55, count) * _US_PER_S
        )
        frame = pd.DataFrame(
            {
                "shop_domain": self.shop,
                "inventory_item_id": self.v_item[v_idx],
                "location_id": np.full(count, self.cfg.location_id, dtype=np.int64),
                "available": available[t_idx, v_idx],
                "updated_at": _utc(stamp),
            }
        )
        return _meta(frame, _ids("backfill:inventory:", count), "inventory_levels/update", stamp, self.api)

    # -- promotions ------------------------------------------------------------------------------

    def promotions(self, seed: int, horizon_days: int) -> pd.DataFrame:
        start = date.fromisoformat(str(self.demand.dates[0]))
        end = date.fromisoformat(str(self.demand.dates[-1])) + timedelta(days=1)
        calendar = promotion_calendar(start, end + timedelta(days=horizon_days), seed)
        rows = []
        for p in calendar:
            lead = int(self.rng.integers(30, 61))
            announced = datetime.combine(
                p.start - timedelta(days=lead), datetime.min.time(), UTC
            ) + timedelta(hours=12)
            if int(announced.timestamp() * _US_PER_S) >= self.end_us:
                continue
            rows.append(
                {
                    "id": PROMOTION_ID_BASE + p.start.toordinal(),  # one promotion starts per day
                    "title": p.name,
                    "code": p.code,
                    "starts_at": datetime.combine(p.start, datetime.min.time(), UTC),
                    "ends_at": datetime.combine(p.end + timedelta(days=1), datetime.min.time(), UTC),
                    "discount": float(p.discount),
                    "created_at": announced,
                }
            )
        frame = pd.DataFrame(
            rows, columns=["id", "title", "code", "starts_at", "ends_at", "discount", "created_at"]
        )
        created = pd.to_datetime(frame["created_at"], utc=True)
        frame.insert(0, "shop_domain", self.shop)
        frame["id"] = frame["id"].astype(np.int64)
        frame["starts_at"] = pd.to_datetime(frame["starts_at"], utc=True)
        frame["ends_at"] = pd.to_datetime(frame["ends_at"], utc=True)
        frame["created_at"] = created
        frame["updated_at"] = created
        frame["source"] = SOURCE
        frame["received_at"] = created + pd.Timedelta(seconds=1)
        frame["loaded_at"] = created + pd.Timedelta(seconds=2)
        return frame


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def frame_rows(warehouse_schema: Any, table: str, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """``frame`` as the port's Python rows (Decimal NUMERIC, aware datetimes, None for NULL):
    what ``insert_rows`` takes, and what ``conform_rows`` checks. For backends without a bulk path."""
    spec = warehouse_schema.table(table)
    columns: dict[str, list[Any]] = {}
    for name in frame.columns:
        column = spec.by_name[name]
        series = frame[name]
        if column.type == "TIMESTAMP":
            values = [None if pd.isna(x) else x.to_pydatetime() for x in series]
        elif column.type in ("NUMERIC", "BIGNUMERIC"):
            values = [None if pd.isna(x) else Decimal(f"{x:.2f}") for x in series]
        elif column.type == "INT64":
            values = [None if pd.isna(x) else int(x) for x in series]
        elif column.type == "FLOAT64":
            values = [None if pd.isna(x) else float(x) for x in series]
        elif column.type == "BOOL":
            values = [None if pd.isna(x) else bool(x) for x in series]
        else:
            values = [None if x is None or (isinstance(x, float) and np.isnan(x)) else x for x in series]
        columns[name] = values
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def write_tables(warehouse: Warehouse, tables: Mapping[str, pd.DataFrame], chunk: int = 5_000) -> None:
    """Write each frame: ``insert_frame`` where the adapter has it, else ``insert_rows`` in chunks."""
    insert_frame = getattr(warehouse, "insert_frame", None)
    for table, frame in tables.items():
        if len(frame) == 0:
            continue
        if callable(insert_frame):
            insert_frame(table, frame)
            continue
        schema = getattr(warehouse, "schema", None)
        if schema is None:
            from shared.warehouse_schema import load_schema

            schema = load_schema()
        rows = frame_rows(schema, table, frame)
        for offset in range(0, len(rows), chunk):
            warehouse.insert_rows(table, rows[offset : offset + chunk])


def write_history(
    warehouse: Warehouse,
    n_variants: int,
    start: date,
    end: date,
    seed: int = 0,
    *,
    shop_domain: str = DEFAULT_SHOP_DOMAIN,
    **options: Any,
) -> dict[str, Any]:
    """Generate the history of ``[start, end)`` (see ``generate_history`` for ``options``) and
    write it; returns a summary: rows per table, variant-days, seconds to generate and write."""
    began = _time.perf_counter()
    history = generate_history(n_variants, start, end, seed, shop_domain=shop_domain, **options)
    generated = _time.perf_counter()
    write_tables(warehouse, history.tables)
    written = _time.perf_counter()
    return {
        "shop_domain": shop_domain,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "variants": len(history.catalogue.variant_ids),
        "days": history.demand.n_days,
        "variant_days": int(history.demand.units.size),
        "units": int(history.demand.units.sum()),
        "rows": history.counts(),
        "generate_s": round(generated - began, 3),
        "write_s": round(written - generated, 3),
    }
