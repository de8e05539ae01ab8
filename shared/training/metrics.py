"""Forecast accuracy metrics: pure numpy, the same for the model, baselines and champion."""

from __future__ import annotations

import numpy as np

METRICS: tuple[str, ...] = ("wape", "mae", "rmse", "bias")


def wape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Weighted absolute percentage error: sum |error| / sum |actual| (NaN when nothing sold)."""
    denominator = float(np.abs(actual).sum())
    return float(np.abs(forecast - actual).sum() / denominator) if denominator > 0 else float("nan")


def mae(actual: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.abs(forecast - actual).mean()) if actual.size else float("nan")


def rmse(actual: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.sqrt(np.square(forecast - actual).mean())) if actual.size else float("nan")


def bias(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Relative bias: sum(forecast - actual) / sum(actual); positive means over-forecasting."""
    denominator = float(np.abs(actual).sum())
    return float((forecast - actual).sum() / denominator) if denominator > 0 else float("nan")


def score(actual: np.ndarray, forecast: np.ndarray) -> dict[str, float]:
    actual = np.asarray(actual, dtype=float)
    forecast = np.asarray(forecast, dtype=float)
    return {
        "wape": wape(actual, forecast),
        "mae": mae(actual, forecast),
        "rmse": rmse(actual, forecast),
        "bias": bias(actual, forecast),
    }


def score_by_horizon(actual: np.ndarray, forecast: np.ndarray, horizon: np.ndarray) -> dict[str, object]:
    """``{"overall": {...}, "by_horizon": {"1": {...}, ...}}`` for one forecaster."""
    by_horizon = {
        str(int(h)): score(actual[horizon == h], forecast[horizon == h]) for h in np.unique(horizon)
    }
    return {"overall": score(actual, forecast), "by_horizon": by_horizon}
