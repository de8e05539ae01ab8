# Cloud Scheduler jobs that publish to shopml's Pub/Sub topics (nightly training now; drift
# checks and reconciliation use the same shape). A job only publishes: the consumer behind the
# topic's push subscription does the work, with the subscription's retries and dead letters.
#
# Cloud Scheduler publishes as its service agent, which may publish to topics of its own
# project; no grant is needed here.

resource "google_cloud_scheduler_job" "this" {
  for_each = var.jobs

  project     = var.project_id
  region      = var.region
  name        = each.key
  description = each.value.description
  schedule    = each.value.schedule
  time_zone   = each.value.time_zone
  paused      = each.value.paused

  # A publish that fails is retried; the consumers are idempotent (a night trains once).
  retry_config {
    retry_count          = 3
    min_backoff_duration = "30s"
    max_backoff_duration = "600s"
  }

  pubsub_target {
    topic_name = each.value.topic_id
    data       = base64encode(jsonencode(each.value.message))
    attributes = merge(each.value.attributes, { source = "scheduler", scheduler_job = each.key })
  }
}
