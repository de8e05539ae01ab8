"""Vectorised daily demand per variant and day: the ground truth behind the simulated store.

The expected demand of variant ``v`` on day ``t`` is a product of factors::

    base_v                       heavy-tailed (log-normal) base rate, units/day
  × weekly[weekday(t)]           weekly seasonality (configurable, Monday first)
  × yearly_store(t) × yearly_type(t, v)   yearly cycles (store-wide + per product type)
  × exp((growth + slope_v) · years(t))    store growth and a per-variant trend
  × (1 - discount_t) ** -elasticity_v     store-wide promotions (known in advance)
  × post_promo_dip(t)                     demand pulled forward by a promotion
  × (price_vt / base_price_v) ** -elasticity_v   list price changes
  × launched(t, v)                        products launched inside the range sell from launch

Sales are negative-binomial draws around it, capped by the inventory on hand: an (s, S)
replenishment policy with lead times that the store plans *without* knowing promotions, so
stock-outs happen (sales 0 until the restock arrives). Everything is numpy over
(days × variants) arrays: 2,000 variants × 548 days takes a fraction of a second.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from devkit.simulator.catalogue import Catalogue, build_catalogue

# Monday .. Sunday; a typical online store: weekend peak, quiet Tuesday/Wednesday.
DEFAULT_WEEKLY: tuple[float, ...] = (0.95, 0.88, 0.90, 0.95, 1.05, 1.20, 1.12)


@dataclass(frozen=True)
class Promotion:
    """A store-wide promotion: every line gets ``discount`` off through the discount ``code``."""

    name: str
    code: str
    start: date
    end: date  # last day of the promotion (inclusive)
    discount: float  # fraction off, e.g. 0.2 for 20 %

    def covers(self, day: date) -> bool:
        return self.start <= day <= self.end

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


@dataclass(frozen=True)
class DemandConfig:
    """Knobs of the demand model. Defaults give a plausible small apparel/gift store."""

    weekly: tuple[float, ...] = DEFAULT_WEEKLY
    store_yearly_amplitude: float = 0.15  # store-wide swing, peak in mid-December
    type_seasonality: bool = True  # per product type yearly cycle (hoodies in winter, ...)
    growth_per_year: float = 0.15  # store-wide trend (log scale)
    trend_sd_per_year: float = 0.30  # per-variant trend spread (log scale)
    base_rate_median: float = 0.35  # units/day of the median variant
    base_rate_sigma: float = 1.1  # log-normal sigma: a few variants sell most
    promotions: bool = True
    elasticity_range: tuple[float, float] = (1.2, 2.8)
    post_promo_days: int = 3
    post_promo_dip: float = 0.85
    price_changes_per_year: float = 1.0  # per product
    price_change_sd: float = 0.08  # log-scale size of a price change
    stockouts: bool = True  # False: perfect replenishment, sales == demand
    lead_time_days: tuple[int, int] = (3, 15)  # restock lead time range (per variant)
    reorder_point_days: tuple[float, float] = (2.0, 12.0)  # reorder below this many days of cover
    order_up_to_days: tuple[float, float] = (20.0, 50.0)
    dispersion: float | None = 4.0  # negative-binomial k (None: Poisson)

    def __post_init__(self) -> None:
        if len(self.weekly) != 7 or min(self.weekly) <= 0:
            raise ValueError("weekly must hold 7 positive multipliers, Monday first")


@dataclass(frozen=True)
class DailyDemand:
    """Daily demand of every variant: 2-D arrays shaped (days, variants).

    ``inventory_on_hand`` is the stock at the start of the day, after that morning's restock
    arrived; ``units`` (sales) never exceed it; ``demand`` is what would have sold without
    stock-outs, ``expected`` its mean. ``price`` is the list price; on promotion days every
    line gets ``discount`` (fraction) off it.
    """

    dates: np.ndarray  # (T,) datetime64[D]
    variant_ids: np.ndarray  # (n,) int64
    product_ids: np.ndarray  # (n,) int64
    units: np.ndarray  # (T, n) int32, sales
    demand: np.ndarray  # (T, n) int32, unconstrained draws
    expected: np.ndarray  # (T, n) float32, mean demand
    price: np.ndarray  # (T, n) float64, list price (2 decimals)
    discount: np.ndarray  # (T,) float32, store-wide discount fraction
    promo: np.ndarray  # (T,) bool
    inventory_on_hand: np.ndarray  # (T, n) int32
    restock: np.ndarray  # (T, n) int32, units that arrived that morning
    promotions: tuple[Promotion, ...] = field(default=())

    @property
    def n_days(self) -> int:
        return int(self.units.shape[0])

    @property
    def n_variants(self) -> int:
        return int(self.units.shape[1])

    def day(self, t: int) -> date:
        return date.fromisoformat(str(self.dates[t]))

    def to_frame(self) -> pd.DataFrame:
        """Long format, one row per (date, variant): the columns step 3's features read."""
        t, n = self.units.shape
        return pd.DataFrame(
            {
                "date": np.repeat(self.dates, n).astype("datetime64[ns]"),
                "variant_id": np.tile(self.variant_ids, t),
                "product_id": np.tile(self.product_ids, t),
                "units": self.units.ravel(),
                "price": self.price.ravel(),
                "discount": np.repeat(self.discount, n),
                "promo": np.repeat(self.promo, n),
                "inventory_on_hand": self.inventory_on_hand.ravel(),
                "demand": self.demand.ravel(),
                "expected": self.expected.ravel(),
                "restock": self.restock.ravel(),
            }
        )


def _thanksgiving(year: int) -> date:
    first = date(year, 11, 1)
    first_thursday = first + timedelta(days=(3 - first.weekday()) % 7)
    return first_thursday + timedelta(days=21)


def promotion_calendar(start: date, end: date, seed: int = 0) -> tuple[Promotion, ...]:
    """Store-wide promotions overlapping ``[start, end)``, known in advance.

    Every year: Black Friday to Cyber Monday (25 %), a New Year sale (26 Dec to 2 Jan, 20 %),
    a 7-day summer sale in July (15 %), and two 3-day flash sales (spring, autumn) whose
    dates depend on ``seed`` and the year only (so a longer range keeps the same promotions).
    """
    promos: list[Promotion] = []
    for year in range(start.year - 1, end.year + 1):
        rng = random.Random(seed * 7919 + year)
        yy = year % 100
        bf = _thanksgiving(year) + timedelta(days=1)
        summer = date(year, 7, 8) + timedelta(days=rng.randrange(8))
        spring = date(year, 3, 10) + timedelta(days=rng.randrange(70))
        autumn = date(year, 9, 5) + timedelta(days=rng.randrange(50))
        promos += [
            Promotion(
                "Spring flash sale",
                f"SPRING{yy:02d}",
                spring,
                spring + timedelta(days=2),
                rng.choice((0.10, 0.15, 0.20)),
            ),
            Promotion("Summer sale", f"SUMMER{yy:02d}", summer, summer + timedelta(days=6), 0.15),
            Promotion(
                "Autumn flash sale",
                f"AUTUMN{yy:02d}",
                autumn,
                autumn + timedelta(days=2),
                rng.choice((0.10, 0.15, 0.20)),
            ),
            Promotion("Black Friday / Cyber Monday", f"BFCM{yy:02d}", bf, bf + timedelta(days=3), 0.25),
            Promotion(
                "New Year sale",
                f"NEWYEAR{(yy + 1) % 100:02d}",
                date(year, 12, 26),
                date(year + 1, 1, 2),
                0.20,
            ),
        ]
    last = end - timedelta(days=1)
    return tuple(sorted((p for p in promos if p.start <= last and p.end >= start), key=lambda p: p.start))


def date_range(start: date, end: date) -> np.ndarray:
    """Days of ``[start, end)`` as ``datetime64[D]``."""
    if end <= start:
        raise ValueError(f"end {end} must be after start {start}")
    return np.arange(np.datetime64(start, "D"), np.datetime64(end, "D"), dtype="datetime64[D]")


def promo_arrays(dates: np.ndarray, promotions: Sequence[Promotion]) -> tuple[np.ndarray, np.ndarray]:
    """(discount fraction per day, promo flag per day) for ``dates``."""
    discount = np.zeros(len(dates), dtype=np.float32)
    for p in promotions:
        inside = (dates >= np.datetime64(p.start, "D")) & (dates <= np.datetime64(p.end, "D"))
        discount[inside] = np.maximum(discount[inside], p.discount)
    return discount, discount > 0


def promo_distance(dates: np.ndarray, promotions: Sequence[Promotion]) -> tuple[np.ndarray, np.ndarray]:
    """(days until the next promotion starts, days since the last one ended) per date.

    0 on promotion days for both; NaN where there is no next / previous promotion. Promotions
    are announced in advance, so a feature may use the first one without seeing the future.
    """
    d = dates.astype("datetime64[D]").astype(np.int64)
    starts = np.array(
        sorted(np.datetime64(p.start, "D").astype(np.int64) for p in promotions), dtype=np.int64
    )
    ends = np.array(sorted(np.datetime64(p.end, "D").astype(np.int64) for p in promotions), dtype=np.int64)
    to_next = np.full(len(d), np.nan)
    since_last = np.full(len(d), np.nan)
    if len(starts):
        i = np.searchsorted(starts, d, side="left")
        ok = i < len(starts)
        to_next[ok] = starts[i[ok]] - d[ok]
        j = np.searchsorted(ends, d, side="right") - 1
        ok = j >= 0
        since_last[ok] = d[ok] - ends[j[ok]]
    _, inside = promo_arrays(dates, promotions)
    to_next[inside] = 0
    since_last[inside] = 0
    return to_next, since_last


def _weekday(dates: np.ndarray) -> np.ndarray:
    # 1970-01-01 was a Thursday (weekday 3 with Monday = 0).
    return ((dates.astype(np.int64) + 3) % 7).astype(np.int8)


def _day_of_year(dates: np.ndarray) -> np.ndarray:
    years = dates.astype("datetime64[Y]")
    return (dates - years.astype("datetime64[D]")).astype(np.int64) + 1


def generate_demand(
    catalogue: Catalogue,
    start: date,
    end: date,
    seed: int = 0,
    config: DemandConfig | None = None,
) -> DailyDemand:
    """Daily demand for every variant of ``catalogue`` over ``[start, end)``; same seed, same arrays."""
    cfg = config or DemandConfig()
    rng = np.random.default_rng([seed, 0xD3A4])
    dates = date_range(start, end)
    n_days, n = len(dates), len(catalogue.variant_ids)
    years = (np.arange(n_days, dtype=np.float64) / 365.25)[:, None]

    base = rng.lognormal(np.log(cfg.base_rate_median), cfg.base_rate_sigma, n)
    elasticity = rng.uniform(*cfg.elasticity_range, n)
    slope = rng.normal(0.0, cfg.trend_sd_per_year, n)

    weekly = np.asarray(cfg.weekly, dtype=np.float64)[_weekday(dates)][:, None]
    doy = _day_of_year(dates).astype(np.float64)
    yearly = (1.0 + cfg.store_yearly_amplitude * np.cos(2 * np.pi * (doy - 350) / 365.25))[:, None]
    if cfg.type_seasonality:
        types = catalogue.product_types
        peaks = np.array([t.season_peak_doy for t in types], dtype=np.float64)[catalogue.product_type_index]
        amps = np.array([t.season_amplitude for t in types], dtype=np.float64)[catalogue.product_type_index]
        yearly = yearly * (1.0 + amps[None, :] * np.cos(2 * np.pi * (doy[:, None] - peaks[None, :]) / 365.25))
    trend = np.exp((cfg.growth_per_year + slope[None, :]) * years)

    promotions = promotion_calendar(start, end, seed) if cfg.promotions else ()
    discount, promo = promo_arrays(dates, promotions)
    promo_mult = (1.0 - discount[:, None].astype(np.float64)) ** (-elasticity[None, :])
    dip = np.ones(n_days)
    for p in promotions:
        after = (dates > np.datetime64(p.end, "D")) & (
            dates <= np.datetime64(p.end, "D") + cfg.post_promo_days
        )
        dip[after & ~promo] = cfg.post_promo_dip

    # List price changes, per product (all its variants move together).
    n_products = len(catalogue.products)
    factors: np.ndarray = np.ones((n_days, n_products))
    if n_days > 1 and cfg.price_changes_per_year > 0:
        counts = rng.poisson(cfg.price_changes_per_year * n_days / 365.25, n_products)
        prod = np.repeat(np.arange(n_products), counts)
        day = rng.integers(1, n_days, len(prod))
        step = np.exp(np.clip(rng.normal(0.0, cfg.price_change_sd, len(prod)), -0.25, 0.25))
        np.multiply.at(factors, (day, prod), step)
        factors = np.cumprod(factors, axis=0)
    base_price = catalogue.base_prices
    factor_v = factors[:, catalogue.product_position]
    changed = np.abs(factor_v - 1.0) > 1e-12
    # A changed price lands on a .99 price point; untouched prices keep the catalogue's.
    price = np.where(
        changed, np.maximum(np.floor(base_price[None, :] * factor_v), 0.0) + 0.99, base_price[None, :]
    )
    price = np.round(price, 2)
    price_mult = (price / base_price[None, :]) ** (-elasticity[None, :])

    launch = (catalogue.created_dates() - dates[0]).astype(np.int64)
    launched = np.arange(n_days)[:, None] >= launch[None, :]

    planned = base[None, :] * yearly * trend * price_mult * launched  # what the store plans for
    expected = planned * weekly * promo_mult * dip[:, None]
    if cfg.dispersion is None:
        demand = rng.poisson(expected)
    else:
        k = cfg.dispersion
        demand = rng.negative_binomial(k, k / (k + expected))
    demand = demand.astype(np.int32)

    units, on_hand, restock = _replenish(demand, planned, launch, cfg, rng)
    return DailyDemand(
        dates=dates,
        variant_ids=catalogue.variant_ids.copy(),
        product_ids=catalogue.product_ids.copy(),
        units=units,
        demand=demand,
        expected=expected.astype(np.float32),
        price=price,
        discount=discount,
        promo=promo,
        inventory_on_hand=on_hand,
        restock=restock,
        promotions=promotions,
    )


def _replenish(
    demand: np.ndarray, planned: np.ndarray, launch: np.ndarray, cfg: DemandConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run an (s, S) inventory policy day by day (vectorised over variants)."""
    n_days, n = demand.shape
    units = np.zeros((n_days, n), dtype=np.int32)
    on_hand_log = np.zeros((n_days, n), dtype=np.int32)
    restock_log = np.zeros((n_days, n), dtype=np.int32)
    if not cfg.stockouts:
        # Perfect replenishment: each morning the shelf is topped up to cover the day.
        level = np.zeros(n, dtype=np.int64)
        for t in range(n_days):
            target = np.maximum(np.ceil(planned[t] * 30).astype(np.int64), demand[t])
            top_up = np.maximum(target - level, 0)
            on_hand = level + top_up
            restock_log[t], on_hand_log[t], units[t] = top_up, on_hand, demand[t]
            level = on_hand - demand[t]
        return units, on_hand_log, restock_log
    lead = rng.integers(cfg.lead_time_days[0], cfg.lead_time_days[1] + 1, n)
    rop_days = rng.uniform(*cfg.reorder_point_days, n)
    cover_days = rng.uniform(*cfg.order_up_to_days, n)
    start_planned = planned[0]
    level = np.where(launch <= 0, np.ceil(start_planned * cover_days), 0).astype(np.int64)
    # Products launching later get their first delivery on launch day.
    pending_day = np.where(launch > 0, launch, -1).astype(np.int64)
    first = np.clip(launch, 0, n_days - 1)
    pending_qty = np.where(launch > 0, np.ceil(planned[first, np.arange(n)] * cover_days) + 1, 0).astype(
        np.int64
    )
    for t in range(n_days):
        arrive = pending_day == t
        arrived = np.where(arrive, pending_qty, 0)
        on_hand = level + arrived
        pending_day[arrive] = -1
        sold = np.minimum(demand[t], on_hand)
        level = on_hand - sold
        units[t], on_hand_log[t], restock_log[t] = sold, on_hand, arrived
        rate = planned[t]
        reorder = (level <= np.ceil(rate * rop_days)) & (pending_day < 0) & (rate > 0)
        qty = np.maximum(np.ceil(rate * cover_days) - level, 1).astype(np.int64)
        pending_day = np.where(reorder, t + lead, pending_day)
        pending_qty = np.where(reorder, qty, pending_qty)
    return units, on_hand_log, restock_log


def simulate_demand(
    n_variants: int,
    start: date,
    end: date,
    seed: int = 0,
    config: DemandConfig | None = None,
) -> tuple[Catalogue, DailyDemand]:
    """Catalogue and demand in one call (what step 3's training data generator wants)."""
    catalogue = build_catalogue(n_variants, seed=seed, start=start, end=end)
    return catalogue, generate_demand(catalogue, start, end, seed=seed, config=config)
