# Store syncing (Step 6, Shopify side): the bucket of the sync state that reconcile keeps
# (watermarks, uninstalled shops, backfill progress: shared/storesync/state.py), and the
# optional grant that lets Shopify publish webhooks to shopify-events itself (Pub/Sub delivery,
# `shopml connect --pubsub`). The reconcile function, its push subscription and its Scheduler
# job come from the root (topology.json, module.functions, module.scheduler); the per-shop
# access-token secrets from module.secrets.

resource "google_storage_bucket" "sync_state" {
  #checkov:skip=CKV_GCP_62:Holds a few small JSON documents (watermarks, shop marks) written by one function; audit with Cloud Audit Logs (Data Access) instead of legacy usage logs in a second bucket.
  project                     = var.project_id
  name                        = var.bucket_name
  location                    = upper(var.region)
  labels                      = var.labels
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  # Each document is replaced whole on every pass; earlier generations help a post-mortem for a
  # while, then go.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
}

# reconcile reads and replaces the documents (objects get, create, delete on replace, list).
resource "google_storage_bucket_iam_member" "state_writers" {
  for_each = var.state_writers

  bucket = google_storage_bucket.sync_state.name
  role   = "roles/storage.objectUser"
  member = each.value
}

# Shopify's Pub/Sub delivery: its service account may publish to shopify-events, and to no
# other topic. Off unless shopify_pubsub_delivery is set.
resource "google_pubsub_topic_iam_member" "shopify_delivery" {
  for_each = var.shopify_pubsub_delivery ? toset([var.shopify_delivery_service_account]) : toset([])

  project = var.project_id
  topic   = var.delivery_topic_id
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${each.value}"
}

# One Secret Manager secret per connected shop for its Admin API access token, named as the code
# finds it (SHOPML_SHOPIFY_TOKEN_SECRET = "shopify-token-{shop}", dots as hyphens). Terraform
# creates the secret and the reader grant; the token is added with
# `gcloud secrets versions add shopify-token-<shop> --data-file=-`, so it never enters a plan.
locals {
  token_secrets = { for shop in var.shops : "shopify-token-${replace(shop, ".", "-")}" => shop }
  token_grants = {
    for grant in flatten([
      for id in keys(local.token_secrets) : [
        for name, member in var.token_readers : { key = "${id}/${name}", secret = id, member = member }
      ]
    ]) : grant.key => grant
  }
}

resource "google_secret_manager_secret" "shop_token" {
  for_each = local.token_secrets

  project   = var.project_id
  secret_id = each.key
  labels    = var.labels
  annotations = {
    description = "Admin API access token of ${each.value} (SHOPML_SHOPIFY_TOKEN_SECRET)."
  }

  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_iam_member" "token_reader" {
  for_each = local.token_grants

  project   = var.project_id
  secret_id = google_secret_manager_secret.shop_token[each.value.secret].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = each.value.member
}
