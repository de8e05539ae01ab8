# The online side of shopml's feature store (DESIGN.md, Features): Feast's own feature server
# (`feast serve`) as a long-running Cloud Run service with at least one instance, Memorystore
# for Redis as its online store, and the GCS bucket that holds Feast's file registry.
#
#   shopml-feature-server   runs the service: reads the registry, reads and writes Redis.
#
# Serving never touches BigQuery: /get-online-features reads Redis, and shopml pushes with
# to="online" (shared/features/push.py). So the feature server has no BigQuery grant at all, and
# in particular no project-level roles/bigquery.jobUser. Materialization (BigQuery -> Redis) and
# `apply` (which writes the registry) are batch work: they run in a separate job with its own
# identity, materialize.tf (a Cloud Run Job from this image, with the same Direct VPC egress, since
# a Vertex AI CustomJob cannot reach Memorystore's private IP without extra networking, run nightly
# by Cloud Scheduler). That identity gets registry write access there, dataset read and jobUser
# through the root's bigquery module; var.registry_writers adds further writers.
#
# Callers: validate_load pushes, predict reads, over HTTP. Ingress is internal and invocation
# needs IAM (roles/run.invoker for var.invokers only), so a caller must (1) reach the service
# through the VPC (internal ingress) and (2) send an ID token whose audience is the service URL.
# (1) is the root's module.network: a Serverless VPC Access connector that the functions which get
# this service's URL use with ALL_TRAFFIC egress; (2) is shared/features/online.py's IdTokenAuth.

locals {
  server_member = "serviceAccount:${google_service_account.server.email}"
  port          = 8080
  # Public PEM(s) of the instance's server CA; the entrypoint writes them to a file that redis-py
  # verifies the TLS certificate against (more than one while Memorystore rotates its CA).
  redis_ca_certs = join("\n", [for ca in google_redis_instance.online.server_ca_certs : ca.cert])
}

resource "google_service_account" "server" {
  project      = var.project_id
  account_id   = var.service_account_id
  display_name = "shopml Feast feature server"
  description  = "Identity of the feature-server Cloud Run service: reads the Feast registry and the Redis AUTH secret; no BigQuery access."
}

# --- online store: Memorystore for Redis ----------------------------------------------------------

resource "google_redis_instance" "online" {
  project        = var.project_id
  region         = var.region
  name           = var.redis_name
  display_name   = "shopml Feast online store"
  tier           = var.redis_tier
  memory_size_gb = var.redis_memory_size_gb
  redis_version  = var.redis_version
  labels         = var.labels

  authorized_network = var.network
  connect_mode       = "DIRECT_PEERING"

  # AUTH and TLS. SERVER_AUTHENTICATION works with Feast's redis-py client: the connection string
  # of shared/features/feast_repo/feature_store.cloud.yaml says ssl=true on port 6378, and the
  # instance's CA (a public certificate, not a secret) reaches the container as an environment
  # variable that infra/feature_server/entrypoint.py writes to a file (ssl_ca_certs), so no
  # volume or second secret is needed.
  auth_enabled            = true
  transit_encryption_mode = "SERVER_AUTHENTICATION"

  # Pushes between two materializations live only in Redis: snapshot them, so a restart of the
  # instance does not send prices and stock back to last night's values.
  persistence_config {
    persistence_mode    = var.redis_rdb_snapshot_period == "" ? "DISABLED" : "RDB"
    rdb_snapshot_period = var.redis_rdb_snapshot_period == "" ? null : var.redis_rdb_snapshot_period
  }
}

# The AUTH string, for the container as SHOPML_REDIS_AUTH (Secret Manager, read by the server's
# account only). No secret value is stored by this configuration: the version's value is a
# write-only argument (Terraform >= 1.11), sent to Secret Manager and never written to plan or
# state. What stays in state is the instance's own `auth_string` attribute: the google provider
# reads it into state (marked sensitive) whenever auth_enabled is true, and no provider setting
# avoids that; infra/README.md ("Secrets and Terraform state") says how that is handled.
resource "google_secret_manager_secret" "redis_auth" {
  project   = var.project_id
  secret_id = var.redis_auth_secret_id
  labels    = var.labels
  annotations = {
    description = "SHOPML_REDIS_AUTH: AUTH string of the Memorystore instance ${var.redis_name} (the Feast online store)."
  }

  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_version" "redis_auth" {
  secret         = google_secret_manager_secret.redis_auth.id
  secret_data_wo = google_redis_instance.online.auth_string

  # Memorystore generates the AUTH string when the instance is created (and keeps it): a new
  # instance means a new string, so a new version (a new number, hence a new server revision).
  lifecycle {
    replace_triggered_by = [google_redis_instance.online.id]
  }
}

resource "google_secret_manager_secret_iam_member" "server_reads_redis_auth" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.redis_auth.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = local.server_member
}

# --- registry: Feast's file registry in GCS -------------------------------------------------------

# A bucket of its own rather than the Vertex bucket: the feature server may then read exactly
# the registry, not the model files, and the registry's lifecycle is its own.
resource "google_storage_bucket" "registry" {
  #checkov:skip=CKV_GCP_62:Holds only Feast's registry file (feature definitions, no data), written by the batch job and read by the feature server; audit reads with Cloud Audit Logs (Data Access for storage) instead of legacy usage logs in a second bucket.
  project                     = var.project_id
  name                        = var.bucket_name
  location                    = upper(var.region)
  labels                      = var.labels
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  # Every `apply` rewrites registry.db: keep earlier generations to roll a bad apply back.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.registry_noncurrent_days
    }
    action {
      type = "Delete"
    }
  }
}

# Feast's GCS registry store calls get_bucket() before it reads the object: storage.buckets.get
# is in legacyBucketReader, not in objectViewer. Both on this bucket only.
resource "google_storage_bucket_iam_member" "server_reads_registry" {
  bucket = google_storage_bucket.registry.name
  role   = "roles/storage.objectViewer"
  member = local.server_member
}

resource "google_storage_bucket_iam_member" "server_gets_registry_bucket" {
  bucket = google_storage_bucket.registry.name
  role   = "roles/storage.legacyBucketReader"
  member = local.server_member
}

resource "google_storage_bucket_iam_member" "writer_writes_registry" {
  for_each = var.registry_writers

  bucket = google_storage_bucket.registry.name
  role   = "roles/storage.objectAdmin"
  member = each.value
}

resource "google_storage_bucket_iam_member" "writer_gets_registry_bucket" {
  for_each = var.registry_writers

  bucket = google_storage_bucket.registry.name
  role   = "roles/storage.legacyBucketReader"
  member = each.value
}

# --- the feature server -----------------------------------------------------------------------------

resource "google_cloud_run_v2_service" "server" {
  project     = var.project_id
  location    = var.region
  name        = var.service_name
  description = "shopml Feast feature server (feast serve): /get-online-features for predict, /push for validate_load. Internal ingress, IAM-only invocation."
  labels      = var.labels

  # Internal: reachable from the project's VPC (and callers routed through it) only; on top of
  # that, every request needs an ID token of one of var.invokers (no allUsers grant).
  ingress = var.ingress

  template {
    service_account                  = google_service_account.server.email
    max_instance_request_concurrency = var.concurrency
    timeout                          = "30s"
    labels                           = var.labels

    # Always one warm instance: the image needs ~5 s to become ready (DESIGN.md).
    scaling {
      min_instance_count = var.min_instances
      max_instance_count = var.max_instances
    }

    # Direct VPC egress: Redis's private IP is reached through the subnet; Google APIs (GCS
    # registry, Secret Manager) keep their default route.
    vpc_access {
      network_interfaces {
        network    = var.network
        subnetwork = var.subnetwork
      }
      egress = "PRIVATE_RANGES_ONLY"
    }

    containers {
      image = var.image
      # The image's entrypoint (infra/feature_server/entrypoint.py) writes feature_store.yaml and
      # execs these arguments. --max-requests 0: otherwise gunicorn recycles the worker every
      # ~1,000 requests and stalls ~0.8 s (DESIGN.md).
      args = ["feast", "serve", "-h", "0.0.0.0", "-p", tostring(local.port), "--no-access-log", "--max-requests", "0"]

      ports {
        container_port = local.port
      }

      resources {
        limits = {
          cpu    = var.cpu
          memory = var.memory
        }
        # Request-independent CPU: the registry refresh thread runs between requests, and a
        # throttled min instance would answer the first request late.
        cpu_idle          = false
        startup_cpu_boost = true
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
      # Pinned to the version Terraform wrote: a new AUTH string makes a new revision.
      env {
        name = "SHOPML_REDIS_AUTH"
        value_source {
          secret_key_ref {
            secret  = google_secret_manager_secret.redis_auth.secret_id
            version = google_secret_manager_secret_version.redis_auth.version
          }
        }
      }

      startup_probe {
        http_get {
          path = "/health"
          port = local.port
        }
        initial_delay_seconds = 2
        period_seconds        = 2
        timeout_seconds       = 2
        failure_threshold     = 30
      }

      liveness_probe {
        http_get {
          path = "/health"
          port = local.port
        }
        period_seconds    = 30
        timeout_seconds   = 5
        failure_threshold = 3
      }
    }
  }

  depends_on = [
    google_secret_manager_secret_iam_member.server_reads_redis_auth,
    google_storage_bucket_iam_member.server_reads_registry,
    google_storage_bucket_iam_member.server_gets_registry_bucket,
  ]
}

# --- who may call it -----------------------------------------------------------------------------

# Only the listed service accounts (validate_load pushes, predict reads); never allUsers.
resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each = var.invokers

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.server.name
  role     = "roles/run.invoker"
  member   = each.value
}

# Deploying a revision "as" the feature server's account needs actAs on it: on this account only.
resource "google_service_account_iam_member" "deployer_acts_as_server" {
  for_each = var.deployer_members

  service_account_id = google_service_account.server.name
  role               = "roles/iam.serviceAccountUser"
  member             = each.value
}
