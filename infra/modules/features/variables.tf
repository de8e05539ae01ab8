variable "project_id" {
  type        = string
  description = "ID of the Google Cloud project of the feature server, its Redis instance and registry bucket."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID: 6-30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "region" {
  type        = string
  description = "Region of the Cloud Run service, the Redis instance and the registry bucket (e.g. europe-west1)."

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a Google Cloud region such as europe-west1 or us-central1."
  }
}

variable "network" {
  type        = string
  description = "VPC network (projects/<p>/global/networks/<name>) that Redis is peered with and the feature server egresses into."

  validation {
    condition     = can(regex("^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/global/networks/[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.network))
    error_message = "network must look like projects/<project>/global/networks/<name>."
  }
}

variable "subnetwork" {
  type        = string
  description = "Subnetwork (name, or projects/<p>/regions/<region>/subnetworks/<name>) in var.region that the feature server's Direct VPC egress uses; it needs free addresses for up to 2 x max_instances."

  validation {
    condition     = can(regex("^([a-z]([-a-z0-9]{0,61}[a-z0-9])?|projects/[^/]+/regions/[^/]+/subnetworks/[a-z]([-a-z0-9]{0,61}[a-z0-9])?)$", var.subnetwork))
    error_message = "subnetwork must be a subnetwork name or projects/<p>/regions/<region>/subnetworks/<name>."
  }
}

variable "image" {
  type        = string
  description = "Feature server image (infra/feature_server/Dockerfile) with a tag or digest; Cloud Build's feature-server-image step passes <repository>/feature-server:<commit>."

  validation {
    condition     = can(regex("^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+(:[A-Za-z0-9._-]{1,128}|@sha256:[a-f0-9]{64})$", var.image))
    error_message = "image must be an image reference with a tag or digest, e.g. europe-west1-docker.pkg.dev/p/shopml-trainer/feature-server:abc123."
  }
}

variable "service_name" {
  type        = string
  description = "Name of the Cloud Run service."
  default     = "feature-server"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$", var.service_name))
    error_message = "service_name must be 1-49 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "service_account_id" {
  type        = string
  description = "Account ID (the part before @) of the feature server's service account."
  default     = "shopml-feature-server"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.service_account_id))
    error_message = "service_account_id must be 6-30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "ingress" {
  type        = string
  description = "Cloud Run ingress of the feature server. INGRESS_TRAFFIC_INTERNAL_ONLY (default): callers must route through the VPC. Never ALL without a reason: invocation needs IAM either way."
  default     = "INGRESS_TRAFFIC_INTERNAL_ONLY"

  validation {
    condition     = contains(["INGRESS_TRAFFIC_INTERNAL_ONLY", "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"], var.ingress)
    error_message = "ingress must be INGRESS_TRAFFIC_INTERNAL_ONLY or INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER (the feature server is never exposed directly)."
  }
}

variable "min_instances" {
  type        = number
  description = "Instances kept running (docs/DESIGN.md: at least one; a cold start takes ~5 s, longer than any caller's timeout)."
  default     = 1

  validation {
    condition     = var.min_instances >= 1 && floor(var.min_instances) == var.min_instances
    error_message = "min_instances must be a whole number >= 1: the feature server is a long-running service."
  }
}

variable "max_instances" {
  type        = number
  description = "Upper bound of instances (and of Direct VPC egress addresses used: about 2 per instance)."
  default     = 4

  validation {
    condition     = var.max_instances >= 1 && var.max_instances <= 100 && floor(var.max_instances) == var.max_instances
    error_message = "max_instances must be a whole number between 1 and 100."
  }
}

variable "concurrency" {
  type        = number
  description = "Requests one instance serves at once (one gunicorn/uvicorn worker, async)."
  default     = 40

  validation {
    condition     = var.concurrency >= 1 && var.concurrency <= 1000
    error_message = "concurrency must be between 1 and 1000."
  }
}

variable "cpu" {
  type        = string
  description = "CPU limit of an instance."
  default     = "1"

  validation {
    condition     = contains(["1", "2", "4"], var.cpu)
    error_message = "cpu must be 1, 2 or 4 (always-allocated CPU needs at least 1)."
  }
}

variable "memory" {
  type        = string
  description = "Memory limit of an instance (the server uses ~390 MB RSS, docs/DESIGN.md)."
  default     = "1Gi"

  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi)$", var.memory))
    error_message = "memory must be written like \"512Mi\" or \"1Gi\"."
  }
}

variable "invokers" {
  type        = map(string)
  description = "The only IAM members granted roles/run.invoker on the feature server, keyed by a static name (validate_load, predict, ...). Service accounts only."
  default     = {}

  validation {
    condition     = alltrue([for m in values(var.invokers) : can(regex("^serviceAccount:[^@]+@[^@]+$", m))])
    error_message = "invokers must be service accounts (serviceAccount:<email>); never allUsers, allAuthenticatedUsers, users or groups."
  }
}

variable "deployer_members" {
  type        = set(string)
  description = "IAM members that run terraform apply; they get roles/iam.serviceAccountUser on the feature server's account only."
  default     = []

  validation {
    condition     = alltrue([for m in var.deployer_members : can(regex("^(serviceAccount|user|group):[^@]+@[^@]+$", m))])
    error_message = "deployer_members must be IAM members such as serviceAccount:name@project.iam.gserviceaccount.com."
  }
}

variable "bucket_name" {
  type        = string
  description = "Name of the bucket of Feast's registry (gs://<this>/feast/registry.db, SHOPML_FEATURE_BUCKET)."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_.-]{1,61}[a-z0-9]$", var.bucket_name)) && !can(regex("google|^goog", var.bucket_name))
    error_message = "bucket_name must be a valid bucket name (3-63 lowercase characters) and must not contain \"google\"."
  }
}

variable "registry_noncurrent_days" {
  type        = number
  description = "Days an overwritten registry generation is kept (to roll a bad apply back)."
  default     = 30

  validation {
    condition     = var.registry_noncurrent_days >= 1
    error_message = "registry_noncurrent_days must be at least 1."
  }
}

variable "registry_writers" {
  type        = map(string)
  description = "IAM members of the batch job(s) that run apply and materialize, keyed by a static name: objectAdmin (and legacyBucketReader) on the registry bucket. The nightly materialization job (materialize.tf) is a writer already; list further ones here."
  default     = {}

  validation {
    condition     = alltrue([for m in values(var.registry_writers) : can(regex("^serviceAccount:[^@]+@[^@]+$", m))])
    error_message = "registry_writers must be service accounts (serviceAccount:<email>)."
  }
}

variable "bigquery_dataset" {
  type        = string
  description = "Dataset of the offline store (SHOPML_BQ_DATASET in feature_store.cloud.yaml). The server gets no access to it: serving reads Redis only."

  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_]{0,1023}$", var.bigquery_dataset))
    error_message = "bigquery_dataset must be a BigQuery dataset ID."
  }
}

variable "bigquery_location" {
  type        = string
  description = "BigQuery location of that dataset (SHOPML_BQ_LOCATION)."
}

variable "redis_name" {
  type        = string
  description = "ID of the Memorystore for Redis instance."
  default     = "shopml-features"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,38}[a-z0-9]$", var.redis_name))
    error_message = "redis_name must be 2-40 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "redis_tier" {
  type        = string
  description = "STANDARD_HA (default: a replica in another zone, automatic failover) or BASIC (one node; for throw-away environments: a failure loses the online store until the next materialization)."
  default     = "STANDARD_HA"

  validation {
    condition     = contains(["BASIC", "STANDARD_HA"], var.redis_tier)
    error_message = "redis_tier must be BASIC or STANDARD_HA."
  }
}

variable "redis_memory_size_gb" {
  type        = number
  description = "Redis capacity in GB (one key per variant and view, key expiry after 3 days)."
  default     = 1

  validation {
    condition     = var.redis_memory_size_gb >= 1 && var.redis_memory_size_gb <= 300 && floor(var.redis_memory_size_gb) == var.redis_memory_size_gb
    error_message = "redis_memory_size_gb must be a whole number between 1 and 300."
  }
}

variable "redis_version" {
  type        = string
  description = "Redis version of the instance."
  default     = "REDIS_7_2"

  validation {
    condition     = can(regex("^REDIS_[67]_[0-9]$", var.redis_version))
    error_message = "redis_version must be REDIS_6_X or REDIS_7_X (TLS needs 6 or newer)."
  }
}

variable "redis_rdb_snapshot_period" {
  type        = string
  description = "RDB snapshot period of the online store (ONE_HOUR, SIX_HOURS, TWELVE_HOURS, TWENTY_FOUR_HOURS); empty: no persistence."
  default     = "ONE_HOUR"

  validation {
    condition     = contains(["", "ONE_HOUR", "SIX_HOURS", "TWELVE_HOURS", "TWENTY_FOUR_HOURS"], var.redis_rdb_snapshot_period)
    error_message = "redis_rdb_snapshot_period must be empty or one of ONE_HOUR, SIX_HOURS, TWELVE_HOURS, TWENTY_FOUR_HOURS."
  }
}

variable "redis_auth_secret_id" {
  type        = string
  description = "Secret Manager secret that holds the Redis AUTH string (SHOPML_REDIS_AUTH)."
  default     = "shopml-redis-auth"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.redis_auth_secret_id))
    error_message = "redis_auth_secret_id may use only letters, digits, hyphens and underscores."
  }
}

variable "labels" {
  type        = map(string)
  description = "Labels put on the service, the Redis instance, the bucket and the secret (app, environment, ...)."
}

# --- the nightly materialization (materialize.tf) ------------------------------------------------

variable "materializer_account_id" {
  type        = string
  description = "Account ID of the materialization job's service account."
  default     = "shopml-materialize"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.materializer_account_id))
    error_message = "materializer_account_id must be 6-30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "materialize_trigger_account_id" {
  type        = string
  description = "Account ID of the service account Cloud Scheduler runs the materialization job as."
  default     = "shopml-materialize-trigger"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.materialize_trigger_account_id))
    error_message = "materialize_trigger_account_id must be 6-30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "materialize_job_name" {
  type        = string
  description = "Name of the Cloud Run Job that materializes the features."
  default     = "shopml-materialize"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,47}[a-z0-9]$", var.materialize_job_name))
    error_message = "materialize_job_name must be lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "materialize_schedule_name" {
  type        = string
  description = "Name of the Cloud Scheduler job that runs the materialization."
  default     = "shopml-nightly-materialize"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,62}$", var.materialize_schedule_name))
    error_message = "materialize_schedule_name must be lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "materialize_schedule" {
  type        = string
  description = "unix-cron schedule of the nightly materialization, in materialize_time_zone (the root sets it after the training request)."
  default     = "0 3 * * *"

  validation {
    condition     = can(regex("^\\S+\\s+\\S+\\s+\\S+\\s+\\S+\\s+\\S+$", trimspace(var.materialize_schedule)))
    error_message = "materialize_schedule must be a unix-cron expression with five fields, e.g. \"0 3 * * *\"."
  }
}

variable "materialize_time_zone" {
  type        = string
  description = "IANA time zone of materialize_schedule."
  default     = "UTC"

  validation {
    condition     = can(regex("^(UTC|Etc/[A-Za-z0-9+-]+|[A-Z][A-Za-z_]+(/[A-Za-z0-9_+-]+){1,2})$", var.materialize_time_zone))
    error_message = "materialize_time_zone must be an IANA time zone such as UTC or Europe/Berlin."
  }
}

variable "materialize_paused" {
  type        = bool
  description = "Pause the nightly materialization (the job stays and can be run by hand)."
  default     = false
}

variable "materialize_timeout" {
  type        = string
  description = "Longest a materialization task may run (Cloud Run Job task timeout, e.g. 3600s)."
  default     = "3600s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.materialize_timeout))
    error_message = "materialize_timeout must be a number of seconds such as 3600s."
  }
}

variable "materialize_cpu" {
  type        = string
  description = "CPU limit of the materialization task."
  default     = "2"
}

variable "materialize_memory" {
  type        = string
  description = "Memory limit of the materialization task (the feature table of the history window is built in memory)."
  default     = "4Gi"

  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi)$", var.materialize_memory))
    error_message = "materialize_memory must be written like \"512Mi\" or \"4Gi\"."
  }
}
