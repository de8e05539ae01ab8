# shopml's alerts in Cloud Monitoring: the conditions of infra/monitoring/prometheus/shopml-rules.yml
# as alert policies, one per alert, with the same names and thresholds (tests/infra/test_monitoring.py
# holds them together), notifying email and/or Slack channels. The definitions are in alerts.tf.
#
# Two kinds of condition, by where the metric lives in the cloud:
#
# * Cloud Monitoring's own metrics, read directly (they exist as soon as the resources do):
#   predict's p99 latency and 5xx share from Cloud Run's request metrics of the predict service
#   (run.googleapis.com/request_latencies and request_count: measured at Cloud Run's front end,
#   so they include queueing and cold starts, which predict's in-function histogram does not),
#   and the dead-letter backlog from Pub/Sub's num_undelivered_messages on the hold subscriptions.
# * shopml's own metrics (predict's fallback counters, the drift monitor's shopml_* gauges) as
#   PromQL conditions, with the rule's expression verbatim, evaluated by Cloud Monitoring's PromQL
#   engine (Managed Service for Prometheus), which also holds metrics sent over OTLP to the
#   Telemetry API. predict pushes its metrics there when SHOPML_METRICS_EXPORT=otlp
#   (shared/serving/telemetry.py); the drift monitor's gauges need the same push. Until a series
#   arrives its policy stays silent; disable_metric_validation lets the policy exist before that.

locals {
  notification_channels = sort(concat(
    tolist(var.notification_channel_ids),
    [for channel in google_monitoring_notification_channel.email : channel.id],
    [for channel in google_monitoring_notification_channel.slack : channel.id],
  ))
}

# --- notification channels -----------------------------------------------------------------------

resource "google_monitoring_notification_channel" "email" {
  for_each = var.email_addresses

  project      = var.project_id
  display_name = "shopml alerts: ${each.key}"
  type         = "email"
  labels       = { email_address = each.key }
  user_labels  = var.labels
}

# Cloud Monitoring posts to Slack as a Slack app whose OAuth token it needs (sensitive_labels).
resource "google_monitoring_notification_channel" "slack" {
  for_each = var.slack_channel_name == "" ? toset([]) : toset([var.slack_channel_name])

  project      = var.project_id
  display_name = "shopml alerts: Slack ${each.key}"
  type         = "slack"
  labels       = { channel_name = each.key }
  user_labels  = var.labels

  sensitive_labels {
    auth_token = var.slack_auth_token
  }

  lifecycle {
    precondition {
      condition     = var.slack_auth_token != null && var.slack_auth_token != ""
      error_message = "slack_channel_name is set but slack_auth_token is empty: pass the Slack app's token as TF_VAR_slack_auth_token, or leave slack_channel_name empty."
    }
  }
}

# --- alert policies ---------------------------------------------------------------------------------

resource "google_monitoring_alert_policy" "threshold" {
  for_each = local.threshold_alerts

  project               = var.project_id
  display_name          = each.key
  combiner              = "OR"
  severity              = each.value.severity
  notification_channels = local.notification_channels
  user_labels           = var.labels

  conditions {
    display_name = each.value.summary

    condition_threshold {
      filter             = each.value.filter
      denominator_filter = each.value.denominator_filter
      comparison         = "COMPARISON_GT"
      threshold_value    = each.value.threshold_value
      duration           = each.value.duration

      aggregations {
        alignment_period     = each.value.alignment_period
        per_series_aligner   = each.value.aligner
        cross_series_reducer = each.value.reducer
        group_by_fields      = each.value.reducer == null ? null : ["resource.label.service_name"]
      }

      dynamic "denominator_aggregations" {
        for_each = each.value.denominator_filter == null ? [] : [each.value]
        content {
          alignment_period     = denominator_aggregations.value.alignment_period
          per_series_aligner   = denominator_aggregations.value.aligner
          cross_series_reducer = denominator_aggregations.value.reducer
          group_by_fields      = ["resource.label.service_name"]
        }
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    content   = "${each.value.summary}. ${each.value.description} Prometheus rule: ${each.key} in infra/monitoring/prometheus/shopml-rules.yml."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_alert_policy" "promql" {
  for_each = local.promql_alerts

  project               = var.project_id
  display_name          = each.key
  combiner              = "OR"
  severity              = each.value.severity
  notification_channels = local.notification_channels
  user_labels           = var.labels

  conditions {
    display_name = each.value.summary

    condition_prometheus_query_language {
      query                     = each.value.query
      duration                  = each.value.duration
      evaluation_interval       = "60s"
      disable_metric_validation = true
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    content   = "${each.value.summary}. ${each.value.description} Prometheus rule: ${each.key} in infra/monitoring/prometheus/shopml-rules.yml."
    mime_type = "text/markdown"
  }
}
