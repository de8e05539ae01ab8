"""The Prometheus metrics of monitoring, by name: what ``drift_monitor`` exports and the alert
rules (``infra/monitoring/prometheus/shopml-rules.yml``) read.

predict's own metrics live in ``shared.serving.predict_app.Metrics`` (requests by status, the
latency histogram, fallback items by reason, items, the live model info, the pointer age). This
module declares the rest, on a ``CollectorRegistry`` the caller gives, so a check, a test or the
local stack each keep their own registry:

* ``shopml_drift_score{model, feature, statistic}``: one drift statistic of one feature of the
  latest check. ``statistic`` is one of ``DRIFT_STATISTICS`` (numeric features: KS statistic and
  p-value, PSI, mean shift in reference standard deviations; categorical: chi-square p-value and
  L-infinity distance).
* ``shopml_drift_feature_drifted{model, feature}``: 1 when the check's verdict for the feature
  is "drifted" at the thresholds in settings, else 0. The alert rules read the verdict, not the
  raw scores, so the thresholds live in one place (settings) and the rules cannot disagree.
* ``shopml_model_accuracy{model, level}``: 1 − WAPE of the live model on the scored window, at
  ``level`` ``shop_week`` (the one the accuracy floor applies to) or ``variant_day``.
* ``shopml_model_error_ratio{model, metric}``: the live model's error on the window divided by
  its card's holdout error (``metric`` ``wape``, ``rmsse``): 1.03 is "3% worse than at training".
* ``shopml_monitor_alert_state{model, alert}``: 1 while the monitor's own verdict ``alert``
  (one of ``MONITOR_ALERTS``) holds, else 0.
* ``shopml_drift_check_timestamp_seconds{model}``: Unix time of the latest completed check (an
  alert fires when checks stop).
* ``shopml_drift_sample_rows{model, window}``: rows compared (``reference``, ``current``,
  ``scored``): a quiet hour shows here instead of as a verdict.
* ``shopml_dead_letter_backlog_messages{subscription}``: messages waiting on a dead-letter hold
  subscription (``<dead-letter topic>-hold``). In the cloud this is Pub/Sub's
  ``pubsub.googleapis.com/subscription/num_undelivered_messages`` on those subscriptions (the
  Cloud Monitoring policy reads that metric directly); locally the Pub/Sub emulator exports no
  metrics, so whoever watches the local stack sets this gauge from the hold subscriptions.
"""

from __future__ import annotations

from dataclasses import dataclass

import prometheus_client

DRIFT_STATISTICS: tuple[str, ...] = (
    "ks_statistic",
    "ks_pvalue",
    "psi",
    "mean_shift_sigma",
    "chi2_pvalue",
    "linf",
)
ACCURACY_LEVELS: tuple[str, ...] = ("shop_week", "variant_day")
ERROR_METRICS: tuple[str, ...] = ("wape", "rmsse")
MONITOR_ALERTS: tuple[str, ...] = (
    "drift",  # some feature drifted (moderate or severe)
    "severe_drift",  # severe drift on an important feature: a rollback was asked for
    "accuracy_drop",  # live error more than the allowed share above the card's holdout error
    "accuracy_floor",  # shop-week accuracy below the floor
    "worse_than_baseline",  # live model worse than the best baseline on the same rows
)
SAMPLE_WINDOWS: tuple[str, ...] = ("reference", "current", "scored")


@dataclass(frozen=True)
class MonitoringMetrics:
    """The monitoring metrics, registered on one registry."""

    registry: prometheus_client.CollectorRegistry
    drift_score: prometheus_client.Gauge
    feature_drifted: prometheus_client.Gauge
    accuracy: prometheus_client.Gauge
    error_ratio: prometheus_client.Gauge
    alert_state: prometheus_client.Gauge
    check_timestamp: prometheus_client.Gauge
    sample_rows: prometheus_client.Gauge
    dead_letter_backlog: prometheus_client.Gauge

    def text(self) -> bytes:
        """The registry in Prometheus' text format (a scrape, or a textfile collector's file)."""
        return bytes(prometheus_client.generate_latest(self.registry))


def monitoring_metrics(registry: prometheus_client.CollectorRegistry) -> MonitoringMetrics:
    """Declare every monitoring metric on ``registry`` (once per registry)."""

    def gauge(name: str, documentation: str, labels: list[str]) -> prometheus_client.Gauge:
        return prometheus_client.Gauge(name, documentation, labels, registry=registry)

    return MonitoringMetrics(
        registry=registry,
        drift_score=gauge(
            "shopml_drift_score",
            "drift statistic of one feature in the latest check (statistic: "
            + ", ".join(DRIFT_STATISTICS)
            + ")",
            ["model", "feature", "statistic"],
        ),
        feature_drifted=gauge(
            "shopml_drift_feature_drifted",
            "1 when the latest check found the feature drifted at the configured thresholds",
            ["model", "feature"],
        ),
        accuracy=gauge(
            "shopml_model_accuracy", "1 - WAPE of the live model on the scored window", ["model", "level"]
        ),
        error_ratio=gauge(
            "shopml_model_error_ratio",
            "live model error on the window / its card's holdout error",
            ["model", "metric"],
        ),
        alert_state=gauge(
            "shopml_monitor_alert_state",
            "1 while the drift monitor's verdict holds (alert: " + ", ".join(MONITOR_ALERTS) + ")",
            ["model", "alert"],
        ),
        check_timestamp=gauge(
            "shopml_drift_check_timestamp_seconds", "Unix time of the latest completed check", ["model"]
        ),
        sample_rows=gauge(
            "shopml_drift_sample_rows", "rows compared by the latest check, by window", ["model", "window"]
        ),
        dead_letter_backlog=gauge(
            "shopml_dead_letter_backlog_messages",
            "messages waiting on a dead-letter hold subscription",
            ["subscription"],
        ),
    )


def exposed_names(registry: prometheus_client.CollectorRegistry) -> frozenset[str]:
    """Every series name a scrape of ``registry`` can show, labelled children or not
    (``predict_requests`` → ``predict_requests_total``; a histogram's ``_bucket``/``_sum``/``_count``)."""
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
        "stateset": ("",),
        "enum": ("",),
    }
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return frozenset(names)
