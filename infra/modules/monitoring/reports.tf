# Drift reports: drift_monitor writes one self-contained HTML page and its JSON per check
# (shared/monitoring/monitor.py) under drift-reports/<model>/<time>-<check>/ in this bucket; the
# drift_reports table row names the page. Report writers may create objects, nothing else: each
# check writes new names, never overwrites, lists or deletes (roles/storage.objectCreator).

resource "google_storage_bucket" "reports" {
  #checkov:skip=CKV_GCP_62:Holds generated drift reports (aggregate statistics, no personal data); audit reads with Cloud Audit Logs (Data Access for storage) instead of legacy usage logs in a second bucket.
  #checkov:skip=CKV_GCP_78:Objects are written once under new names and expire by the lifecycle rule; versioning would keep nothing worth keeping.
  project                     = var.project_id
  name                        = var.reports_bucket_name
  location                    = upper(var.region)
  labels                      = var.labels
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  lifecycle_rule {
    condition {
      age = var.report_retention_days
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket_iam_member" "report_writers" {
  for_each = var.report_writers

  bucket = google_storage_bucket.reports.name
  role   = "roles/storage.objectCreator"
  member = each.value
}
