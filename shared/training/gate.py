"""The baseline gate: a model is promoted only when it beats every baseline by a margin.

Baselines: ``zero`` (nothing sells: on intermittent demand it scores WAPE 1.0 and beats naive
forecasts), ``seasonal_naive`` (the same weekday a week earlier) and ``moving_average_28``.
The model must be below each of them on WAPE and on RMSSE (M5's sales-weighted mean) by the
margins from settings, with its |bias| within a bound. When it fails, it is still registered
(``rejected``, the reasons in the card) and serving answers with ``best_baseline``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

BASELINES: tuple[str, ...] = ("zero", "seasonal_naive", "moving_average_28")


@dataclass(frozen=True)
class GateRules:
    wape_margin: float = 0.01  # model WAPE <= baseline WAPE * (1 - margin)
    rmsse_margin: float = 0.01  # model weighted RMSSE <= baseline's * (1 - margin)
    max_abs_bias: float = 0.10  # |sum(forecast - actual) / sum(actual)| <= this


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    best_baseline: str = "seasonal_naive"
    rules: GateRules = field(default_factory=GateRules)

    def to_card(self) -> dict[str, Any]:
        return {
            "verdict": "pass" if self.passed else "fail",
            "reasons": list(self.reasons),
            "best_baseline": self.best_baseline,
            "rules": asdict(self.rules),
            "baselines": list(BASELINES),
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


def judge(evaluation: Mapping[str, Mapping[str, Any]], rules: GateRules) -> Verdict:
    """Pass only if the model beats every baseline on WAPE and RMSSE and its bias is bounded."""
    reasons: list[str] = []
    margins = {"wape": rules.wape_margin, "rmsse": rules.rmsse_margin}
    for metric, margin in margins.items():
        ours = _value(evaluation["model"], metric)
        label = "WAPE" if metric == "wape" else "RMSSE (weighted)"
        if not math.isfinite(ours):
            reasons.append(f"model {label} is undefined on the holdout")
            continue
        for name in BASELINES:
            theirs = _value(evaluation[name], metric)
            if math.isfinite(theirs) and not ours <= theirs * (1 - margin):
                reasons.append(f"{label} {ours:.4f} is not {margin:.1%} below {name} ({theirs:.4f})")
    bias = _value(evaluation["model"], "bias")
    if not math.isfinite(bias):
        reasons.append("model bias is undefined on the holdout (nothing sold)")
    elif abs(bias) > rules.max_abs_bias:
        reasons.append(f"|bias| {abs(bias):.3f} exceeds {rules.max_abs_bias:.3f}")
    return Verdict(not reasons, reasons, best_baseline(evaluation), rules)
