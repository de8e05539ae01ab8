# The alert definitions, keyed by alert name: the conditions of
# infra/monitoring/prometheus/shopml-rules.yml for Cloud Monitoring (main.tf turns each into an
# alert policy). Only variables here, no resources: tests/infra/test_monitoring.py evaluates this
# file with terraform and compares every definition with its rule.

locals {
  predict_revision = "resource.type = \"cloud_run_revision\" AND resource.label.service_name = \"${var.predict_service_name}\""
  dead_letter_list = join(", ", [for name in sort(tolist(var.dead_letter_subscriptions)) : "\"${name}\""])

  # Conditions on Cloud Monitoring metrics, keyed by alert name.
  threshold_alerts = merge(
    {
      ShopmlPredictLatencyP99 = {
        severity        = "WARNING"
        summary         = "predict p99 latency is above the budget"
        description     = "The storefront waits on predict while it renders a page. Look at the feature server's latency and predict's fallbacks first."
        filter          = "metric.type = \"run.googleapis.com/request_latencies\" AND ${local.predict_revision}"
        threshold_value = var.thresholds.predict_p99_seconds * 1000 # request_latencies is in ms
        duration        = "600s"
        # The rule's rate window ([5m]).
        alignment_period = "300s"
        aligner          = "ALIGN_PERCENTILE_99"
        reducer          = null
        # Ratio conditions only: the denominator's filter.
        denominator_filter = null
      }
      ShopmlPredictErrorRate = {
        severity           = "CRITICAL"
        summary            = "predict answers server errors"
        description        = "Share of predict's answers that are 5xx (4xx are callers' mistakes). predict answers 503 on unexpected failures; its logs carry the error type."
        filter             = "metric.type = \"run.googleapis.com/request_count\" AND ${local.predict_revision} AND metric.label.response_code_class = \"5xx\""
        threshold_value    = var.thresholds.predict_error_share
        duration           = "300s"
        alignment_period   = "300s"
        aligner            = "ALIGN_RATE"
        reducer            = "REDUCE_SUM"
        denominator_filter = "metric.type = \"run.googleapis.com/request_count\" AND ${local.predict_revision}"
      }
    },
    length(var.dead_letter_subscriptions) == 0 ? {} : {
      ShopmlDeadLetterBacklog = {
        severity           = "WARNING"
        summary            = "dead-lettered messages wait on a hold subscription"
        description        = "Any message on a dead-letter hold subscription needs a person: pull it with gcloud pubsub subscriptions pull <subscription> (infra/README.md, Alerts), fix the cause, replay."
        filter             = "metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type = \"pubsub_subscription\" AND resource.label.subscription_id = one_of(${local.dead_letter_list})"
        threshold_value    = var.thresholds.dead_letter_messages
        duration           = "300s"
        alignment_period   = "60s" # a gauge sampled every minute
        aligner            = "ALIGN_MAX"
        reducer            = null
        denominator_filter = null
      }
    },
  )

  # PromQL conditions over Managed Prometheus, keyed by alert name: the rules' expressions.
  promql_alerts = {
    ShopmlPredictFallbackShare = {
      severity    = "WARNING"
      summary     = "too many of predict's items are answered with a fallback"
      description = "predict_fallback_items_total by reason says why: no live model, unknown shop, stale features, no history or the feature server unavailable."
      query       = "sum(rate(predict_fallback_items_total[15m])) / sum(rate(predict_items_total[15m])) > ${var.thresholds.fallback_share}"
      duration    = "900s"
    }
    ShopmlFeatureDrift = {
      severity    = "WARNING"
      summary     = "serving inputs drifted from the training reference"
      description = "The latest drift check found a feature drifted at the thresholds in settings; shopml_drift_feature_drifted names the features and the check's drift report has the histograms, PSI and KS per feature."
      # The monitor's verdict (thresholds: settings), not a raw score.
      query    = "max by (model) (shopml_drift_feature_drifted) > 0"
      duration = "0s"
    }
    ShopmlAccuracyDrop = {
      severity    = "WARNING"
      summary     = "the live model's error is above its holdout error"
      description = "Live WAPE over the card's holdout WAPE on the scored window; the monitor asks for a retrain, and for a rollback when the model is worse than the best baseline."
      query       = "max by (model) (shopml_model_error_ratio{metric=\"wape\"}) > ${var.thresholds.accuracy_error_ratio}"
      duration    = "0s"
    }
    ShopmlAccuracyBelowFloor = {
      severity    = "CRITICAL"
      summary     = "shop-week accuracy is below the floor"
      description = "1 - WAPE at shop-week level, on predictions joined with realised sales."
      query       = "min by (model) (shopml_model_accuracy{level=\"shop_week\"}) < ${var.thresholds.accuracy_floor}"
      duration    = "0s"
    }
    ShopmlDriftCheckStale = {
      severity    = "WARNING"
      summary     = "no drift check completed lately"
      description = "drift_monitor runs hourly from Cloud Scheduler; look at its logs and the drift-checks subscription's dead letters."
      query       = "time() - max by (model) (shopml_drift_check_timestamp_seconds) > ${var.thresholds.drift_check_max_age_seconds}"
      duration    = "0s"
    }
  }
}
