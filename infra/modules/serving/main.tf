# Serving and blue-green (docs/DESIGN.md, "Serving and blue-green"): the Firestore database that
# holds the live pointer of each model, and the grants of the three serving functions on what
# they touch outside their own topics and tables:
#
#   predict        reads the live pointer (Firestore) and the registered model files (GCS);
#   deploy_model   reads the model files and cards, changes the pointer in a transaction (CAS on
#   rollback       its generation field) and moves the registry aliases live / previous.
#
# predict also pushes its metrics to Cloud Monitoring (OTLP to the Telemetry API,
# shared/serving/telemetry.py): roles/monitoring.metricWriter.
#
# Their topics (predict publishes to `predictions`) and tables (model_deployments, predictions)
# are granted where those resources live: module.functions (publishes) and module.bigquery
# (topology.json "warehouse"). The predict keys secret is in module.secrets.

locals {
  database_name = google_firestore_database.pointers.name

  # registry/<model>/<version>/{model.onnx,card.json} in the Vertex bucket, nothing else of it
  # (job outputs under training/ stay the trainer's).
  registry_objects = "projects/_/buckets/${var.registry_bucket}/objects/${var.registry_prefix}/"
}

# --- the live pointer: Firestore in Native mode -------------------------------------------------

resource "google_firestore_database" "pointers" {
  project     = var.project_id
  name        = var.database_name
  location_id = var.location
  type        = "FIRESTORE_NATIVE"
  # The pointer changes only inside transactions (compare-and-swap on `generation`); optimistic
  # concurrency never holds a lock across a deploy's gates, and a lost race is retried by the
  # client (shared/adapters/firestore_pointer.py).
  concurrency_mode            = "OPTIMISTIC"
  app_engine_integration_mode = "DISABLED"
  # Who flipped what is in model_deployments; PITR lets an operator read the pointer as it was
  # at any minute of the last 7 days as well.
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = var.deletion_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  deletion_policy                   = var.deletion_protection ? "ABANDON" : "DELETE"
}

# Project-level, unavoidable: Firestore has no IAM on a database, collection or document; roles are
# granted on the project only (security rules, the per-document alternative, apply to client
# SDKs, not to service accounts using the server libraries). Readers (predict) get the read-only
# role: get and listen are all a pointer follower does.
resource "google_project_iam_member" "pointer_reader" {
  for_each = var.pointer_readers

  project = var.project_id
  role    = "roles/datastore.viewer"
  member  = each.value
}

# Project-level, unavoidable: Firestore has no IAM on a database, collection or document (see
# above). Writers (deploy_model, rollback) read and change the pointer document inside a
# transaction (beginTransaction, get, commit): roles/datastore.user.
resource "google_project_iam_member" "pointer_writer" {
  for_each = var.pointer_writers

  project = var.project_id
  role    = "roles/datastore.user"
  member  = each.value
}

# --- the registered model files ----------------------------------------------------------------

# Read-only, on the registry/ objects of the Vertex bucket only (an IAM condition on the object
# name; the bucket has uniform bucket-level access, which conditions require). Listing objects
# is checked against the bucket, not an object name, so the condition also admits list calls
# (resource.name then is the bucket): the versions' folders are found by listing registry/.
resource "google_storage_bucket_iam_member" "registry_reader" {
  for_each = var.registry_readers

  bucket = var.registry_bucket
  role   = "roles/storage.objectViewer"
  member = each.value

  condition {
    title       = "shopml-registry-objects-only"
    description = "Model files and cards under ${var.registry_prefix}/ only (plus listing the bucket)."
    expression  = "resource.name.startsWith(\"${local.registry_objects}\") || resource.type == \"storage.googleapis.com/Bucket\""
  }
}

# Project-level, unavoidable: Vertex AI Model Registry has no IAM below the project; moving a
# version alias (models.mergeVersionAliases) and reading versions need aiplatform permissions on
# the project. Only deploy_model and rollback move the live / previous aliases.
resource "google_project_iam_member" "alias_mover" {
  for_each = var.alias_movers

  project = var.project_id
  role    = "roles/aiplatform.user"
  member  = each.value
}

# --- predict's metrics ----------------------------------------------------------------------------

# Project-level, unavoidable: time series are written into a project (its metrics scope), there is
# no resource below it to grant on. predict pushes its own series (requests by status, latency,
# fallbacks, live model version) every 60 s to the Telemetry API (SHOPML_METRICS_EXPORT=otlp);
# roles/monitoring.metricWriter writes metrics and reads nothing.
resource "google_project_iam_member" "metric_writer" {
  for_each = var.metric_writers

  project = var.project_id
  role    = "roles/monitoring.metricWriter"
  member  = each.value
}
