# Secret Manager secrets of shopml. Today one: shopify-webhook-secrets, the value of
# SHOPIFY_WEBHOOK_SECRETS (comma-separated; several secrets are active at once while a Shopify
# app secret rotates). Terraform creates the secret and its single grant; the value is added
# with `gcloud secrets versions add` (infra/README.md), so by default no secret value ever
# enters Terraform's plan or state. The optional write-only path below keeps that promise too.

locals {
  # One grant per (secret, accessor), keyed "<secret>/<accessor name>".
  accessor_grants = {
    for grant in flatten([
      for id, secret in var.secrets : [
        for name, member in secret.accessors : { key = "${id}/${name}", secret = id, member = member }
      ]
    ]) : grant.key => grant
  }
}

resource "google_secret_manager_secret" "this" {
  for_each = var.secrets

  project   = var.project_id
  secret_id = each.key
  labels    = var.labels
  annotations = {
    description = each.value.description
  }

  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_iam_member" "accessor" {
  for_each = local.accessor_grants

  project   = var.project_id
  secret_id = google_secret_manager_secret.this[each.value.secret].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = each.value.member
}

# Optional: a version whose value Terraform sends but never stores (write-only argument,
# Terraform >= 1.11). Bump the number in secret_values_wo_version to write a new value.
resource "google_secret_manager_secret_version" "write_only" {
  for_each = var.secret_values_wo_version

  secret                 = google_secret_manager_secret.this[each.key].id
  secret_data_wo         = var.secret_values_wo[each.key]
  secret_data_wo_version = each.value
}
