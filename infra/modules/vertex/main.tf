# Vertex AI training and model registry: the trainer's identity, the bucket that holds Vertex
# job outputs and the registered model files, the image repository of the trainer, and the
# grants that let trigger_training start CustomJobs as the trainer.
#
#   shopml-trainer   runs every CustomJob (python -m shared.training): reads the warehouse,
#                    writes model files to the bucket, registers Vertex model versions and
#                    announces them on model-events.
#
# Vertex AI has no IAM below the project for jobs and models, so roles/aiplatform.user is
# granted on the project (to the trainer and to trigger_training only); every other grant is
# on a resource.

locals {
  trainer_member = "serviceAccount:${google_service_account.trainer.email}"
}

resource "google_service_account" "trainer" {
  project      = var.project_id
  account_id   = var.trainer_account_id
  display_name = "shopml trainer (Vertex AI CustomJob)"
  description  = "Identity of the Vertex AI CustomJobs that train shopml's models: reads the warehouse, writes model files, registers model versions."
}

# --- staging and model artifacts --------------------------------------------------------------

resource "google_storage_bucket" "vertex" {
  #checkov:skip=CKV_GCP_62:Holds only Vertex job outputs and model files written by the trainer account; audit reads with Cloud Audit Logs (Data Access for storage) instead of legacy usage logs in a second bucket.
  project                     = var.project_id
  name                        = var.bucket_name
  location                    = upper(var.region)
  labels                      = var.labels
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  # A registered version's files must never change or vanish: versioning keeps any
  # overwritten or deleted generation for forensics and recovery.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_days
    }
    action {
      type = "Delete"
    }
  }

  # Job outputs (logs, checkpoints) are scratch; registered models live under registry/.
  lifecycle_rule {
    condition {
      age            = var.training_output_days
      matches_prefix = ["training/"]
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket_iam_member" "trainer_writes_artifacts" {
  bucket = google_storage_bucket.vertex.name
  role   = "roles/storage.objectAdmin"
  member = local.trainer_member
}

# --- the trainer image ----------------------------------------------------------------------

resource "google_artifact_registry_repository" "trainer" {
  #checkov:skip=CKV_GCP_84:The trainer image holds only shared/ code and pinned dependencies, no data or secrets; Google-managed encryption at rest until shopml runs a Cloud KMS key ring.
  project       = var.project_id
  location      = var.region
  repository_id = var.repository_id
  description   = "Container image of shopml's trainer (python -m shared.training), run by Vertex AI CustomJobs."
  format        = "DOCKER"
  labels        = var.labels
}

# --- what the trainer may do ------------------------------------------------------------------

resource "google_pubsub_topic_iam_member" "trainer_publishes_model_events" {
  project = var.project_id
  topic   = var.model_events_topic_id
  role    = "roles/pubsub.publisher"
  member  = local.trainer_member
}

# Project-level, unavoidable: Vertex AI has no resource below the project on which model upload
# (aiplatform.models.upload) and model version aliases can be granted.
resource "google_project_iam_member" "trainer_registers_models" {
  project = var.project_id
  role    = "roles/aiplatform.user"
  member  = local.trainer_member
}

# Project-level, unavoidable: a BigQuery query is a job, and bigquery.jobs.create exists only on
# the project. What the trainer may read is limited by the dataset grant (dataViewer, made by the
# bigquery module), not by this role.
resource "google_project_iam_member" "trainer_runs_queries" {
  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = local.trainer_member
}

# --- what trigger_training may do -------------------------------------------------------------

# Project-level, unavoidable: CustomJobs have no IAM of their own; creating and listing them is
# aiplatform.customJobs.create/list on the project.
resource "google_project_iam_member" "launcher_submits_jobs" {
  for_each = var.launchers

  project = var.project_id
  role    = "roles/aiplatform.user"
  member  = "serviceAccount:${each.value}"
}

# A CustomJob that runs as the trainer needs actAs on the trainer account: on that account only.
resource "google_service_account_iam_member" "launcher_acts_as_trainer" {
  for_each = var.launchers

  service_account_id = google_service_account.trainer.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${each.value}"
}
