"""The baseline gate: a model is promoted only when it beats every baseline by a margin.

Baselines: ``zero`` (nothing sells: on intermittent demand it scores WAPE 1.0 and beats naive
forecasts), ``seasonal_naive`` (the same weekday a week earlier) and ``moving_average_28``.

Judged by time-series cross-validation, not by one holdout: over the windows (every fold and
the holdout), the model's mean WAPE, RMSE and RMSSE (M5's sales-weighted mean) must each be
below every baseline's mean by the margins from settings, and its mean |bias| over the windows
must be within a bound (a mean of signed biases would let a fold that over-forecasts hide one
that under-forecasts). WAPE is judged on weekly sums per variant by default (``wape_grain``;
``shared/training/metrics.py`` says why a daily WAPE cannot separate an unbiased forecast from
the zero forecast); the daily WAPE is in the card beside it. When the model fails, it is still
registered (``rejected``, the reasons in the card) and serving answers with ``best_baseline``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from shared.errors import PermanentError

if TYPE_CHECKING:
    from shared.settings import Settings

BASELINES: tuple[str, ...] = ("zero", "seasonal_naive", "moving_average_28")
WAPE_GRAINS: dict[str, str] = {"weekly": "wape_weekly", "daily": "wape"}


@dataclass(frozen=True)
class GateRules:
    wape_margin: float = 0.01  # model WAPE <= baseline WAPE * (1 - margin)
    rmsse_margin: float = 0.01  # model weighted RMSSE <= baseline's * (1 - margin)
    max_abs_bias: float = 0.10  # mean over the windows of |sum(forecast - actual) / sum(actual)|
    rmse_margin: float = 0.01  # model RMSE <= baseline RMSE * (1 - margin)
    wape_grain: str = "weekly"  # WAPE on weekly sums per variant, or "daily"

    @classmethod
    def from_settings(cls, settings: Settings) -> GateRules:
        """The rules from ``SHOPML_GATE_*``."""
        return cls(
            wape_margin=settings.gate_wape_margin,
            rmsse_margin=settings.gate_rmsse_margin,
            max_abs_bias=settings.gate_max_abs_bias,
            rmse_margin=settings.gate_rmse_margin,
            wape_grain=settings.gate_wape_grain,
        )

    def __post_init__(self) -> None:
        if self.wape_grain not in WAPE_GRAINS:
            raise PermanentError(f"gate WAPE grain {self.wape_grain!r}: choose {' or '.join(WAPE_GRAINS)}")


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    best_baseline: str = "seasonal_naive"
    rules: GateRules = field(default_factory=GateRules)
    judged_on: dict[str, Any] = field(default_factory=dict)

    def to_card(self) -> dict[str, Any]:
        return {
            "verdict": "pass" if self.passed else "fail",
            "reasons": list(self.reasons),
            "best_baseline": self.best_baseline,
            "rules": asdict(self.rules),
            "baselines": list(BASELINES),
            "judged_on": self.judged_on,
        }


def _value(entry: Mapping[str, Any], metric: str) -> float:
    overall = entry["overall"]
    raw = overall["rmsse"]["weighted"] if metric == "rmsse" else overall[metric]
    return float("nan") if raw is None else float(raw)


def best_baseline(evaluation: Mapping[str, Mapping[str, Any]]) -> str:
    """The baseline serving should answer with: lowest weighted RMSSE, then lowest WAPE.

    Not WAPE first: on intermittent demand WAPE ranks the all-zero forecast best, which
    would serve "nothing sells" for every variant; RMSSE (squared error) rewards the mean.
    """

    def key(name: str) -> tuple[float, float]:
        rmsse, wape = _value(evaluation[name], "rmsse"), _value(evaluation[name], "wape")
        return (rmsse if math.isfinite(rmsse) else math.inf, wape if math.isfinite(wape) else math.inf)

    return min((name for name in BASELINES if name in evaluation), key=key)


def _mean(values: Sequence[Any]) -> float:
    defined = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return sum(defined) / len(defined) if defined else float("nan")


def window_means(
    windows: Sequence[Mapping[str, Mapping[str, Any]]], rules: GateRules
) -> dict[str, dict[str, float]]:
    """Per forecaster, the mean over the windows of what the gate compares. Each window maps a
    forecaster to its headline numbers (``wape``, ``wape_weekly``, ``rmse``, ``rmsse_weighted``,
    ``bias``), as the trainer's ``cv_summary`` does."""
    wape_key = WAPE_GRAINS[rules.wape_grain]
    names = [name for name in ("model", *BASELINES) if all(name in window for window in windows)]
    return {
        name: {
            "wape": _mean([w[name].get(wape_key) for w in windows]),
            "rmse": _mean([w[name].get("rmse") for w in windows]),
            "rmsse": _mean([w[name].get("rmsse_weighted") for w in windows]),
            "abs_bias": _mean(
                [abs(float(w[name]["bias"])) if w[name].get("bias") is not None else None for w in windows]
            ),
        }
        for name in names
    }


def judge(
    windows: Sequence[Mapping[str, Mapping[str, Any]]], rules: GateRules, best: str = "seasonal_naive"
) -> Verdict:
    """Pass only if, in the mean over the windows, the model beats every baseline on WAPE, RMSE
    and RMSSE by the margins and its |bias| is within the bound. ``best`` is the baseline
    serving falls back to (``best_baseline`` of the holdout)."""
    if not windows:
        raise PermanentError("the gate needs at least one evaluation window")
    means = window_means(windows, rules)
    labels = {
        "wape": f"WAPE ({rules.wape_grain})",
        "rmse": "RMSE",
        "rmsse": "RMSSE (weighted)",
    }
    margins = {"wape": rules.wape_margin, "rmse": rules.rmse_margin, "rmsse": rules.rmsse_margin}
    reasons: list[str] = []
    ours = means["model"]
    for metric, margin in margins.items():
        if not math.isfinite(ours[metric]):
            reasons.append(f"model {labels[metric]} is undefined in every window")
            continue
        for name in BASELINES:
            theirs = means.get(name, {}).get(metric, float("nan"))
            if math.isfinite(theirs) and not ours[metric] <= theirs * (1 - margin):
                reasons.append(
                    f"{labels[metric]} {ours[metric]:.4f} is not {margin:.1%} below {name} ({theirs:.4f})"
                )
    if not math.isfinite(ours["abs_bias"]):
        reasons.append("model bias is undefined in every window (nothing sold)")
    elif ours["abs_bias"] > rules.max_abs_bias:
        reasons.append(f"|bias| {ours['abs_bias']:.3f} exceeds {rules.max_abs_bias:.3f}")
    judged_on = {
        "windows": len(windows),
        "statistic": "mean over the windows (folds and holdout); bias as mean |bias|",
        "means": {
            name: {metric: (value if math.isfinite(value) else None) for metric, value in entry.items()}
            for name, entry in means.items()
        },
        "model_bias_by_window": [w["model"].get("bias") for w in windows],
    }
    return Verdict(not reasons, reasons, best, rules, judged_on)
