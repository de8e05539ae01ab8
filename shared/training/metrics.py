"""Forecast accuracy metrics: pure numpy, the same for the model, the baselines and the champion.

WAPE alone flatters a model on intermittent demand (most rows zero: the all-zero forecast
scores WAPE 1.0), so every forecaster is also scored on RMSE, bias and RMSSE, and the zero
forecast is one of the baselines. RMSSE as in M5: per variant, the root of its mean squared
error over the evaluation rows divided by its mean squared one-step naive error over its
training history from its first sale; variants whose denominator is zero (never sold before
the cutoff, or sold the same amount every day) are left out and counted.

WAPE is also taken on weekly sums (``wape_weekly``: per variant, horizons 1-7, 8-14, ... from
the origin). On a day where a variant more likely sells nothing than something, the zero
forecast has the least expected absolute error of any forecast (the median minimises it), so
an unbiased daily forecast of intermittent demand cannot beat zero on daily WAPE; a week is
the grain a merchant restocks on, and there the comparison means something.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

METRICS: tuple[str, ...] = ("wape", "mae", "rmse", "bias")
SCALE_WINDOW_DAYS = 28  # M5 weights a series by its sales over the last 28 days of training
WEEK_DAYS = 7  # the grain of ``wape_weekly``


def wape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Weighted absolute percentage error: sum |error| / sum |actual| (NaN when nothing sold)."""
    denominator = float(np.abs(actual).sum())
    return float(np.abs(forecast - actual).sum() / denominator) if denominator > 0 else float("nan")


def wape_weekly(
    actual: np.ndarray, forecast: np.ndarray, variant_id: np.ndarray, horizon: np.ndarray
) -> float:
    """WAPE of each variant's weekly sums from the forecast origin (horizons 1-7, 8-14, ...)."""
    week = (np.asarray(horizon, dtype=np.int64) - 1) // WEEK_DAYS
    _, bucket = np.unique(
        np.stack([np.asarray(variant_id, dtype=np.int64), week]), axis=1, return_inverse=True
    )
    bucket = bucket.ravel()
    return wape(np.bincount(bucket, weights=actual), np.bincount(bucket, weights=forecast))


def mae(actual: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.abs(forecast - actual).mean()) if actual.size else float("nan")


def rmse(actual: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.sqrt(np.square(forecast - actual).mean())) if actual.size else float("nan")


def bias(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Relative bias: sum(forecast - actual) / sum(actual); positive means over-forecasting."""
    denominator = float(np.abs(actual).sum())
    return float((forecast - actual).sum() / denominator) if denominator > 0 else float("nan")


@dataclass(frozen=True)
class Scales:
    """Per variant (sorted ids): the RMSSE denominator and the M5 weight, as of one cutoff."""

    variant_id: np.ndarray  # int64, sorted
    denominator: np.ndarray  # mean squared one-step naive error from the first sale; NaN: none
    weight: np.ndarray  # sales over the last 28 days up to the cutoff
    weight_basis: str  # "revenue" (units x price, as M5) or "units" when a price is unknown


def scales(
    variant_id: np.ndarray,
    day: np.ndarray,
    units: np.ndarray,
    price: np.ndarray,
    cutoff_day: int,
) -> Scales:
    """RMSSE denominators and weights from the history on or before ``cutoff_day``.

    Rows must be sorted by variant, then day, one row per day (the training panel). The
    denominator of a variant is mean((y_t - y_{t-1})^2) over the consecutive pairs from its
    first day with a sale through the cutoff; NaN when it has no such pair.
    """
    known = day <= cutoff_day
    variant, y, when, cost = variant_id[known], units[known], day[known], price[known]
    ids, group = np.unique(variant, return_inverse=True)
    if ids.size == 0:
        empty = np.empty(0)
        return Scales(ids.astype(np.int64), empty, empty, "units")
    started = _cumsum_by_group(y, group) > 0  # on or after the variant's first sale
    pair = np.r_[False, (group[1:] == group[:-1]) & started[:-1]]
    step = np.square(np.diff(y, prepend=0.0))
    pairs = np.bincount(group[pair], minlength=ids.size).astype(float)
    total = np.bincount(group[pair], weights=step[pair], minlength=ids.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        denominator = np.where(pairs > 0, total / np.maximum(pairs, 1), np.nan)
    recent = when > cutoff_day - SCALE_WINDOW_DAYS
    sold = recent & (y > 0)
    basis = "units" if np.isnan(cost[sold]).any() or not sold.any() else "revenue"
    amount = y * (np.nan_to_num(cost) if basis == "revenue" else 1.0)
    weight = np.bincount(group[recent], weights=amount[recent], minlength=ids.size)
    return Scales(ids.astype(np.int64), denominator, weight, basis)


def _cumsum_by_group(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Running sum within consecutive groups (rows sorted by group)."""
    total = np.cumsum(values)
    starts = np.r_[True, group[1:] != group[:-1]]
    first = np.maximum.accumulate(np.where(starts, np.arange(values.size), 0))
    return total - (total - values)[first]


def rmsse(actual: np.ndarray, forecast: np.ndarray, variant_id: np.ndarray, scale: Scales) -> dict[str, Any]:
    """M5's RMSSE over the rows given: the plain mean over variants and the weighted mean
    (weights: each variant's share of sales in the 28 days before the cutoff), with the
    number of variants scored and left out (denominator zero or no history)."""
    ids, group = np.unique(variant_id, return_inverse=True)
    squared = np.bincount(group, weights=np.square(forecast - actual), minlength=ids.size)
    count = np.bincount(group, minlength=ids.size)
    # A variant without history before the cutoff (launched after it) has no scale: left out.
    position = np.clip(np.searchsorted(scale.variant_id, ids), 0, max(scale.variant_id.size - 1, 0))
    known = scale.variant_id[position] == ids if scale.variant_id.size else np.zeros(ids.size, dtype=bool)
    denominator = np.full(ids.size, np.nan)
    denominator[known] = scale.denominator[position[known]]
    weights = np.zeros(ids.size)
    weights[known] = scale.weight[position[known]]
    usable = np.isfinite(denominator) & (denominator > 0)
    per_variant = np.sqrt(squared[usable] / count[usable] / denominator[usable])
    weight = weights[usable]
    weighted = float(np.sum(per_variant * weight) / weight.sum()) if weight.sum() > 0 else float("nan")
    return {
        "mean": float(per_variant.mean()) if per_variant.size else float("nan"),
        "weighted": weighted,
        "variants": int(usable.sum()),
        "excluded_variants": int((~usable).sum()),
        "weight_basis": scale.weight_basis,
    }


def score(actual: np.ndarray, forecast: np.ndarray) -> dict[str, float]:
    actual = np.asarray(actual, dtype=float)
    forecast = np.asarray(forecast, dtype=float)
    return {
        "wape": wape(actual, forecast),
        "mae": mae(actual, forecast),
        "rmse": rmse(actual, forecast),
        "bias": bias(actual, forecast),
    }


def _defined(values: dict[str, Any]) -> dict[str, Any]:
    """NaN (undefined: nothing sold) as None, so the card stays valid JSON."""
    return {
        key: (None if isinstance(value, float) and math.isnan(value) else value)
        for key, value in values.items()
    }


def evaluate(
    actual: np.ndarray,
    forecast: np.ndarray,
    horizon: np.ndarray,
    variant_id: np.ndarray,
    scale: Scales,
) -> dict[str, Any]:
    """One forecaster, overall and per horizon: WAPE, MAE, RMSE, bias, RMSSE (mean, weighted);
    overall also WAPE on weekly sums (``wape_weekly``).

    On a horizon without any sale (a day the shop is closed) WAPE and bias are undefined
    (None) and the horizon is listed in ``horizons_without_sales``; MAE, RMSE, RMSSE and
    ``scaled_abs_error`` (sum |error| on the horizon / the mean units per horizon over the
    whole window, the horizon's share of the overall WAPE) stay defined.
    """
    actual = np.asarray(actual, dtype=float)
    forecast = np.asarray(forecast, dtype=float)
    overall: dict[str, Any] = {
        **score(actual, forecast),
        "wape_weekly": wape_weekly(actual, forecast, variant_id, horizon),
        "rmsse": rmsse(actual, forecast, variant_id, scale),
    }
    overall["actual_units"] = float(actual.sum())
    horizons = np.unique(horizon)
    per_horizon_units = float(actual.sum()) / max(horizons.size, 1)
    by_horizon: dict[str, Any] = {}
    empty: list[int] = []
    for h in horizons:
        on = horizon == h
        a, f = actual[on], forecast[on]
        entry: dict[str, Any] = {**score(a, f), "rmsse": rmsse(a, f, variant_id[on], scale)["mean"]}
        entry["actual_units"] = float(a.sum())
        entry["scaled_abs_error"] = (
            float(np.abs(f - a).sum() / per_horizon_units) if per_horizon_units > 0 else float("nan")
        )
        if a.sum() <= 0:
            empty.append(int(h))
        by_horizon[str(int(h))] = _defined(entry)
    return {
        "overall": {**_defined(overall), "rmsse": _defined(overall["rmsse"])},
        "by_horizon": by_horizon,
        "horizons_without_sales": empty,
    }


def score_by_horizon(actual: np.ndarray, forecast: np.ndarray, horizon: np.ndarray) -> dict[str, Any]:
    """``{"overall": {...}, "by_horizon": {"1": {...}, ...}}`` for one forecaster (no RMSSE)."""
    by_horizon = {
        str(int(h)): score(actual[horizon == h], forecast[horizon == h]) for h in np.unique(horizon)
    }
    return {"overall": score(actual, forecast), "by_horizon": by_horizon}
