"""Live accuracy: the live model's logged forecasts against the units that were then sold. Pure.

``drift_monitor`` reads the inputs (``predictions`` rows of the live version, net units per
variant and day from the warehouse's feature SQL) and hands them here; everything below is
numpy/pandas on those frames, so tests give it frames.

What is scored
    Every logged answer forecasts ``units[i]`` for day ``first_day + i`` (horizon ``i + 1``)
    from the origin ``first_day - 1`` (data through that day). One (variant, day) is often
    forecast many times (every page view that was sampled, at several horizons): it is scored
    once, with the freshest forecast (smallest horizon; then the latest request), so a
    popular variant does not count a hundred times and a day counts when its sales are
    complete (``last_day``: the last complete UTC day).

Against what
    The baselines of training (``shared.training.gate.BASELINES``) on the same rows, from the
    same origins: ``zero``; ``seasonal_naive``, the same weekday in the last week known at the
    origin (``day - 7 * ceil(h / 7)``); ``moving_average_28``, the mean of the 28 days through
    the origin. A day a variant has no row in the warehouse counts as 0 units sold.

Metrics
    WAPE, MAE, RMSE and bias (``shared.training.metrics.score``) and M5's RMSSE (plain and
    weighted, scales from the history through the earliest origin), for the model and each
    baseline. ``shop_week``: forecasts and sales summed per shop and ISO week, then
    ``accuracy = 1 - sum |F - A| / sum A`` over those sums: at variant-day level 1 - WAPE is
    near 0 for every forecaster on intermittent demand; per shop and week errors of single
    days and variants cancel and an 85% floor can mean something. ``last_7_days``: realised
    units over the last 7 complete days against what the live model forecast for them
    (``deviation = |sum A - sum F| / sum F``), the retraining trigger.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from shared.training import metrics
from shared.training.gate import BASELINES, best_baseline

EPOCH = date(1970, 1, 1)


def day_number(day: date) -> int:
    return (day - EPOCH).days


def forecast_rows(predictions: pd.DataFrame, first_target: date, last_day: date) -> pd.DataFrame:
    """One row per (variant, target day) in ``[first_target, last_day]``: the freshest forecast.

    ``predictions``: columns ``shop_domain``, ``variant_id``, ``first_day`` (date),
    ``units`` (sequence of floats) and ``request_time``. Returns ``shop_domain``,
    ``variant_id``, ``day`` (days since epoch), ``horizon`` and ``forecast``.
    """
    columns = ["shop_domain", "variant_id", "day", "horizon", "forecast"]
    if predictions.empty:
        return pd.DataFrame({name: pd.Series(dtype="float64") for name in columns})
    frame = predictions[["shop_domain", "variant_id", "first_day", "units", "request_time"]].copy()
    frame["units"] = frame["units"].map(
        lambda values: [float(v) for v in (values if values is not None else [])]
    )
    frame = frame[frame["units"].map(len) > 0]
    frame["horizon"] = frame["units"].map(lambda values: list(range(1, len(values) + 1)))
    exploded = frame.explode(["units", "horizon"], ignore_index=True)
    first = pd.to_datetime(exploded["first_day"]).dt.date.map(day_number).astype(np.int64)
    exploded["horizon"] = exploded["horizon"].astype(np.int64)
    exploded["day"] = first + exploded["horizon"] - 1
    exploded["forecast"] = exploded["units"].astype(np.float64)
    exploded["variant_id"] = exploded["variant_id"].astype(np.int64)
    inside = (exploded["day"] >= day_number(first_target)) & (exploded["day"] <= day_number(last_day))
    chosen = (
        exploded[inside]
        .sort_values(["variant_id", "day", "horizon", "request_time"], ascending=[True, True, True, False])
        .drop_duplicates(["variant_id", "day"], keep="first")
    )
    return chosen[columns].reset_index(drop=True)


@dataclass(frozen=True)
class History:
    """Net units per (variant, day) from the warehouse, as a lookup (missing: 0 sold)."""

    variant_id: np.ndarray  # int64, sorted by variant then day
    day: np.ndarray  # int64 days since epoch
    units: np.ndarray  # float64
    price: np.ndarray  # float64 (NaN unknown)

    @classmethod
    def from_frame(cls, daily: pd.DataFrame) -> History:
        """``daily``: ``variant_id``, ``date`` (date or datetime), ``units`` and optionally ``price``."""
        if daily.empty:
            empty = np.empty(0, dtype=np.int64)
            return cls(empty, empty, np.empty(0), np.empty(0))
        frame = daily.copy()
        frame["day"] = pd.to_datetime(frame["date"]).dt.date.map(day_number).astype(np.int64)
        frame = frame.sort_values(["variant_id", "day"], kind="stable")
        price = frame["price"] if "price" in frame else pd.Series(np.nan, index=frame.index)
        return cls(
            frame["variant_id"].to_numpy(np.int64),
            frame["day"].to_numpy(np.int64),
            frame["units"].fillna(0.0).to_numpy(np.float64),
            price.astype("float64").to_numpy(),
        )

    def lookup(self, variant_id: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Units sold by each (variant, day); 0 where the warehouse has no row."""
        if self.variant_id.size == 0:
            return np.zeros(np.asarray(variant_id).size)
        keys = self.variant_id.astype(np.int64) * 100_000 + self.day  # days < 100,000 (year 2243)
        wanted = np.asarray(variant_id, dtype=np.int64) * 100_000 + np.asarray(day, dtype=np.int64)
        position = np.clip(np.searchsorted(keys, wanted), 0, keys.size - 1)
        found = keys[position] == wanted
        return np.where(found, self.units[position], 0.0)


def baseline_forecasts(rows: pd.DataFrame, history: History) -> dict[str, np.ndarray]:
    """The training baselines for each scored row, from that row's origin (``day - horizon``)."""
    variant = rows["variant_id"].to_numpy(np.int64)
    day = rows["day"].to_numpy(np.int64)
    horizon = rows["horizon"].to_numpy(np.int64)
    origin = day - horizon
    seasonal_day = day - 7 * np.ceil(horizon / 7).astype(np.int64)
    average = np.zeros(day.size)
    for back in range(28):
        average += history.lookup(variant, origin - back)
    return {
        "zero": np.zeros(day.size),
        "seasonal_naive": history.lookup(variant, seasonal_day),
        "moving_average_28": average / 28.0,
    }


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    return value


@dataclass
class Accuracy:
    """The scored window: per forecaster ``{wape, mae, rmse, bias, rmsse{...}}`` and the rest."""

    first_day: date
    last_day: date
    rows: int
    variants: int
    actual_units: float
    forecasters: dict[str, dict[str, Any]] = field(default_factory=dict)
    best_baseline: str | None = None
    shop_week: dict[str, Any] = field(default_factory=dict)
    last_7_days: dict[str, Any] = field(default_factory=dict)

    def value(self, forecaster: str, metric: str) -> float:
        """One overall metric (``rmsse`` is the weighted mean); NaN when undefined."""
        entry = self.forecasters.get(forecaster, {})
        raw = entry.get("rmsse", {}).get("weighted") if metric == "rmsse" else entry.get(metric)
        return float("nan") if raw is None else float(raw)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Accuracy:
        """An ``Accuracy`` back from ``to_json`` (undefined numbers stay None: ``value`` reads NaN)."""
        window = data["window"]
        return cls(
            first_day=date.fromisoformat(window["first_day"]),
            last_day=date.fromisoformat(window["last_day"]),
            rows=int(data["rows"]),
            variants=int(data["variants"]),
            actual_units=float(data["actual_units"]),
            forecasters=dict(data.get("forecasters") or {}),
            best_baseline=data.get("best_baseline"),
            shop_week=dict(data.get("shop_week") or {}),
            last_7_days=dict(data.get("last_7_days") or {}),
        )

    def to_json(self) -> dict[str, Any]:
        return _clean(
            {
                "window": {"first_day": self.first_day.isoformat(), "last_day": self.last_day.isoformat()},
                "rows": self.rows,
                "variants": self.variants,
                "actual_units": self.actual_units,
                "forecasters": self.forecasters,
                "best_baseline": self.best_baseline,
                "shop_week": self.shop_week,
                "last_7_days": self.last_7_days,
            }
        )


def _score(
    actual: np.ndarray, forecast: np.ndarray, variant: np.ndarray, scale: metrics.Scales
) -> dict[str, Any]:
    return {**metrics.score(actual, forecast), "rmsse": metrics.rmsse(actual, forecast, variant, scale)}


def shop_week_accuracy(rows: pd.DataFrame, actual: np.ndarray, limit: int = 20) -> dict[str, Any]:
    """Forecast and sales summed per shop and ISO week; ``accuracy`` = 1 - WAPE over those sums."""
    if rows.empty:
        return {"accuracy": None, "shop_weeks": 0, "entries": []}
    days = rows["day"].to_numpy(np.int64)
    monday = days - (days + 3) % 7  # 1970-01-01 was a Thursday: (day + 3) % 7 is 0 on Mondays
    frame = pd.DataFrame(
        {
            "shop_domain": rows["shop_domain"].to_numpy(),
            "week": monday,
            "forecast": rows["forecast"],
            "actual": actual,
        }
    )
    sums = frame.groupby(["shop_domain", "week"], as_index=False)[["forecast", "actual"]].sum()
    total = float(sums["actual"].sum())
    error = float(np.abs(sums["forecast"] - sums["actual"]).sum())
    entries = [
        {
            "shop_domain": str(row.shop_domain),
            "week_of": (EPOCH + timedelta(days=int(row.week))).isoformat(),
            "forecast_units": round(float(row.forecast), 3),
            "actual_units": float(row.actual),
        }
        for row in sums.sort_values(["week", "shop_domain"]).tail(limit).itertuples()
    ]
    return {
        "accuracy": 1.0 - error / total if total > 0 else None,
        "wape": error / total if total > 0 else None,
        "shop_weeks": len(sums),
        "entries": entries,
    }


def last_days(rows: pd.DataFrame, actual: np.ndarray, last_day: date, days: int = 7) -> dict[str, Any]:
    """Realised units over the last ``days`` complete days against the live model's forecast."""
    recent = rows["day"].to_numpy(np.int64) > day_number(last_day) - days
    forecast = float(rows["forecast"].to_numpy()[recent].sum())
    sold = float(actual[recent].sum())
    return {
        "days": days,
        "rows": int(recent.sum()),
        "forecast_units": forecast,
        "actual_units": sold,
        "deviation": abs(sold - forecast) / forecast if forecast > 0 else None,
    }


def score_window(rows: pd.DataFrame, history: History, first_day: date, last_day: date) -> Accuracy:
    """The live model and the baselines on the scored rows (``forecast_rows``)."""
    variant = rows["variant_id"].to_numpy(np.int64)
    actual = history.lookup(variant, rows["day"].to_numpy(np.int64))
    result = Accuracy(
        first_day=first_day,
        last_day=last_day,
        rows=len(rows),
        variants=int(np.unique(variant).size),
        actual_units=float(actual.sum()),
    )
    if rows.empty:
        return result
    cutoff = int((rows["day"] - rows["horizon"]).min())
    scale = metrics.scales(history.variant_id, history.day, history.units, history.price, cutoff)
    forecasts = {"model": rows["forecast"].to_numpy(np.float64), **baseline_forecasts(rows, history)}
    result.forecasters = {name: _score(actual, values, variant, scale) for name, values in forecasts.items()}
    result.best_baseline = best_baseline({name: {"overall": result.forecasters[name]} for name in BASELINES})
    result.shop_week = shop_week_accuracy(rows, actual)
    result.last_7_days = last_days(rows, actual, last_day)
    return result


def card_holdout_error(card: Mapping[str, Any]) -> dict[str, float]:
    """The live model's holdout WAPE and weighted RMSSE from its card (NaN when absent)."""
    overall = card.get("metrics", {}).get("model", {}).get("overall", {})
    wape = overall.get("wape")
    rmsse = (overall.get("rmsse") or {}).get("weighted") if isinstance(overall.get("rmsse"), dict) else None
    return {
        "wape": float(wape) if wape is not None else float("nan"),
        "rmsse": float(rmsse) if rmsse is not None else float("nan"),
    }
