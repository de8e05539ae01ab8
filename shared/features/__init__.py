"""Demand features: one row per (shop_domain, variant_id, date), written once as SQL.

``shared/sql/features/variant_daily_features.sql`` (BigQuery dialect, run on DuckDB locally
through SQLGlot) computes every column below from the typed tables. Point in time: every
feature of day D is known at 00:00 UTC of D (data stamped before D), except the columns in
``PLANNED`` that the merchant knows in advance (calendar, announced promotions). ``units`` is
the label: units sold on D, net of cancellations and refunds dated D, floored at zero.

This module is the contract the SQL, Feast definitions, trainer and ``predict`` share.
``shared.features.build.build_features(warehouse, start, end)`` returns these columns as a
DataFrame: ids int64, ``date`` datetime64[ns] (a UTC day), ``shop_domain`` and
``product_type`` strings, every other column float64 (NaN for NULL). All days are UTC days;
the SQL file's header states the point-in-time rules (e.g. refunds and cancellations count
on the day they happen, a state row stamped at t counts from the day after DATE(t)).
"""

from __future__ import annotations

KEYS: tuple[str, ...] = ("shop_domain", "variant_id", "product_id", "date")
LABEL = "units"

# Known at 00:00 UTC of D from data stamped before D.
HISTORY: tuple[str, ...] = (
    "lag_1",  # units on D-1 (NULL before the variant existed; days without sales are 0)
    "lag_7",
    "lag_14",
    "lag_28",
    "rmean_7",  # mean of units over D-7 .. D-1 (over the days the variant existed)
    "rstd_7",  # population standard deviation over the same days
    "rmean_28",
    "rstd_28",
    "sale_days_28",  # share of D-28 .. D-1 with a sale (over the days the variant existed)
    "days_since_sale",  # days since the last sale within D-28 .. D-1 (NULL: none there)
)
# Shop level, known at 00:00 UTC of D: the share of the 4 days of ISO weekday k in D-28 .. D-1
# on which the shop had any order (a shop closed on Saturdays has dow6 = 0). The trainer turns
# them into one model input, the forecast day's weekday as seen from the forecast origin.
SHOP: tuple[str, ...] = tuple(f"shop_trading_dow{k}" for k in range(1, 8))
STATE: tuple[str, ...] = (
    "price",  # variant price in effect at 00:00 of D
    "discount",  # markdown: 1 - price / compare_at_price when compare_at_price > price, else 0
    "inventory_on_hand",  # sum of available over locations at 00:00 of D (before D's deliveries)
    "product_type",  # STRING; the trainer encodes it with a vocabulary kept in the model card
    "product_age_days",  # D - product created_at date (negative if it sold before its created_at)
)
PLANNED: tuple[str, ...] = (
    "dow",  # ISO day of week, 1 = Monday
    "month",
    "promo_active",  # 1 when a store promotion announced before D covers D (table promotions)
    "promo_discount",  # that promotion's discount fraction, else 0
    "days_to_promo",  # days until the next announced promotion starts (0 while one runs; NULL: none known)
    "days_since_promo",  # days since the last promotion ended (0 while one runs; NULL: none yet)
)
COLUMNS: tuple[str, ...] = (*KEYS, LABEL, *HISTORY, *SHOP, *STATE, *PLANNED)  # the SQL's output, in order
CATEGORICAL: tuple[str, ...] = ("product_type",)
