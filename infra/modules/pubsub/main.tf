# Topics, push subscriptions and dead letters of shopml, all derived from shared/topology.json.
#
# Design decision: shopml owns its push subscriptions instead of letting Eventarc create them
# (a Cloud Functions event_trigger makes an Eventarc trigger, which makes a subscription that
# Terraform does not manage, with no dead-letter policy and a retry policy of its own). Owning
# them means the dead-letter policy, the retry backoffs and the ack deadline are the ones in
# topology.json, exactly what the local stack configures on the emulator, so a message is
# retried and dead-lettered the same way locally and in the cloud. The functions are deployed
# as plain HTTP services; a subscription pushes the standard Pub/Sub envelope
# ({"message": {...}, "subscription": ...}) to <function url>/projects/<p>/topics/<t>, and
# functions-framework turns it into a CloudEvent for the @functions_framework.cloud_event entry
# point (the decorator wins over the deployed signature type), taking the CloudEvent source
# from the projects/<p>/topics/<t> path.

locals {
  pubsub_service_agent = "serviceAccount:service-${var.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic" "this" {
  for_each = var.topics
  #checkov:skip=CKV_GCP_83:Encrypted at rest with Google-managed keys; shopml runs no Cloud KMS key ring or key-rotation process yet. Add kms_key_name here when it does.

  project                    = var.project_id
  name                       = each.key
  labels                     = var.labels
  message_retention_duration = each.value.retention
}

# The service agent republishes a message that exhausted max_delivery_attempts to the
# dead-letter topic: it needs publisher on that topic (and only that topic).
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  for_each = var.dead_letter_topics

  project = var.project_id
  topic   = google_pubsub_topic.this[each.key].name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

resource "google_pubsub_subscription" "push" {
  for_each = var.subscriptions

  project = var.project_id
  name    = each.key
  topic   = google_pubsub_topic.this[each.value.topic].id
  labels  = merge(var.labels, { function = replace(each.value.push_to, "_", "-") })

  ack_deadline_seconds       = each.value.ack_deadline_seconds
  message_retention_duration = "604800s"
  # Dead-lettering does not work with message ordering (seen on the emulator too): keep it off.
  enable_message_ordering = false

  # Never expire: the default deletes a subscription after 31 days without deliveries, and
  # rollback-requests may well stay quiet that long.
  expiration_policy {
    ttl = ""
  }

  push_config {
    push_endpoint = "${var.push_endpoints[each.value.push_to]}/projects/${var.project_id}/topics/${each.value.topic}"

    oidc_token {
      service_account_email = var.push_service_account_email
      # Cloud Run accepts its service URL as audience; the path above is not part of it.
      audience = var.push_endpoints[each.value.push_to]
    }
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.this[each.value.dead_letter_topic].id
    max_delivery_attempts = each.value.max_delivery_attempts
  }

  retry_policy {
    minimum_backoff = each.value.min_backoff
    maximum_backoff = each.value.max_backoff
  }

  lifecycle {
    precondition {
      condition     = contains(keys(var.push_endpoints), each.value.push_to)
      error_message = "Subscription ${each.key} pushes to ${each.value.push_to}, which is not deployed (no entry in push_endpoints)."
    }
  }

  depends_on = [google_pubsub_topic_iam_member.dead_letter_publisher]
}

# ...and subscriber on the subscription it takes the message from.
resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each = var.subscriptions

  project      = var.project_id
  subscription = google_pubsub_subscription.push[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

# A topic keeps messages only for subscriptions that exist when they are published (topic
# retention aside): this pull subscription holds every dead letter until someone inspects or
# replays it (gcloud pubsub subscriptions pull <topic>-hold). It has no dead-letter policy of
# its own on purpose: nothing consumes it automatically.
resource "google_pubsub_subscription" "dead_letter_hold" {
  for_each = var.dead_letter_topics

  project = var.project_id
  name    = "${each.key}-hold"
  topic   = google_pubsub_topic.this[each.key].id
  labels  = merge(var.labels, { role = "dead-letter-hold" })

  ack_deadline_seconds       = 60
  message_retention_duration = var.dead_letter_hold_retention
  enable_message_ordering    = false

  expiration_policy {
    ttl = ""
  }
}
