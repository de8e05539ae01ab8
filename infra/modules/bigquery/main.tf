# The warehouse: one dataset, one table per shared/schemas/tables/*.json (schema, partitioning,
# clustering and expiration straight from the file the code reads), dataset-level IAM, and the
# project-level jobUser of the accounts that run queries (the one grant BigQuery has no narrower
# place for).
#
# Views (shared/sql/views/*.sql) are not created here: they are written once in BigQuery's
# dialect with bare table names, and the BigQuery adapter qualifies and (re)creates them in
# ensure_schema(), which Cloud Build runs after apply and every function runs lazily on first
# use. Terraform would need its own copy of each view with qualified names, a second source of
# truth that could drift.

resource "google_bigquery_dataset" "this" {
  #checkov:skip=CKV_GCP_81:Google-managed encryption; shopml has no Cloud KMS key ring or rotation process yet (same decision as the Pub/Sub topics).
  project                    = var.project_id
  dataset_id                 = var.dataset_id
  location                   = var.location
  description                = "shopml: raw Shopify events, typed tables, latest-state views, quarantine, predictions."
  labels                     = var.labels
  delete_contents_on_destroy = !var.deletion_protection
}

resource "google_bigquery_table" "this" {
  #checkov:skip=CKV_GCP_80:Google-managed encryption; shopml has no Cloud KMS key ring or rotation process yet.
  for_each = var.tables

  project             = var.project_id
  dataset_id          = google_bigquery_dataset.this.dataset_id
  table_id            = each.key
  description         = each.value.description
  schema              = jsonencode(each.value.schema)
  clustering          = length(each.value.clustering) > 0 ? each.value.clustering : null
  deletion_protection = var.deletion_protection
  labels              = var.labels

  dynamic "time_partitioning" {
    for_each = each.value.time_partitioning == null ? [] : [each.value.time_partitioning]
    content {
      type          = time_partitioning.value.type
      field         = try(time_partitioning.value.field, null)
      expiration_ms = try(time_partitioning.value.expiration_days, null) == null ? null : time_partitioning.value.expiration_days * 86400000
    }
  }
}

# Grants on the dataset, never project-wide: a function that writes may create and change
# tables and rows in this dataset only.
resource "google_bigquery_dataset_iam_member" "writer" {
  for_each = var.writers

  project    = var.project_id
  dataset_id = google_bigquery_dataset.this.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = each.value
}

resource "google_bigquery_dataset_iam_member" "reader" {
  for_each = var.readers

  project    = var.project_id
  dataset_id = google_bigquery_dataset.this.dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = each.value
}

# Project-level, unavoidable: a query (and a DML statement, a load or an extract) is a BigQuery
# job, and bigquery.jobs.create exists only on the project; there is no dataset-level role that
# lets an account run a query. roles/bigquery.jobUser grants job creation and nothing else: which
# tables a job may read or write is still decided by the dataset grants above (writer / reader).
resource "google_project_iam_member" "job_user" {
  for_each = var.job_users

  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = each.value
}
