# Privacy requests (functions/compliance, shared/privacy): where customers/data_request exports
# go, and what the compliance function may touch beyond the warehouse.
#
# * The export bucket: private (uniform access, public access prevention), objects deleted by a
#   lifecycle rule after var.export_retention_days. An export holds one customer's data in clear
#   so the merchant can answer the customer; customers/redact and shop/redact delete exports
#   early, the rule bounds the rest.
# * The compliance function's grants, on the resources only: object admin on this bucket (write
#   an export, list and delete a customer's or a shop's exports) and subscriber on each
#   dead-letter hold subscription (pull and acknowledge, i.e. drop, held messages about the
#   customer or the shop). Its warehouse access (dataEditor on the dataset, jobUser for the DML
#   jobs) is granted in the bigquery module from topology.json.

resource "google_storage_bucket" "exports" {
  #checkov:skip=CKV_GCP_62:Access is audited with Cloud Audit Logs (Data Access for storage) rather than legacy usage logs in a second bucket that would need its own retention and access story.
  #checkov:skip=CKV_GCP_78:Versioning would keep an export after redaction deleted it (a noncurrent version is still personal data); objects are written once and expire by the lifecycle rule.
  project                     = var.project_id
  name                        = var.bucket_name
  location                    = upper(var.region)
  labels                      = var.labels
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  lifecycle_rule {
    condition {
      age = var.export_retention_days
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket_iam_member" "exporters" {
  for_each = var.exporters

  bucket = google_storage_bucket.exports.name
  role   = "roles/storage.objectAdmin"
  member = each.value
}

# (subscription, member) pairs: each exporter may pull from every dead-letter hold subscription.
resource "google_pubsub_subscription_iam_member" "dead_letter_purgers" {
  for_each = {
    for pair in setproduct(keys(var.dead_letter_subscriptions), keys(var.exporters)) :
    "${pair[0]}/${pair[1]}" => { subscription = var.dead_letter_subscriptions[pair[0]], member = var.exporters[pair[1]] }
  }

  project      = var.project_id
  subscription = each.value.subscription
  role         = "roles/pubsub.subscriber"
  member       = each.value.member
}
