"""One drift-and-accuracy check of the live model: what ``drift_monitor`` runs on every
``drift-checks`` message (hourly, from Cloud Scheduler) and the demo runs on the local stack.

Steps (``DriftMonitor.check``):

1. **The live model.** The live pointer names the version; the registry gives its card (the
   reference sample, PSI bins, feature importances, holdout metrics). Nothing live: a row
   saying so, nothing else.
2. **Inputs.** The ``predictions`` rows the live version answered with the model (not a
   fallback) in the last ``SHOPML_DRIFT_WINDOW_HOURS`` (24), each the exact input vector of
   horizon 1, against the card's reference sample (``shared.monitoring.drift.compare``, the
   code ``shopml drift`` runs). Two corrections make the two sides comparable:

   * *the clock is not drift*: ``horizon``, ``dow``, ``month`` and ``shop_trading_weekday``
     describe the forecast day, and a window of hours holds one or two weekdays;
     ``product_age_days`` advances with the calendar, so serving, always at the end of the
     training window, sees every product older than most training rows did. They are not
     judged (``CLOCK_FEATURES``).
   * *serving traffic is not the training population*: shoppers look at some variants far
     more than others, and every sampled page view logs the same input again. The training
     sample has one row per (variant, day, horizon), so the window is counted the same way:
     one observation per distinct input of a (variant, day) (a thousand views of one product
     on one day are one observation, not a thousand: repeating them would only make the tests'
     p-values smaller without new evidence). When the card keeps each reference row's variant
     (cards from this step on), the reference is the sample's rows of the variants served in
     the window, so both sides describe the same products and what differs is their inputs.
     Variants the reference never saw stay in the window (a new product is a real change);
     when they are more than half of it, or the served variants have fewer reference rows
     than ``SHOPML_DRIFT_MIN_REFERENCE_ROWS``, or the card has no variants, the whole training
     sample is the reference. ``reference_scope`` in the report says which. A small store
     serves few variants a day: the window (``SHOPML_DRIFT_WINDOW_HOURS``) must then be longer
     to reach ``SHOPML_DRIFT_MIN_CURRENT_ROWS`` observations, or the check says "insufficient".

3. **Accuracy** (``shared.monitoring.accuracy``): forecasts of the live version for the last
   ``SHOPML_ACCURACY_WINDOW_DAYS`` (28) complete days, against net units sold, next to the
   baselines on the same rows; judged only from ``SHOPML_ACCURACY_MIN_ROWS`` (200) rows with
   some sales.
4. **Verdict** (``decide``):

   * ``drift``: a judged feature drifted. *Severe* when the drifted features together carry at
     least ``SHOPML_DRIFT_SEVERE_IMPORTANCE`` (0.5) of the model's total split gain (the card's
     ``feature_importance``): the inputs the model leans on most moved; else *moderate*.
   * ``accuracy_drop``: the live WAPE or weighted RMSSE on the window is more than
     ``SHOPML_ACCURACY_SLIP`` (3%) above the card's holdout value (a relative rule: at
     variant-day level 1 - WAPE is near 0 for every forecaster).
   * ``worse_than_baseline``: on the same rows the best baseline (lowest RMSSE, then WAPE,
     as training picks it) beats the live model on both WAPE and RMSSE.
   * ``accuracy_floor``: shop-week accuracy (1 - WAPE of weekly sums) below
     ``SHOPML_ACCURACY_FLOOR`` (0.85).

   **Rollback** on severe drift or worse-than-baseline (when a previous version exists).
   **Retrain** on moderate drift, an accuracy drop or the floor, and when realised units of
   the last 7 days differ from the live forecast by more than ``SHOPML_RETRAIN_UNITS_DEVIATION``
   (15%) (a rollback already asks for the previous model; training runs nightly anyway).
5. **Actions**, each at most once: a rollback request on ``rollback-requests`` with the
   idempotency key ``drift_monitor:rollback:<model>:<live version>`` (never a second one for the
   same live version: the key is looked up in ``drift_reports`` first, and ``rollback`` itself
   ignores a key the pointer already carries); a training request on ``training-requests``
   with ``drift_monitor:retrain:<model>:<UTC day>`` (at most one per model and day; its night is
   that day, so ``trigger_training`` runs it once even if the nightly job asks too). Both carry
   the reasons and the evidence. An alert to Slack when anything is wrong (a failing Slack is
   a warning, never a failed check). The HTML report to ``SHOPML_REPORTS``; the metrics on the
   registry given (``shared.monitoring.metrics``); one row in ``drift_reports``.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from shared.errors import PublishFailed, TransientError
from shared.logs import StructuredLogger, get_logger
from shared.monitoring import accuracy as acc
from shared.monitoring import drift
from shared.ports import Alert, AlertNotifier, EventPublisher, LivePointerStore, ModelRegistry, Warehouse
from shared.settings import Settings

TABLE = "drift_reports"
ROLLBACK_TOPIC = "rollback-requests"
TRAINING_TOPIC = "training-requests"
CLOCK_FEATURES: tuple[str, ...] = ("horizon", "dow", "month", "shop_trading_weekday", "product_age_days")
CATEGORICAL_FEATURES: tuple[str, ...] = ("product_type_code",)
MIN_COVERAGE = 0.5  # share of the window's observations whose variant the reference holds


def utc_now() -> datetime:
    return datetime.now(UTC)


# --- the inputs: predictions rows → columns ------------------------------------------------------


def _features(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, (bytes, str)):
        parsed = json.loads(value)
        return parsed if isinstance(parsed, dict) else None
    return dict(value) if isinstance(value, Mapping) else None


def serving_columns(
    rows: Sequence[Mapping[str, Any]], names: Sequence[str]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The window's observations as ``{feature: values}`` (NaN where a row lacks a feature) and
    each one's variant: one per distinct input vector of a (variant, first day); rows without
    an input vector are left out."""
    seen: set[tuple[Any, ...]] = set()
    kept: list[tuple[int, dict[str, Any]]] = []
    for row in rows:
        found = _features(row.get("features"))
        if not found:
            continue
        key = (row["variant_id"], str(row.get("first_day")), json.dumps(found, sort_keys=True))
        if key not in seen:
            seen.add(key)
            kept.append((int(row["variant_id"]), found))
    columns = {
        name: np.array([float(found.get(name, math.nan)) for _, found in kept], dtype=np.float64)
        for name in names
    }
    return columns, np.array([variant for variant, _ in kept], dtype=np.int64)


@dataclass(frozen=True)
class Reference:
    columns: dict[str, np.ndarray]
    scope: dict[str, Any]


def card_reference(card: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """The card's reference sample as columns, and each row's variant (None: not kept)."""
    sample = card.get("reference_sample")
    if not isinstance(sample, Mapping) or "data" not in sample:
        raise ValueError("the live model's card has no reference sample (trained before step 5)")
    columns = drift.decode_sample(sample)
    variants = drift.decode_ids(sample["variant_ids"]) if sample.get("variant_ids") else None
    return columns, variants


def served_reference(
    columns: Mapping[str, np.ndarray],
    reference_variants: np.ndarray | None,
    current_variants: np.ndarray,
    min_rows: int,
) -> Reference:
    """The reference rows of the variants served in the window, or the whole sample (module
    docstring, step 2)."""
    rows = next(iter(columns.values())).size if columns else 0
    whole = {"kind": "training population", "rows": rows}
    if reference_variants is None:
        return Reference(dict(columns), {**whole, "why": "the card keeps no variant ids"})
    if current_variants.size == 0 or rows == 0:
        return Reference(dict(columns), whole)
    served = np.unique(current_variants)
    known = np.isin(current_variants, reference_variants)
    coverage = float(known.mean())
    chosen = np.isin(reference_variants, served)
    facts = {
        "served_variants": int(served.size),
        "in_reference": int(np.isin(served, reference_variants).sum()),
        "window_share_in_reference": coverage,
        "rows_of_served_variants": int(chosen.sum()),
    }
    if coverage < MIN_COVERAGE:
        why = "most of the window is variants the model never trained on"
        return Reference(dict(columns), {**whole, **facts, "why": why})
    if chosen.sum() < min_rows:
        why = f"the served variants have fewer than {min_rows} reference rows"
        return Reference(dict(columns), {**whole, **facts, "why": why})
    return Reference(
        {name: values[chosen] for name, values in columns.items()},
        {"kind": "the served variants' training rows", "rows": int(chosen.sum()), **facts},
    )


# --- the verdict ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    severe_importance: float = 0.5
    accuracy_slip: float = 0.03
    accuracy_floor: float = 0.85
    accuracy_min_rows: int = 200
    units_deviation: float = 0.15

    @classmethod
    def from_settings(cls, settings: Settings) -> Rules:
        return cls(
            settings.drift_severe_importance,
            settings.accuracy_slip,
            settings.accuracy_floor,
            settings.accuracy_min_rows,
            settings.retrain_units_deviation,
        )


@dataclass
class Verdict:
    alerts: list[str] = field(default_factory=list)  # shared.monitoring.metrics.MONITOR_ALERTS
    reasons: list[str] = field(default_factory=list)
    rollback: bool = False
    retrain: bool = False
    severity: str = "none"  # none | moderate | severe
    drifted_importance: float = 0.0
    accuracy_judged: bool = False
    error_ratio: dict[str, float | None] = field(default_factory=dict)


def _finite(value: float) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def decide(
    report: drift.DriftReport | None,
    accuracy: acc.Accuracy | None,
    card: Mapping[str, Any],
    rules: Rules,
) -> Verdict:
    """Alerts, rollback and retraining from one check's evidence (module docstring, step 4)."""
    verdict = Verdict()
    if report is not None and report.drifted:
        shares = (card.get("feature_importance") or {}).get("share") or {}
        verdict.drifted_importance = float(sum(float(shares.get(name, 0.0)) for name in report.drifted))
        verdict.alerts.append("drift")
        names = ", ".join(report.drifted)
        if verdict.drifted_importance >= rules.severe_importance:
            verdict.severity = "severe"
            verdict.alerts.append("severe_drift")
            verdict.rollback = True
            verdict.reasons.append(
                f"severe drift: {names} moved, carrying {verdict.drifted_importance:.0%} of the model's "
                f"gain (>= {rules.severe_importance:.0%})"
            )
        else:
            verdict.severity = "moderate"
            verdict.retrain = True
            verdict.reasons.append(
                f"moderate drift: {names} moved, carrying {verdict.drifted_importance:.0%} "
                "of the model's gain"
            )
    if accuracy is not None and accuracy.rows >= rules.accuracy_min_rows and accuracy.actual_units > 0:
        verdict.accuracy_judged = True
        holdout = acc.card_holdout_error(card)
        for metric in ("wape", "rmsse"):
            live, trained = accuracy.value("model", metric), holdout[metric]
            ratio = live / trained if _finite(live) and _finite(trained) and trained > 0 else math.nan
            verdict.error_ratio[metric] = ratio if math.isfinite(ratio) else None
        slipped = [m for m, r in verdict.error_ratio.items() if r is not None and r > 1 + rules.accuracy_slip]
        if slipped:
            verdict.alerts.append("accuracy_drop")
            verdict.retrain = True
            verdict.reasons.append(
                "accuracy dropped: "
                + ", ".join(f"{m.upper()} {verdict.error_ratio[m]:.3f}x the holdout's" for m in slipped)
                + f" (allowed {1 + rules.accuracy_slip:.2f}x)"
            )
        best = accuracy.best_baseline
        if best is not None and all(
            _finite(accuracy.value("model", m))
            and _finite(accuracy.value(best, m))
            and accuracy.value("model", m) > accuracy.value(best, m)
            for m in ("wape", "rmsse")
        ):
            verdict.alerts.append("worse_than_baseline")
            verdict.rollback = True
            verdict.reasons.append(
                f"worse than the {best} baseline on the same {accuracy.rows} rows: WAPE "
                f"{accuracy.value('model', 'wape'):.3f} vs {accuracy.value(best, 'wape'):.3f}, RMSSE "
                f"{accuracy.value('model', 'rmsse'):.3f} vs {accuracy.value(best, 'rmsse'):.3f}"
            )
        weekly = accuracy.shop_week.get("accuracy")
        if weekly is not None and weekly < rules.accuracy_floor:
            verdict.alerts.append("accuracy_floor")
            verdict.retrain = True
            verdict.reasons.append(
                f"shop-week accuracy {weekly:.1%} below the floor {rules.accuracy_floor:.0%}"
            )
        deviation = accuracy.last_7_days.get("deviation")
        if deviation is not None and deviation > rules.units_deviation:
            verdict.retrain = True
            verdict.reasons.append(
                f"units sold in the last 7 days ({accuracy.last_7_days['actual_units']:g}) are "
                f"{deviation:.0%} off the live forecast ({accuracy.last_7_days['forecast_units']:.1f}; "
                f"allowed {rules.units_deviation:.0%})"
            )
    if verdict.rollback:
        verdict.retrain = False  # the previous model answers now; the nightly run retrains
    return verdict


# --- the check, with its ports --------------------------------------------------------------------


@dataclass
class CheckResult:
    """What one check found and did (also the ``drift_reports`` row, ``row()``)."""

    check_id: str
    model: str
    checked_at: datetime
    live_version: str | None = None
    previous_version: str | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    report: drift.DriftReport | None = None
    reference_scope: dict[str, Any] = field(default_factory=dict)
    accuracy: acc.Accuracy | None = None
    verdict: Verdict = field(default_factory=Verdict)
    status: str = "checked"  # checked | no_live_model
    rollback_key: str | None = None
    rollback_requested: bool = False
    training_key: str | None = None
    training_requested: bool = False
    notification: str = "none"  # none | delivered | failed: ... | disabled
    report_uri: str | None = None
    notes: list[str] = field(default_factory=list)
    duration_seconds: float = 0.0

    @property
    def current_rows(self) -> int:
        if self.report is None or not self.report.features:
            return 0
        return max(entry.current_rows for entry in self.report.features.values())

    def row(self) -> dict[str, Any]:
        report = self.report
        return {
            "check_id": self.check_id,
            "model": self.model,
            "live_version": self.live_version,
            "previous_version": self.previous_version,
            "checked_at": self.checked_at,
            "status": self.status,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "current_rows": self.current_rows,
            "reference_rows": int(self.reference_scope.get("rows", 0)),
            "reference_scope": json.dumps(self.reference_scope),
            "features_judged": sum(
                1 for e in (report.features.values() if report else ()) if e.status != "insufficient"
            ),
            "drifted_features": list(report.drifted) if report else [],
            "drifted_importance": self.verdict.drifted_importance,
            "severity": self.verdict.severity,
            "drift": json.dumps(report.to_json() if report else None, allow_nan=False),
            "accuracy": json.dumps(self.accuracy.to_json() if self.accuracy else None, allow_nan=False),
            "shop_week_accuracy": (self.accuracy.shop_week.get("accuracy") if self.accuracy else None),
            "alerts": list(self.verdict.alerts),
            "reasons": list(self.verdict.reasons) + list(self.notes),
            "rollback_requested": self.rollback_requested,
            "rollback_key": self.rollback_key,
            "training_requested": self.training_requested,
            "training_key": self.training_key,
            "notification": self.notification,
            "report_uri": self.report_uri,
            "duration_seconds": round(self.duration_seconds, 3),
        }

    def evidence(self) -> dict[str, Any]:
        """What a rollback or training request carries: scores, windows, sample sizes."""
        report = self.report
        drifted = {name: report.features[name].to_json() for name in report.drifted} if report else {}
        return {
            "check_id": self.check_id,
            "live_version": self.live_version,
            "window": {
                "start": self.window_start.isoformat() if self.window_start else None,
                "end": self.window_end.isoformat() if self.window_end else None,
            },
            "current_rows": self.current_rows,
            "reference": self.reference_scope,
            "drifted": drifted,
            "drifted_importance": self.verdict.drifted_importance,
            "accuracy": self.accuracy.to_json() if self.accuracy else None,
            "error_ratio": self.verdict.error_ratio,
            "report_uri": self.report_uri,
        }


@dataclass
class DriftMonitor:
    """``check(model)`` over the ports; ``drift_monitor`` builds it from ``bootstrap``."""

    settings: Settings
    warehouse: Warehouse
    registry: ModelRegistry
    pointers: LivePointerStore
    publisher: EventPublisher
    notifier: AlertNotifier
    reports: Any  # ObjectStore: put(key, data, content_type), uri(key)
    metrics: Any = None  # shared.monitoring.metrics.MonitoringMetrics, or None
    read_daily: Callable[[date, date], pd.DataFrame] | None = None  # net units per variant and day
    clock: Callable[[], datetime] = utc_now
    logger: StructuredLogger = field(default_factory=lambda: get_logger("drift_monitor"))

    def check(self, model: str | None = None, *, check_id: str | None = None) -> CheckResult:
        started = time.perf_counter()
        model = model or self.settings.model_name
        now = self.clock()
        result = CheckResult(check_id or str(uuid.uuid4()), model, now)
        pointer = self.pointers.get(model)
        result.live_version, result.previous_version = pointer.live_version, pointer.previous_version
        if not pointer.is_live or pointer.live_version is None:
            result.status = "no_live_model"
            result.notes.append("no version is live: nothing to check")
            return self._finish(result, started)
        version = self.registry.get(model, pointer.live_version)
        if version is None:
            raise TransientError(f"the live version {model} {pointer.live_version} is not in the registry")
        card = version.card
        result.window_end = now
        result.window_start = now - timedelta(hours=self.settings.drift_window_hours)
        result.report, result.reference_scope = self._drift(card, result)
        result.accuracy = self._accuracy(result)
        result.verdict = decide(result.report, result.accuracy, card, Rules.from_settings(self.settings))
        result.report_uri = self._write_report(result)
        self._act(result)
        return self._finish(result, started)

    # -- evidence

    def _drift(
        self, card: Mapping[str, Any], result: CheckResult
    ) -> tuple[drift.DriftReport | None, dict[str, Any]]:
        names = [n for n in card.get("features", []) if n not in CLOCK_FEATURES]
        rows = self.warehouse.query(
            "SELECT variant_id, first_day, features FROM predictions WHERE model_version = @version "
            "AND fallback = FALSE AND features IS NOT NULL "
            "AND request_time >= @start AND request_time < @end",
            {"version": result.live_version, "start": result.window_start, "end": result.window_end},
        )
        current, current_variants = serving_columns(rows, names)
        try:
            columns, reference_variants = card_reference(card)
        except ValueError as exc:
            result.notes.append(str(exc))
            return None, {"kind": "none", "rows": 0, "why": str(exc)}
        reference = served_reference(
            {n: columns[n] for n in names if n in columns},
            reference_variants,
            current_variants,
            self.settings.drift_min_reference_rows,
        )
        judged = {n: current[n] for n in names if n in reference.columns}
        edges = {
            name: entry["edges"]
            for name, entry in ((card.get("psi_bins") or {}).get("features") or {}).items()
            if name in judged and reference.scope.get("kind") == "training population"
        }
        report = drift.compare(
            reference.columns,
            judged,
            drift.DriftThresholds.from_settings(self.settings),
            categorical=[n for n in CATEGORICAL_FEATURES if n in judged],
            edges=edges,
        )
        return report, reference.scope

    def _accuracy(self, result: CheckResult) -> acc.Accuracy | None:
        """Scored once per live version and day: realised sales change once a day (the last
        complete day), and the realised units come from the feature SQL over ~12 weeks, too
        costly to run hourly in BigQuery for the same answer. Later checks that day reuse it."""
        midnight = datetime.combine(result.checked_at.date(), datetime.min.time(), UTC)
        earlier = self.warehouse.query(
            "SELECT checked_at, accuracy FROM drift_reports WHERE model = @model AND live_version = @version "
            "AND status = 'checked' AND checked_at >= @midnight AND accuracy IS NOT NULL "
            "AND accuracy <> 'null' ORDER BY checked_at DESC",
            {"model": result.model, "version": result.live_version, "midnight": midnight},
        )
        if earlier:
            result.notes.append(f"accuracy as scored at {earlier[0]['checked_at']} (sales change once a day)")
            return acc.Accuracy.from_json(json.loads(earlier[0]["accuracy"]))
        last_day = result.checked_at.date() - timedelta(days=1)
        first_day = last_day - timedelta(days=self.settings.accuracy_window_days - 1)
        rows = self.warehouse.query(
            "SELECT shop_domain, variant_id, first_day, units, request_time FROM predictions "
            "WHERE model_version = @version AND fallback = FALSE "
            "AND first_day >= @earliest AND first_day <= @last_day",
            {
                "version": result.live_version,
                "earliest": first_day - timedelta(days=27),
                "last_day": last_day,
            },
        )
        scored = acc.forecast_rows(pd.DataFrame(rows), first_day, last_day)
        if scored.empty:
            return acc.score_window(scored, acc.History.from_frame(pd.DataFrame()), first_day, last_day)
        history_start = first_day - timedelta(days=28 + 28)
        daily = self._daily(history_start, last_day)
        return acc.score_window(scored, acc.History.from_frame(daily), first_day, last_day)

    def _daily(self, start: date, end: date) -> pd.DataFrame:
        if self.read_daily is not None:
            return self.read_daily(start, end)
        from shared.features.build import build_features

        frame = build_features(self.warehouse, start, end)
        return frame[["variant_id", "date", "units", "price"]]

    # -- actions

    def _write_report(self, result: CheckResult) -> str | None:
        if result.report is None:
            return None
        from shared.monitoring import report as html_report

        stamp = result.checked_at.strftime("%Y%m%dT%H%M%SZ")
        key = f"{result.model}/{stamp}-{result.check_id[:8]}"
        context = {
            "model": f"{result.model} {result.live_version}",
            "window": f"{result.window_start:%Y-%m-%d %H:%M} to {result.window_end:%Y-%m-%d %H:%M} UTC",
            "reference": json.dumps(result.reference_scope),
            "verdict": "; ".join(result.verdict.reasons) or "nothing to act on",
        }
        page = html_report.render(
            result.report, f"Drift check of {result.model} {result.live_version}", context
        )
        page = page.replace(
            "</body>", _accuracy_section(result.accuracy, self._history(result.model)) + "</body>"
        )
        self.reports.put(f"{key}/drift.html", page.encode(), "text/html; charset=utf-8")
        body = {**result.report.to_json(), "accuracy": result.accuracy.to_json() if result.accuracy else None}
        self.reports.put(f"{key}/drift.json", json.dumps(body, allow_nan=False).encode(), "application/json")
        return str(self.reports.uri(f"{key}/drift.html"))

    def _history(self, model: str, limit: int = 48) -> list[dict[str, Any]]:
        """Earlier checks' accuracy, newest last (the report's accuracy over time)."""
        rows = self.warehouse.query(
            "SELECT checked_at, live_version, shop_week_accuracy FROM drift_reports "
            "WHERE model = @model AND status = 'checked' ORDER BY checked_at DESC",
            {"model": model},
        )
        return list(reversed(rows[:limit]))

    def _already(self, action: str, key: str) -> bool:
        """A check already published the request with this key (``action``: rollback, training)."""
        sql = {
            "rollback": "SELECT COUNT(*) AS n FROM drift_reports "
            "WHERE rollback_key = @key AND rollback_requested",
            "training": "SELECT COUNT(*) AS n FROM drift_reports "
            "WHERE training_key = @key AND training_requested",
        }[action]
        found = self.warehouse.query(sql, {"key": key})
        return bool(found and int(found[0]["n"]) > 0)

    def _act(self, result: CheckResult) -> None:
        verdict = result.verdict
        model, version = result.model, result.live_version
        if verdict.rollback:
            key = f"drift_monitor:rollback:{model}:{version}"
            result.rollback_key = key
            if not result.previous_version:
                result.notes.append("a rollback is called for, but no previous version exists: alert only")
            elif self._already("rollback", key):
                result.notes.append(f"a rollback of {version} was already requested ({key}); not again")
            else:
                body = {
                    "model": model,
                    "reason": "; ".join(verdict.reasons),
                    "requested_by": "drift_monitor",
                    "idempotency_key": key,
                    "evidence": result.evidence(),
                }
                self._publish(ROLLBACK_TOPIC, body, {"model": model, "idempotency_key": key})
                result.rollback_requested = True
        if verdict.retrain:
            day = result.checked_at.date().isoformat()
            key = f"drift_monitor:retrain:{model}:{day}"
            result.training_key = key
            if self._already("training", key):
                result.notes.append(f"a retraining was already requested today ({key}); not again")
            else:
                body = {
                    "model": model,
                    "night": day,
                    "reason": "; ".join(verdict.reasons),
                    "requested_by": "drift_monitor",
                    "idempotency_key": key,
                    "evidence": result.evidence(),
                }
                self._publish(TRAINING_TOPIC, body, {"model": model, "idempotency_key": key})
                result.training_requested = True
        if verdict.alerts:
            if not getattr(self.notifier, "enabled", True):
                result.notification = "disabled"
            else:
                outcome = self.notifier.notify(_alert(result))
                result.notification = "delivered" if outcome.delivered else f"failed: {outcome.detail}"

    def _publish(self, topic: str, body: Mapping[str, Any], attributes: Mapping[str, str]) -> None:
        data = json.dumps(body, allow_nan=False, default=str).encode()
        try:
            self.publisher.publish(topic, data, {**attributes, "source": "drift_monitor"})
        except PublishFailed as exc:  # the check is retried by Pub/Sub; the key keeps it once
            raise TransientError(f"could not publish to {topic}: {exc}") from exc

    def _finish(self, result: CheckResult, started: float) -> CheckResult:
        result.duration_seconds = time.perf_counter() - started
        if self.metrics is not None:
            record_metrics(self.metrics, result)
        self.warehouse.insert_rows(TABLE, [result.row()], [result.check_id])
        self.logger.info(
            "drift check",
            labels={"model": result.model},
            check_id=result.check_id,
            live_version=result.live_version,
            status=result.status,
            drifted=list(result.report.drifted) if result.report else [],
            alerts=result.verdict.alerts,
            rollback_requested=result.rollback_requested,
            training_requested=result.training_requested,
            notification=result.notification,
            report_uri=result.report_uri,
            seconds=round(result.duration_seconds, 3),
        )
        return result


def _alert(result: CheckResult) -> Alert:
    verdict = result.verdict
    action = (
        "rollback requested"
        if result.rollback_requested
        else "retraining requested"
        if result.training_requested
        else "alert only"
    )
    fields = {
        "model": f"{result.model} {result.live_version}",
        "action": action,
        "alerts": ", ".join(verdict.alerts),
        "window rows": str(result.current_rows),
    }
    if result.report is not None and result.report.drifted:
        fields["drifted"] = ", ".join(result.report.drifted[:8])
    return Alert(
        title=f"shopml: {result.model} {result.live_version}: {', '.join(verdict.alerts)}",
        text="; ".join(verdict.reasons + result.notes),
        severity="critical" if verdict.rollback else "warning",
        fields=fields,
        link=result.report_uri or "",
    )


def record_metrics(metrics: Any, result: CheckResult) -> None:
    """The check's numbers on the monitoring registry (``shared.monitoring.metrics``)."""
    from shared.monitoring.metrics import MONITOR_ALERTS

    model = result.model
    metrics.check_timestamp.labels(model).set(result.checked_at.timestamp())
    for alert in MONITOR_ALERTS:
        metrics.alert_state.labels(model, alert).set(1.0 if alert in result.verdict.alerts else 0.0)
    if result.report is not None:
        metrics.sample_rows.labels(model, "current").set(result.current_rows)
        metrics.sample_rows.labels(model, "reference").set(int(result.reference_scope.get("rows", 0)))
        for name, entry in result.report.features.items():
            metrics.feature_drifted.labels(model, name).set(1.0 if entry.drifted else 0.0)
            values = {
                "ks_statistic": entry.ks_statistic,
                "ks_pvalue": entry.ks_pvalue,
                "psi": entry.psi,
                "mean_shift_sigma": entry.mean_shift_sigma,
                "chi2_pvalue": entry.chi2_pvalue,
                "linf": entry.linf,
            }
            for statistic, value in values.items():
                if value is not None and math.isfinite(value):
                    metrics.drift_score.labels(model, name, statistic).set(value)
    if result.accuracy is not None:
        metrics.sample_rows.labels(model, "scored").set(result.accuracy.rows)
        weekly = result.accuracy.shop_week.get("accuracy")
        if weekly is not None:
            metrics.accuracy.labels(model, "shop_week").set(weekly)
        wape = result.accuracy.value("model", "wape")
        if math.isfinite(wape):
            metrics.accuracy.labels(model, "variant_day").set(1.0 - wape)
    for metric, ratio in result.verdict.error_ratio.items():
        if ratio is not None:
            metrics.error_ratio.labels(model, metric).set(ratio)


def _accuracy_section(accuracy: acc.Accuracy | None, history: Sequence[Mapping[str, Any]]) -> str:
    """The report's accuracy part: this window's scores and the earlier checks' accuracy."""
    import html

    def number(value: Any) -> str:
        return (
            "–"
            if value is None or (isinstance(value, float) and not math.isfinite(value))
            else f"{value:.4g}"
        )

    if accuracy is None or accuracy.rows == 0:
        body = (
            "<p>No forecast of the live version could be scored yet (no complete day after its answers).</p>"
        )
    else:
        header = "<tr><th>forecaster</th><th>WAPE</th><th>RMSSE (weighted)</th><th>bias</th></tr>"
        rows = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{number(accuracy.value(name, 'wape'))}</td>"
            f"<td>{number(accuracy.value(name, 'rmsse'))}</td>"
            f"<td>{number(accuracy.value(name, 'bias'))}</td></tr>"
            for name in accuracy.forecasters
        )
        weekly = accuracy.shop_week.get("accuracy")
        body = (
            f"<p>{accuracy.rows} (variant, day) forecasts of {accuracy.variants} variants, "
            f"{accuracy.first_day} to {accuracy.last_day}, {accuracy.actual_units:g} units sold; "
            f"shop-week accuracy {number(weekly)}.</p><table>{header}{rows}</table>"
        )
    points = [
        (str(row["checked_at"])[:16], float(row["shop_week_accuracy"]))
        for row in history
        if row.get("shop_week_accuracy") is not None
    ]
    trend = (
        "<h3>Accuracy over time (shop-week, earlier checks)</h3>"
        "<table><tr><th>check</th><th>accuracy</th></tr>"
        + "".join(f"<tr><td>{html.escape(when)}</td><td>{number(value)}</td></tr>" for when, value in points)
        + "</table>"
        if points
        else "<p><small>No earlier check scored accuracy.</small></p>"
    )
    return f'<section id="accuracy"><h2>Accuracy</h2>{body}{trend}</section>'


# --- the request ----------------------------------------------------------------------------------


def check_request_from_message(data: bytes, attributes: Mapping[str, str], default_model: str) -> str:
    """The model a ``drift-checks`` message asks about: ``{"model": ...}`` in its data or the
    ``model`` attribute (they must agree), else ``default_model``. Scheduler's ``{}`` is fine."""
    from shared.errors import PermanentError
    from shared.registry import check_model_name

    body: Any = {}
    if data and data.strip():
        try:
            body = json.loads(data)
        except (UnicodeDecodeError, ValueError) as exc:
            raise PermanentError(f"drift check request is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise PermanentError("drift check request is not a JSON object")
    named = body.get("model")
    attribute = attributes.get("model")
    if named is not None and not isinstance(named, str):
        raise PermanentError("drift check request: model must be a string")
    if named and attribute and named != attribute:
        raise PermanentError(
            f"drift check request: model {named!r} in the data, {attribute!r} in the attributes"
        )
    return check_model_name(named or attribute or default_model)


# --- wiring ---------------------------------------------------------------------------------------

_METRICS: dict[str, Any] = {}


def process_metrics() -> Any:
    """This process's monitoring registry (one per process: gauges keep the latest check)."""
    if "metrics" not in _METRICS:
        import prometheus_client

        from shared.monitoring.metrics import monitoring_metrics

        _METRICS["metrics"] = monitoring_metrics(prometheus_client.CollectorRegistry())
    return _METRICS["metrics"]


def default_monitor(logger: StructuredLogger | None = None) -> DriftMonitor:
    """A ``DriftMonitor`` over the process's ports (``bootstrap``), reports in ``SHOPML_REPORTS``."""
    from shared import bootstrap
    from shared.adapters.object_stores import create_object_store
    from shared.adapters.slack import notifier_from_settings

    settings = bootstrap.settings()
    logger = logger or get_logger("drift_monitor", settings.log_level)
    return DriftMonitor(
        settings=settings,
        warehouse=bootstrap.warehouse(),
        registry=bootstrap.registry(),
        pointers=bootstrap.live_pointer(),
        publisher=bootstrap.publisher(),
        notifier=notifier_from_settings(settings, logger),
        reports=create_object_store(settings.reports_url, project=settings.project),
        metrics=process_metrics(),
        logger=logger,
    )


def export_metrics(monitor: DriftMonitor, model: str) -> str:
    """After a check: push the registry (OTLP, ``SHOPML_METRICS_EXPORT=otlp``: Cloud Monitoring,
    where the alert policies read it) or write it to ``<reports>/metrics/<model>.prom`` (a
    textfile a local Prometheus or node-exporter picks up). Never fails the check."""
    metrics = monitor.metrics
    if metrics is None:
        return "none"
    try:
        if monitor.settings.metrics_export == "otlp":
            from shared.serving import telemetry

            exporter = telemetry.exporter(monitor.settings, metrics.registry, monitor.logger)
            exporter.resource = {**exporter.resource, "service.name": "drift_monitor"}
            result = exporter.export()
            return "otlp" if result.ok else f"otlp failed: {result.detail}"
        monitor.reports.put(f"metrics/{model}.prom", metrics.text(), "text/plain; version=0.0.4")
        return str(monitor.reports.uri(f"metrics/{model}.prom"))
    except Exception as exc:  # metrics are never the check's failure
        monitor.logger.warning(
            "could not export the monitoring metrics", error=f"{type(exc).__name__}: {exc}"
        )
        return f"failed: {exc}"
