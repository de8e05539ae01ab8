"""The trainer: feature table → LightGBM → ONNX → parity → champion check → model card.

``train`` is pure apart from CPU: a feature frame in, a ``TrainingResult`` out. ``run`` adds
the I/O (warehouse, registry, publisher) and is what ``python -m shared.training`` calls,
locally as a process and on Vertex AI as a CustomJob, with only settings changed.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from shared.errors import PermanentError
from shared.ports import ModelVersion
from shared.training import dataset, export, metrics, postprocess
from shared.training.dataset import MAX_HORIZON, MODEL_FEATURES
from shared.training.gate import BASELINES, WAPE_GRAINS, GateRules, best_baseline, judge

EPOCH = date(1970, 1, 1)


def _drift_setting(name: str) -> int:
    from shared.settings import get_settings

    return int(getattr(get_settings(), name))


@dataclass(frozen=True)
class TrainerConfig:
    objective: str = "tweedie"  # or "poisson": count demand; "quantile" (see quantile_alpha)
    tweedie_variance_power: float = 1.2
    quantile_alpha: float = 0.5
    learning_rate: float = 0.1
    num_leaves: int = 63
    min_data_in_leaf: int = 100
    feature_fraction: float = 0.9
    bagging_fraction: float = 0.8
    lambda_l2: float = 1.0
    max_rounds: int = 400
    early_stopping_rounds: int = 30
    cv_folds: int = 2  # expanding-window folds before the final holdout
    holdout_days: int = MAX_HORIZON
    horizons_per_row: int = 1
    seed: int = 0
    # Post-hoc sharpening s * yhat**k (shared/training/postprocess.py), k chosen on the last fold.
    # Off by default: on the 9-month UCI file it did not beat the zero forecast on WAPE in CV
    # (bench/RESULTS.md, Step 3b).
    sharpen: bool = False
    sharpen_grid: tuple[float, ...] = postprocess.K_GRID
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    # Drift references in the card (shared/monitoring/drift.py): sample size and PSI bins.
    reference_sample_rows: int = field(default_factory=lambda: _drift_setting("drift_reference_rows"))
    psi_bins: int = field(default_factory=lambda: _drift_setting("drift_psi_bins"))

    def __post_init__(self) -> None:
        if self.objective not in ("tweedie", "poisson", "quantile"):
            raise PermanentError(f"objective {self.objective!r}: choose tweedie, poisson or quantile")
        if self.cv_folds < 1:
            raise PermanentError("cv_folds must be at least 1 (early stopping needs a validation fold)")

    def lightgbm_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "objective": self.objective,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": 1,
            "lambda_l2": self.lambda_l2,
            "num_threads": self.threads,
            "seed": self.seed,
            "deterministic": True,
            "verbose": -1,
        }
        if self.objective == "tweedie":
            params["tweedie_variance_power"] = self.tweedie_variance_power
        if self.objective == "quantile":
            params["alpha"] = self.quantile_alpha
        return params


@dataclass(frozen=True)
class Champion:
    """The model serving now (or the last candidate), scored on the candidate's holdout."""

    version: str
    card: Mapping[str, Any]
    onnx_model: bytes


@dataclass
class TrainingResult:
    booster: Any
    onnx_model: bytes
    parity: export.Parity
    decision: str  # "promote" or "reject" (the gate and the champion check both must pass)
    card: dict[str, Any]
    timings: dict[str, float]
    holdout: dataset.Rows  # the rows the card's metrics and the parity check were computed on

    @property
    def promoted(self) -> bool:
        return self.decision == "promote"


def _date(day: int) -> str:
    return (EPOCH + timedelta(days=int(day))).isoformat()


def _fit(config: TrainerConfig, train: dataset.Rows, valid: dataset.Rows | None, rounds: int) -> Any:
    import lightgbm

    names = list(MODEL_FEATURES)
    train_set = lightgbm.Dataset(train.inputs, train.label, feature_name=names, free_raw_data=True)
    callbacks: list[Any] = []
    valid_sets = []
    if valid is not None:
        valid_sets = [lightgbm.Dataset(valid.inputs, valid.label, reference=train_set)]
        callbacks = [lightgbm.early_stopping(config.early_stopping_rounds, verbose=False)]
    params = config.lightgbm_params()
    return lightgbm.train(params, train_set, rounds, valid_sets=valid_sets, callbacks=callbacks)


def champion_features(champion: Champion, rows: dataset.Rows, vocabulary: Sequence[str]) -> np.ndarray | None:
    """The holdout in the champion's own feature order and product-type codes, or None if it
    needs a feature this run does not compute (then the two cannot be compared)."""
    names = list(champion.card.get("features", []))
    if not names or any(name not in MODEL_FEATURES for name in names):
        return None
    matrix = rows.features[:, [MODEL_FEATURES.index(name) for name in names]].copy()
    if "product_type_code" in names:
        theirs = {name: index + 1 for index, name in enumerate(champion.card.get("product_types", []))}
        ours = np.array([0.0] + [float(theirs.get(name, 0)) for name in vocabulary])
        column = names.index("product_type_code")
        matrix[:, column] = ours[matrix[:, column].astype(np.int64)]
    return dataset.model_input(matrix)


def decide(candidate_wape: float, champion_wape: float | None, tolerance: float) -> str:
    """Promote unless the candidate is worse than the champion by more than ``tolerance``."""
    if champion_wape is None or not np.isfinite(champion_wape):
        return "promote"
    return "promote" if candidate_wape <= champion_wape * (1 + tolerance) else "reject"


def git_commit() -> str:
    found = os.environ.get("SHOPML_GIT_COMMIT")
    if found:
        return found
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=os.path.dirname(os.path.abspath(__file__)),
            check=False,
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def baseline_forecasts(rows: dataset.Rows) -> dict[str, np.ndarray]:
    return {
        "zero": np.zeros(rows.size),
        "seasonal_naive": rows.seasonal_naive,
        "moving_average_28": rows.moving_average_28,
    }


def evaluate_window(
    panel: dataset.Panel, rows: dataset.Rows, cutoff: int, forecasts: Mapping[str, np.ndarray]
) -> dict[str, Any]:
    """Every forecaster on the rows after ``cutoff``, RMSSE scaled by the history up to it."""
    scale = metrics.scales(panel.variant_id, panel.day, panel.units, panel.state[:, 0], cutoff)
    return {
        name: metrics.evaluate(rows.label, forecast, rows.horizon, rows.variant_id, scale)
        for name, forecast in forecasts.items()
    }


def _headline(evaluation: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Overall numbers per forecaster, for the fold table and the summary."""
    return {
        name: {
            **{key: entry["overall"][key] for key in (*metrics.METRICS, "wape_weekly", "actual_units")},
            "rmsse_mean": entry["overall"]["rmsse"]["mean"],
            "rmsse_weighted": entry["overall"]["rmsse"]["weighted"],
        }
        for name, entry in evaluation.items()
    }


def cv_summary(windows: Sequence[Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, float | None]]:
    """Mean of each headline metric over the windows (folds and holdout), per forecaster."""
    summary: dict[str, dict[str, float | None]] = {}
    for name in windows[0]:
        summary[name] = {}
        for key in windows[0][name]:
            values = [w[name][key] for w in windows if w[name][key] is not None]
            summary[name][key] = float(np.mean(values)) if values else None
    return summary


def train(
    frame: pd.DataFrame,
    config: TrainerConfig | None = None,
    champion: Champion | None = None,
    tolerance: float = 0.02,
    gate_rules: GateRules | None = None,
) -> TrainingResult:
    """Cross-validate, fit, evaluate against the baselines and the champion, gate, export and
    check parity."""
    config = config or TrainerConfig()
    gate_rules = gate_rules or GateRules()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    sold = dataset.active_variants(frame)
    inactive = int(frame.loc[~sold, "variant_id"].nunique())
    panel = dataset.to_panel(frame[sold])
    cutoff = panel.last_day - config.holdout_days
    needed = (config.cv_folds + 1) * config.holdout_days + 2 * MAX_HORIZON
    if panel.last_day - panel.first_day + 1 < needed:
        raise PermanentError(
            f"not enough history: {panel.last_day - panel.first_day + 1} days in the window, the "
            f"trainer needs at least {needed} ({config.cv_folds} folds and a holdout of "
            f"{config.holdout_days} days, plus {2 * MAX_HORIZON} days to learn from)"
        )
    rng = np.random.default_rng(config.seed)
    timings["prepare_s"] = time.perf_counter() - started

    fitted_folds = []
    fit_started = time.perf_counter()
    for k in range(config.cv_folds, 0, -1):  # oldest fold first: an expanding window
        fold_cutoff = cutoff - k * config.holdout_days
        train_rows = dataset.training_rows(panel, fold_cutoff, rng, config.horizons_per_row)
        valid_rows = dataset.holdout_rows(panel, fold_cutoff, config.holdout_days)
        booster = _fit(config, train_rows, valid_rows, config.max_rounds)
        best = int(booster.best_iteration or booster.current_iteration())
        forecast = booster.predict(valid_rows.inputs, num_iteration=best)
        fitted_folds.append((fold_cutoff, train_rows.size, valid_rows, best, forecast))
    # Sharpening is fitted on the last fold (rows its model did not train on), never the holdout.
    sharpening_fit = (
        postprocess.fit(
            fitted_folds[-1][4], fitted_folds[-1][2].label, gate_rules.max_abs_bias, config.sharpen_grid
        )
        if config.sharpen
        else None
    )
    sharpening = sharpening_fit.chosen if sharpening_fit else postprocess.Sharpening()
    folds = []
    for fold_cutoff, train_size, valid_rows, best, raw in fitted_folds:
        forecast = sharpening.apply(raw)
        forecasts = {"model": forecast, **baseline_forecasts(valid_rows)}
        if not sharpening.identity:
            forecasts["model_unsharpened"] = raw
        fold_eval = evaluate_window(panel, valid_rows, fold_cutoff, forecasts)
        folds.append(
            {
                "cutoff": _date(fold_cutoff),
                "train_rows": train_size,
                "valid_rows": valid_rows.size,
                "best_iteration": best,
                "model": metrics.score(valid_rows.label, forecast),
                "seasonal_naive": metrics.score(valid_rows.label, valid_rows.seasonal_naive),
                "moving_average_28": metrics.score(valid_rows.label, valid_rows.moving_average_28),
                "metrics": _headline(fold_eval),
                "horizons_without_sales": fold_eval["model"]["horizons_without_sales"],
            }
        )
    del fitted_folds
    rounds = max(1, int(np.median([fold["best_iteration"] for fold in folds])))
    train_rows = dataset.training_rows(panel, cutoff, rng, config.horizons_per_row)
    booster = _fit(config, train_rows, None, rounds)
    timings["training_s"] = time.perf_counter() - fit_started

    holdout = dataset.holdout_rows(panel, cutoff, config.holdout_days)
    unsharpened = booster.predict(holdout.inputs)
    native = sharpening.apply(unsharpened)  # what serving answers: the model and its post-processing
    served = {"model": native, **baseline_forecasts(holdout)}
    if not sharpening.identity:
        served["model_unsharpened"] = unsharpened
    evaluation = evaluate_window(panel, holdout, cutoff, served)

    export_started = time.perf_counter()
    onnx_model = postprocess.to_onnx(export.to_onnx(booster, len(MODEL_FEATURES)), sharpening)
    timings["export_s"] = time.perf_counter() - export_started
    parity = export.check_parity(onnx_model, native, holdout.inputs)
    timings["parity_s"] = time.perf_counter() - export_started - timings["export_s"]

    # The champion is compared on the holdout, at the grain the gate judges WAPE on.
    wape_key = WAPE_GRAINS[gate_rules.wape_grain]
    champion_entry: dict[str, Any] | None = None
    champion_wape: float | None = None
    if champion is not None:
        matrix = champion_features(champion, holdout, panel.vocabulary)
        if matrix is None:
            champion_entry = {"version": champion.version, "comparable": False}
        else:
            theirs = export.onnx_predict(export.onnx_session(champion.onnx_model, threads=2), matrix)
            evaluation.update(evaluate_window(panel, holdout, cutoff, {"champion": theirs}))
            champion_wape = _float(evaluation["champion"]["overall"][wape_key])
            champion_entry = {"version": champion.version, "comparable": True, "wape": champion_wape}
    candidate_wape = _float(evaluation["model"]["overall"][wape_key])
    champion_decision = decide(candidate_wape, champion_wape, tolerance)
    compared = ("model", *BASELINES, *(("model_unsharpened",) if not sharpening.identity else ()))
    holdout_headline = _headline({name: evaluation[name] for name in compared})
    windows = [fold["metrics"] for fold in folds] + [holdout_headline]
    verdict = judge(windows, gate_rules, best_baseline(evaluation))
    decision = "promote" if verdict.passed and champion_decision == "promote" else "reject"
    reasons = list(verdict.reasons)
    if champion_decision != "promote":
        reasons.append(
            f"WAPE ({gate_rules.wape_grain}) {candidate_wape:.4f} is worse than the champion's "
            f"{champion_wape:.4f} by more than "
            f"{tolerance:.1%}"
        )
    cv = cv_summary(windows)

    reference = dataset.reference_distributions(train_rows.features, MODEL_FEATURES)
    inputs = train_rows.inputs
    reference_sample = dataset.reference_sample(
        inputs, MODEL_FEATURES, config.reference_sample_rows, config.seed, train_rows.variant_id
    )
    psi_bins = dataset.psi_bins(inputs, MODEL_FEATURES, config.psi_bins)
    del inputs
    importance = _feature_importance(booster)
    timings["total_s"] = time.perf_counter() - started
    card: dict[str, Any] = {
        "task": "daily units per product variant, horizons 1-28 days",
        "data_window": {"start": _date(panel.first_day), "end": _date(panel.last_day)},
        "holdout_window": {"start": _date(cutoff + 1), "end": _date(cutoff + config.holdout_days)},
        "trained_through": _date(cutoff),
        "rows": {
            "feature_table": panel.rows,
            "variants": int(np.unique(panel.variant_id).size),
            "inactive_variants_dropped": inactive,
            "train": train_rows.size,
            "holdout": holdout.size,
        },
        "features": list(MODEL_FEATURES),
        "input": {
            "name": export.INPUT_NAME,
            "dtype": "float32",
            "shape": [None, len(MODEL_FEATURES)],
            "missing_value": dataset.MISSING,
        },
        "product_types": list(panel.vocabulary),
        # The shops whose variants it learned from: predict serves these and falls back elsewhere.
        "shops": sorted({str(shop).lower() for shop in frame.loc[sold, "shop_domain"].dropna().unique()}),
        "objective": config.objective,
        "parameters": {**asdict(config), "num_boost_round": rounds},
        "cross_validation": folds,
        "cv_summary": cv,
        "postprocessing": _postprocessing_card(sharpening_fit, folds, cv, holdout_headline),
        "metrics": evaluation,
        "horizons_without_sales": evaluation["model"]["horizons_without_sales"],
        "wape_model": _float(evaluation["model"]["overall"]["wape"]),
        "wape_seasonal_naive": _float(evaluation["seasonal_naive"]["overall"]["wape"]),
        "wape_moving_average_28": _float(evaluation["moving_average_28"]["overall"]["wape"]),
        "wape_zero": _float(evaluation["zero"]["overall"]["wape"]),
        "rmsse": {name: evaluation[name]["overall"]["rmsse"] for name in evaluation},
        "gate": verdict.to_card(),
        "best_baseline": verdict.best_baseline,
        "decision": decision,
        "reasons": reasons,
        "champion": {
            **(champion_entry or {"version": None}),
            "tolerance": tolerance,
            "decision": champion_decision,
            "candidate_wape": candidate_wape,
            "wape_grain": gate_rules.wape_grain,
        },
        "parity": {
            "max_abs_diff": parity.max_abs_diff,
            "max_rel_diff": parity.max_rel_diff,
            "atol": parity.atol,
            "rtol": parity.rtol,
            "tolerance": f"|onnx - native| <= {parity.atol:g} + {parity.rtol:g} * |native| on every row",
            "violations": parity.violations,
            "rows": parity.rows,
            "ok": parity.ok,
        },
        "reference_distributions": reference,
        "reference_sample": reference_sample,
        "psi_bins": psi_bins,
        "feature_importance": importance,
        "onnx_sha256": hashlib.sha256(onnx_model).hexdigest(),
        "git_commit": git_commit(),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "training_seconds": round(timings["total_s"], 3),
        "timings": {name: round(value, 3) for name, value in timings.items()},
        "environment": _environment(),
    }
    return TrainingResult(booster, onnx_model, parity, decision, card, timings, holdout)


def _postprocessing_card(
    sharpening_fit: postprocess.Fit | None,
    folds: Sequence[Mapping[str, Any]],
    cv: Mapping[str, Any],
    holdout: Mapping[str, Any],
) -> dict[str, Any]:
    """What serving applies after the trees, how it was chosen, and the metrics before and after."""
    if sharpening_fit is None:
        return {"kind": "none"}
    chosen = sharpening_fit.chosen
    card: dict[str, Any] = {
        "kind": "sharpen",
        "formula": "s * max(yhat, 0) ** k (in the ONNX graph: Relu, Pow, Mul after the trees)",
        **sharpening_fit.to_card(),
        "chosen_on": f"cross-validation fold {folds[-1]['cutoff']} (the last; out of sample)",
        "rule": "lowest WAPE over the grid with |bias| within the gate's bound; s keeps that fold's "
        "total forecast; identity (k 1, s 1) when no k qualifies",
        "identity": chosen.identity,
    }
    if not chosen.identity:
        card["metrics"] = {
            window: {"before": values["model_unsharpened"], "after": values["model"]}
            for window, values in (("cv_summary", cv), ("holdout", holdout))
        }
    return card


def _feature_importance(booster: Any) -> dict[str, Any]:
    """Total gain of each feature's splits in the final model, and its share of the total."""
    gains = [float(value) for value in booster.feature_importance(importance_type="gain")]
    total = sum(gains)
    return {
        "type": "gain",
        "gain": dict(zip(MODEL_FEATURES, gains, strict=True)),
        "share": {
            name: (gain / total if total else 0.0) for name, gain in zip(MODEL_FEATURES, gains, strict=True)
        },
    }


def _float(value: float | None) -> float:
    """A card metric as a float (NaN where it is undefined, e.g. nothing sold)."""
    return float("nan") if value is None else float(value)


def _environment() -> dict[str, str]:
    import lightgbm
    import onnxruntime

    return {
        "python": platform.python_version(),
        "lightgbm": lightgbm.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def next_version(existing: Sequence[ModelVersion], features: Sequence[str]) -> str:
    """Semantic version of the next model: a new feature list or order is a new major (the
    serving side must build other inputs); a retrain on the same inputs a new minor."""
    if not existing:
        return "1.0.0"

    def key(version: ModelVersion) -> tuple[int, ...]:
        return tuple(int(part) for part in version.version.split("."))

    latest = max(existing, key=key)
    major, minor, _ = key(latest)
    if list(latest.card.get("features", [])) != list(features):
        return f"{major + 1}.0.0"
    return f"{major}.{minor + 1}.0"
