# The nightly materialization: the online store (Redis) gets the day's features from the warehouse,
# or every predict item would be older than its view's TTL and fall back to the baseline.
#
#   shopml-materialize          Cloud Run Job, runs `python -m shared.features materialize` in the
#                               feature server image (same entrypoint, so the same Feast config:
#                               Redis over TLS with the AUTH secret, the GCS registry, BigQuery as
#                               the offline store); identity shopml-materialize.
#   shopml-nightly-materialize  Cloud Scheduler job that runs it (Cloud Run Admin API jobs.run) as
#                               shopml-materialize-trigger, whose only grant is run.invoker on it.
#
# Why a Cloud Run Job and not a step of the Vertex training job: the Vertex CustomJob cannot reach
# Memorystore's private IP without extra networking (PSC interface / peering), while a Cloud Run
# Job reaches it exactly like the feature server, by Direct VPC egress on the same subnetwork.
#
# What the job does: the entrypoint writes the cloud feature_store.yaml and runs the command with
# SHOPML_FEAST_REPO=<that repo dir>, so `python -m shared.features materialize` runs in cloud mode
# (shared/features/__main__.py): `apply` registers the definitions with the feature SQL as a
# BigQuery *query* source over the warehouse's views (the window: today back over the longest view
# TTL), then `materialize(START, END)` makes Feast run that query in BigQuery (one query job per
# view, results in the job's anonymous table) and write each variant's latest row to Redis.
# Nothing is written to the warehouse: no table, no view, no dataEditor grant.
#
# What the job may do (and nothing else): read and write Feast's registry (the registry bucket's
# objectAdmin + legacyBucketReader below), read the Redis AUTH secret, read the warehouse
# (dataViewer on the dataset and the project-level jobUser, both granted by the root through the
# bigquery module: the query reads views and the tables under them, all in that dataset, and its
# results are read back with tabledata.list, as the image has no BigQuery Storage client; adding
# google-cloud-bigquery-storage to the image would need roles/bigquery.readSessionUser too), and
# connect to Redis over the VPC.

locals {
  materializer_member = "serviceAccount:${google_service_account.materializer.email}"
  trigger_member      = "serviceAccount:${google_service_account.materialize_trigger.email}"
}

resource "google_service_account" "materializer" {
  project      = var.project_id
  account_id   = var.materializer_account_id
  display_name = "shopml nightly feature materialization"
  description  = "Identity of the shopml-materialize Cloud Run Job: reads the warehouse, writes the Feast registry and Redis."
}

resource "google_service_account" "materialize_trigger" {
  project      = var.project_id
  account_id   = var.materialize_trigger_account_id
  display_name = "shopml materialization trigger (Cloud Scheduler)"
  description  = "Identity in the OAuth token of the nightly Cloud Scheduler job; may only run the shopml-materialize job."
}

# The Feast registry's writer role: `apply` rewrites registry.db and materialization records its
# intervals there. objectAdmin on this bucket only, plus legacyBucketReader (Feast calls
# get_bucket() first).
resource "google_storage_bucket_iam_member" "materializer_writes_registry" {
  bucket = google_storage_bucket.registry.name
  role   = "roles/storage.objectAdmin"
  member = local.materializer_member
}

resource "google_storage_bucket_iam_member" "materializer_gets_registry_bucket" {
  bucket = google_storage_bucket.registry.name
  role   = "roles/storage.legacyBucketReader"
  member = local.materializer_member
}

resource "google_secret_manager_secret_iam_member" "materializer_reads_redis_auth" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.redis_auth.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = local.materializer_member
}

resource "google_cloud_run_v2_job" "materialize" {
  project     = var.project_id
  location    = var.region
  name        = var.materialize_job_name
  description = "shopml nightly materialization (python -m shared.features materialize): warehouse -> Feast offline table -> Redis. Run by Cloud Scheduler (shopml-nightly-materialize)."
  labels      = var.labels

  template {
    labels      = var.labels
    task_count  = 1
    parallelism = 1

    template {
      service_account = google_service_account.materializer.email
      timeout         = var.materialize_timeout
      # One retry of a failed task; a repeated run only rewrites the same days (idempotent).
      max_retries = 1

      # The same Direct VPC egress as the feature server: Redis's private IP through the subnet,
      # Google APIs (BigQuery, GCS, Secret Manager) on their default route.
      vpc_access {
        network_interfaces {
          network    = var.network
          subnetwork = var.subnetwork
        }
        egress = "PRIVATE_RANGES_ONLY"
      }

      containers {
        image = var.image
        # The image's entrypoint (infra/feature_server/entrypoint.py) writes feature_store.yaml
        # from the cloud template and execs these arguments.
        args = ["python", "-m", "shared.features", "materialize"]

        resources {
          limits = {
            cpu    = var.materialize_cpu
            memory = var.materialize_memory
          }
        }

        # shared/ is in the image under /app (the service does not put it on its path).
        # SHOPML_FEAST_REPO comes from the entrypoint (the dir it wrote the config to); the cloud
        # mode it selects reads neither SHOPML_HOME nor SHOPML_WAREHOUSE (the warehouse is named by
        # the Feast config's offline store), which stay to describe the job's settings.
        env {
          name  = "PYTHONPATH"
          value = "/app"
        }
        env {
          name  = "SHOPML_HOME"
          value = "/tmp/shopml"
        }
        env {
          name  = "SHOPML_WAREHOUSE"
          value = "bigquery://${var.project_id}/${var.bigquery_dataset}"
        }
        env {
          name  = "GOOGLE_CLOUD_PROJECT"
          value = var.project_id
        }
        env {
          name  = "SHOPML_BQ_DATASET"
          value = var.bigquery_dataset
        }
        env {
          name  = "SHOPML_BQ_LOCATION"
          value = var.bigquery_location
        }
        env {
          name  = "SHOPML_FEATURE_BUCKET"
          value = google_storage_bucket.registry.name
        }
        env {
          name  = "SHOPML_REDIS_HOST"
          value = google_redis_instance.online.host
        }
        env {
          name  = "SHOPML_REDIS_CA_CERTS"
          value = local.redis_ca_certs
        }
        env {
          name = "SHOPML_REDIS_AUTH"
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.redis_auth.secret_id
              version = google_secret_manager_secret_version.redis_auth.version
            }
          }
        }
      }
    }
  }

  depends_on = [
    google_secret_manager_secret_iam_member.materializer_reads_redis_auth,
    google_storage_bucket_iam_member.materializer_writes_registry,
    google_storage_bucket_iam_member.materializer_gets_registry_bucket,
  ]
}

# Running this job (run.jobs.run) is the trigger account's only permission, on this job only.
resource "google_cloud_run_v2_job_iam_member" "trigger_runs_materialize" {
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_job.materialize.name
  role     = "roles/run.invoker"
  member   = local.trigger_member
}

resource "google_cloud_scheduler_job" "materialize" {
  project     = var.project_id
  region      = var.region
  name        = var.materialize_schedule_name
  description = "shopml: run ${var.materialize_job_name} nightly, after the training request, so predict's online features are fresh."
  schedule    = var.materialize_schedule
  time_zone   = var.materialize_time_zone
  paused      = var.materialize_paused

  # jobs.run only starts an execution; a retried call after a lost answer starts a second one,
  # which rewrites the same days (harmless).
  retry_config {
    retry_count          = 3
    min_backoff_duration = "60s"
    max_backoff_duration = "600s"
  }

  http_target {
    http_method = "POST"
    uri         = "https://run.googleapis.com/v2/projects/${var.project_id}/locations/${var.region}/jobs/${google_cloud_run_v2_job.materialize.name}:run"

    # A Google API (*.googleapis.com) expects an OAuth access token, not an OIDC token.
    oauth_token {
      service_account_email = google_service_account.materialize_trigger.email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }

  depends_on = [google_cloud_run_v2_job_iam_member.trigger_runs_materialize]
}

# Deploying the job "as" shopml-materialize, and the scheduler job with the trigger's token,
# needs actAs on those two accounts: on them only.
resource "google_service_account_iam_member" "deployer_acts_as_materializer" {
  for_each = var.deployer_members

  service_account_id = google_service_account.materializer.name
  role               = "roles/iam.serviceAccountUser"
  member             = each.value
}

resource "google_service_account_iam_member" "deployer_acts_as_materialize_trigger" {
  for_each = var.deployer_members

  service_account_id = google_service_account.materialize_trigger.name
  role               = "roles/iam.serviceAccountUser"
  member             = each.value
}
