variable "project_id" {
  type        = string
  description = "ID of the Google Cloud project to deploy shopml into (one project per environment)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID: 6-30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "region" {
  type        = string
  description = "Region of the functions, buckets and repositories (e.g. europe-west1)."

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a Google Cloud region such as europe-west1 or us-central1."
  }
}

variable "environment" {
  type        = string
  description = "Environment name: labels every resource and names the state prefix (dev, staging or prod)."

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be one of dev, staging, prod."
  }
}

variable "labels" {
  type        = map(string)
  description = "Extra labels for every resource; app=shopml and environment=<environment> are always added and win."
  default     = {}

  validation {
    condition = alltrue([
      for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))
    ])
    error_message = "Label keys must start with a lowercase letter; keys and values may use only lowercase letters, digits, _ and - (max 63 characters)."
  }
}

variable "enabled_functions" {
  type        = set(string)
  description = "Functions to deploy. null (the default) deploys every function of shared/topology.json whose functions/<name>/main.py exists, so a function ships as soon as its code does. Set it to hold one back or to roll out one at a time."
  default     = null

  validation {
    condition     = var.enabled_functions == null ? true : alltrue([for name in var.enabled_functions : can(regex("^[a-z][a-z0-9_]{2,26}$", name))])
    error_message = "enabled_functions must list function names (snake_case folder names under functions/)."
  }
}

variable "function_bundle_dir" {
  type        = string
  description = "Directory, relative to the repository root, where infra/scripts/bundle.py wrote one bundle per function."
  default     = "build/functions"

  validation {
    condition     = !startswith(var.function_bundle_dir, "/") && !strcontains(var.function_bundle_dir, "..")
    error_message = "function_bundle_dir must be a relative path inside the repository."
  }
}

variable "bigquery_dataset" {
  type        = string
  description = "BigQuery dataset of the warehouse (SHOPML_WAREHOUSE=bigquery://<project>/<dataset>), created by the bigquery module."
  default     = "shopml"

  validation {
    condition     = can(regex("^[A-Za-z0-9_]{1,1024}$", var.bigquery_dataset))
    error_message = "bigquery_dataset must be a BigQuery dataset ID (letters, digits, underscores)."
  }
}

variable "deployer_members" {
  type        = set(string)
  description = "IAM members that run terraform apply (e.g. serviceAccount:<cloud-build-sa>); they get roles/iam.serviceAccountUser on shopml's runtime and build accounts only."
  default     = []

  validation {
    condition     = alltrue([for m in var.deployer_members : can(regex("^(serviceAccount|user|group):[^@]+@[^@]+$", m))])
    error_message = "deployer_members must be IAM members such as serviceAccount:name@project.iam.gserviceaccount.com."
  }
}

variable "activate_apis" {
  type        = set(string)
  description = "Google APIs shopml needs; enabled by Terraform (never disabled on destroy)."
  default = [
    "aiplatform.googleapis.com",
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "compute.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "redis.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
    "telemetry.googleapis.com",
    "vpcaccess.googleapis.com",
  ]

  validation {
    condition     = alltrue([for api in var.activate_apis : endswith(api, ".googleapis.com")])
    error_message = "activate_apis must list service names such as pubsub.googleapis.com."
  }
}

variable "secret_rollout" {
  type        = string
  description = "Change this (e.g. to today's date) to roll every function onto a new revision, so new instances read the latest secret versions (a secret in an environment variable is resolved when an instance starts). Empty: no rollout marker."
  default     = ""

  validation {
    condition     = can(regex("^[A-Za-z0-9._:-]{0,64}$", var.secret_rollout))
    error_message = "secret_rollout must be a short marker such as 2025-07-01 (letters, digits, . _ : -)."
  }
}

variable "webhook_secrets_version" {
  type        = number
  description = "0 (default): Terraform never writes the webhook secret value, add versions with gcloud (infra/README.md). N >= 1: write var.webhook_secrets as a write-only secret version; bump N to write a new value."
  default     = 0

  validation {
    condition     = var.webhook_secrets_version >= 0 && floor(var.webhook_secrets_version) == var.webhook_secrets_version
    error_message = "webhook_secrets_version must be a whole number >= 0."
  }
}

variable "webhook_secrets" {
  type        = string
  description = "Comma-separated Shopify app secrets (SHOPIFY_WEBHOOK_SECRETS), used only when webhook_secrets_version >= 1. Ephemeral: never stored in plan or state. Pass it as TF_VAR_webhook_secrets, never in a tfvars file."
  default     = null
  sensitive   = true
  ephemeral   = true
}

variable "bigquery_location" {
  type        = string
  description = "BigQuery location of the warehouse dataset (EU, US or a region). Where merchants' data may live is a legal choice: set it deliberately."
  default     = "EU"
}

variable "bigquery_deletion_protection" {
  type        = bool
  description = "Refuse to destroy warehouse tables holding data. Keep true outside throw-away environments."
  default     = true
}

variable "model_name" {
  type        = string
  description = "Name of the demand model (SHOPML_MODEL_NAME): the Vertex model's label and the nightly request's model."
  default     = "demand"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_-]{0,39}$", var.model_name))
    error_message = "model_name must be 1-40 lowercase letters, digits, _ or -, starting with a letter (it becomes a label value)."
  }
}

variable "vertex_region" {
  type        = string
  description = "Region of Vertex AI jobs and models, the trainer image and the Vertex bucket; empty: the same as region."
  default     = ""

  validation {
    condition     = var.vertex_region == "" || can(regex("^[a-z]+-[a-z]+[0-9]$", var.vertex_region))
    error_message = "vertex_region must be empty or a Google Cloud region such as europe-west1."
  }
}

variable "trainer_image" {
  type        = string
  description = "Full reference of the trainer image (Cloud Build passes <repository>/trainer:<commit>); empty: the repository's trainer:latest."
  default     = ""

  validation {
    condition     = var.trainer_image == "" || can(regex("^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+(:[A-Za-z0-9._-]{1,128}|@sha256:[a-f0-9]{64})$", var.trainer_image))
    error_message = "trainer_image must be an image reference with a tag or digest, e.g. europe-west1-docker.pkg.dev/p/shopml-trainer/trainer:abc123."
  }
}

variable "training_schedule" {
  type        = string
  description = "unix-cron schedule of the nightly training request (Cloud Scheduler), in training_time_zone."
  default     = "0 2 * * *"

  validation {
    condition     = can(regex("^\\S+\\s+\\S+\\s+\\S+\\s+\\S+\\s+\\S+$", trimspace(var.training_schedule)))
    error_message = "training_schedule must be a unix-cron expression with five fields, e.g. \"0 2 * * *\"."
  }
}

variable "training_time_zone" {
  type        = string
  description = "IANA time zone of training_schedule. The night trained is the UTC date of the publish: keep the schedule after midnight UTC."
  default     = "UTC"

  validation {
    condition     = can(regex("^(UTC|Etc/[A-Za-z0-9+-]+|[A-Z][A-Za-z_]+(/[A-Za-z0-9_+-]+){1,2})$", var.training_time_zone))
    error_message = "training_time_zone must be an IANA time zone such as UTC or Europe/Berlin."
  }
}

variable "training_paused" {
  type        = bool
  description = "Pause the nightly training schedule (the job stays; manual requests still train)."
  default     = false
}

variable "feature_server_image" {
  type        = string
  description = "Full reference of the Feast feature server image (Cloud Build passes <repository>/feature-server:<commit>); empty: the trainer repository's feature-server:latest."
  default     = ""

  validation {
    condition     = var.feature_server_image == "" || can(regex("^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+(:[A-Za-z0-9._-]{1,128}|@sha256:[a-f0-9]{64})$", var.feature_server_image))
    error_message = "feature_server_image must be an image reference with a tag or digest, e.g. europe-west1-docker.pkg.dev/p/shopml-trainer/feature-server:abc123."
  }
}

variable "feature_server_min_instances" {
  type        = number
  description = "Feature server instances kept running (at least 1: it is a long-running service that takes ~5 s to start)."
  default     = 1

  validation {
    condition     = var.feature_server_min_instances >= 1 && floor(var.feature_server_min_instances) == var.feature_server_min_instances
    error_message = "feature_server_min_instances must be a whole number >= 1."
  }
}

variable "feature_server_invoker_members" {
  type        = set(string)
  description = "Further service accounts (serviceAccount:<email>) that may call the feature server, besides validate_load and predict (which get it when deployed)."
  default     = []

  validation {
    condition     = alltrue([for m in var.feature_server_invoker_members : can(regex("^serviceAccount:[^@]+@[^@]+$", m))])
    error_message = "feature_server_invoker_members must be service accounts (serviceAccount:<email>)."
  }
}

variable "feature_network" {
  type        = string
  description = "Name of the VPC network in the project that Memorystore peers with and the feature server egresses into."
  default     = "default"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.feature_network))
    error_message = "feature_network must be a VPC network name."
  }
}

variable "feature_subnetwork" {
  type        = string
  description = "Name of the subnetwork (in region) the feature server's Direct VPC egress uses."
  default     = "default"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.feature_subnetwork))
    error_message = "feature_subnetwork must be a subnetwork name."
  }
}

variable "feature_connector_ip_cidr_range" {
  type        = string
  description = "Internal /28 range of the subnet created in feature_network for the Serverless VPC Access connector of the functions that call the feature server; must not overlap any other subnet, peering or route of the network."
  default     = "10.8.0.0/28"

  validation {
    condition = (
      can(cidrhost(var.feature_connector_ip_cidr_range, 0))
      && endswith(var.feature_connector_ip_cidr_range, "/28")
      && try(cidrsubnet(var.feature_connector_ip_cidr_range, 0, 0) == var.feature_connector_ip_cidr_range, false)
      && can(regex("^(10\\.|172\\.(1[6-9]|2[0-9]|3[01])\\.|192\\.168\\.)", var.feature_connector_ip_cidr_range))
    )
    error_message = "feature_connector_ip_cidr_range must be a /28 network address in private (RFC 1918) space, e.g. 10.8.0.0/28."
  }
}

variable "redis_tier" {
  type        = string
  description = "Memorystore tier of the Feast online store: STANDARD_HA (default, replica + failover) or BASIC (throw-away environments)."
  default     = "STANDARD_HA"

  validation {
    condition     = contains(["BASIC", "STANDARD_HA"], var.redis_tier)
    error_message = "redis_tier must be BASIC or STANDARD_HA."
  }
}

# --- serving and blue-green (Step 4) ---------------------------------------------------------------

variable "firestore_database" {
  type        = string
  description = "Firestore database (Native mode) of the live pointers (SHOPML_FIRESTORE_DATABASE): (default), or a named database when the project's default one is used for something else."
  default     = "(default)"

  validation {
    condition     = var.firestore_database == "(default)" || can(regex("^[a-z][a-z0-9-]{2,61}[a-z0-9]$", var.firestore_database))
    error_message = "firestore_database must be (default) or 4-63 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "firestore_location" {
  type        = string
  description = "Location of the Firestore database: a multi-region (eur3, nam5) or a region. Fixed once created; keep it near the functions (region) and where the merchants' data may live."
  default     = "eur3"

  validation {
    condition     = can(regex("^(eur3|nam5|nam7|[a-z]+-[a-z]+[0-9])$", var.firestore_location))
    error_message = "firestore_location must be a Firestore multi-region (eur3, nam5, nam7) or a region such as europe-west1."
  }
}

variable "firestore_deletion_protection" {
  type        = bool
  description = "Refuse to delete the Firestore database (terraform destroy abandons it). Keep true outside throw-away environments."
  default     = true
}

variable "predict_cors_origins" {
  type        = list(string)
  description = "Storefront origins allowed to call predict from the browser (SHOPML_PREDICT_CORS_ORIGINS), e.g. [\"https://shop.example.com\"]. App-proxy calls are same-origin and need none."
  default     = []

  validation {
    condition     = alltrue([for origin in var.predict_cors_origins : can(regex("^https://[^/,*]+$", origin))])
    error_message = "predict_cors_origins must be https origins without path or wildcard, e.g. https://shop.example.com."
  }
}

variable "predict_keys_version" {
  type        = number
  description = "0 (default): Terraform never writes predict's bearer keys, add versions of shopml-predict-keys with gcloud (infra/README.md). N >= 1: write var.predict_keys as a write-only secret version; bump N to write a new value."
  default     = 0

  validation {
    condition     = var.predict_keys_version >= 0 && floor(var.predict_keys_version) == var.predict_keys_version
    error_message = "predict_keys_version must be a whole number >= 0."
  }
}

variable "predict_keys" {
  type        = string
  description = "SHOPML_PREDICT_KEYS (shop_domain=key,...), used only when predict_keys_version >= 1. Ephemeral: never stored in plan or state. Pass it as TF_VAR_predict_keys, never in a tfvars file."
  default     = null
  sensitive   = true
  ephemeral   = true
}

variable "materialization_schedule" {
  type        = string
  description = "unix-cron schedule of the nightly feature materialization (Cloud Run Job shopml-materialize), in materialization_time_zone. Default 03:00 UTC: an hour after the nightly training request (training_schedule), once the day is complete."
  default     = "0 3 * * *"

  validation {
    condition     = can(regex("^\\S+\\s+\\S+\\s+\\S+\\s+\\S+\\s+\\S+$", trimspace(var.materialization_schedule)))
    error_message = "materialization_schedule must be a unix-cron expression with five fields, e.g. \"0 3 * * *\"."
  }
}

variable "materialization_time_zone" {
  type        = string
  description = "IANA time zone of materialization_schedule."
  default     = "UTC"

  validation {
    condition     = can(regex("^(UTC|Etc/[A-Za-z0-9+-]+|[A-Z][A-Za-z_]+(/[A-Za-z0-9_+-]+){1,2})$", var.materialization_time_zone))
    error_message = "materialization_time_zone must be an IANA time zone such as UTC or Europe/Berlin."
  }
}

variable "materialization_paused" {
  type        = bool
  description = "Pause the nightly materialization (the job stays; gcloud run jobs execute shopml-materialize runs it by hand)."
  default     = false
}

# --- alerts (module.monitoring): the thresholds of infra/monitoring/prometheus/shopml-rules.yml ---
# tests/infra/test_monitoring.py holds each default equal to its rule's threshold.

variable "alert_predict_p99_seconds" {
  type        = number
  description = "Alert ShopmlPredictLatencyP99: predict's p99 latency budget in seconds (Cloud Run's request_latencies of the predict service over 10 minutes)."
  default     = 0.1
}

variable "alert_predict_error_share" {
  type        = number
  description = "Alert ShopmlPredictErrorRate: share of predict's answers that may be 5xx over 5 minutes."
  default     = 0.01
}

variable "alert_fallback_share" {
  type        = number
  description = "Alert ShopmlPredictFallbackShare: share of predict's items that may be answered with a fallback over 15 minutes."
  default     = 0.2
}

variable "alert_dead_letter_messages" {
  type        = number
  description = "Alert ShopmlDeadLetterBacklog: dead-lettered messages tolerated on a hold subscription (0: any message alerts)."
  default     = 0
}

variable "alert_accuracy_error_ratio" {
  type        = number
  description = "Alert ShopmlAccuracyDrop: live WAPE / the card's holdout WAPE above which the model counts as worse than at training (1.03: 3% worse)."
  default     = 1.03
}

variable "alert_accuracy_floor" {
  type        = number
  description = "Alert ShopmlAccuracyBelowFloor: shop-week accuracy (1 - WAPE) below which the alert fires."
  default     = 0.85
}

variable "alert_drift_check_max_age_seconds" {
  type        = number
  description = "Alert ShopmlDriftCheckStale: seconds without a completed drift check (checks run hourly)."
  default     = 10800
}

variable "alert_email_addresses" {
  type        = set(string)
  description = "Email addresses notified of every alert policy. Empty: no email channel."
  default     = []
}

variable "alert_slack_channel" {
  type        = string
  description = "Slack channel (#name) notified of every alert policy through Cloud Monitoring's Slack channel type; needs alert_slack_auth_token. Empty (default): none."
  default     = ""
}

variable "alert_slack_auth_token" {
  type        = string
  description = "OAuth token of the Slack app Cloud Monitoring posts as, when alert_slack_channel is set. Kept in the state (no write-only form exists for it): pass it as TF_VAR_alert_slack_auth_token, or create the channel in the console and list it in alert_notification_channel_ids."
  default     = null
  sensitive   = true
}

variable "alert_notification_channel_ids" {
  type        = set(string)
  description = "Existing Cloud Monitoring notification channels (projects/<p>/notificationChannels/<id>) notified of every alert policy."
  default     = []
}

# --- drift monitoring (drift_monitor) ---------------------------------------------------------------

variable "drift_check_schedule" {
  type        = string
  description = "Cron schedule (UTC) of the drift and accuracy check of the live model (Cloud Scheduler → drift-checks → drift_monitor)."
  default     = "17 * * * *"
}

variable "drift_checks_paused" {
  type        = bool
  description = "Pause the hourly drift checks (the job stays; a message on drift-checks still runs one)."
  default     = false
}

variable "drift_report_retention_days" {
  type        = number
  description = "Days drift_monitor's HTML drift reports are kept in the reports bucket."
  default     = 400
}

variable "slack_alerts" {
  type        = bool
  description = "Hand drift_monitor the Slack webhook secret (shopml-slack-webhook-url). Set it after adding a version with gcloud (infra/README.md); with slack_webhook_url_version >= 1 it is implied."
  default     = false
}

variable "slack_webhook_url_version" {
  type        = number
  description = "0 (default): Terraform never writes the Slack webhook URL. N >= 1: write var.slack_webhook_url as a write-only secret version; bump N to write a new value."
  default     = 0

  validation {
    condition     = var.slack_webhook_url_version >= 0 && floor(var.slack_webhook_url_version) == var.slack_webhook_url_version
    error_message = "slack_webhook_url_version must be a whole number >= 0."
  }
}

variable "slack_webhook_url" {
  type        = string
  description = "The Slack incoming-webhook URL (SHOPML_SLACK_WEBHOOK_URL), used only when slack_webhook_url_version >= 1. Ephemeral: never stored in plan or state. Pass it as TF_VAR_slack_webhook_url."
  default     = null
  sensitive   = true
  ephemeral   = true
}

# --- store syncing (Step 6, Shopify side; docs/store-sync.md) ----------------------------------

variable "shopify_shops" {
  type        = list(string)
  description = "Connected shops (x.myshopify.com): each gets a Secret Manager secret shopify-token-<shop> for its Admin API access token, readable by reconcile."
  default     = []

  validation {
    condition     = alltrue([for shop in var.shopify_shops : can(regex("^[a-z0-9][a-z0-9-]*\\.myshopify\\.com$", lower(shop)))])
    error_message = "shopify_shops must be *.myshopify.com domains."
  }
}

variable "shopify_api_version" {
  type        = string
  description = "Admin API version reconcile calls (SHOPML_SHOPIFY_API_VERSION), a quarterly release."
  default     = "2025-10"

  validation {
    condition     = can(regex("^[0-9]{4}-(01|04|07|10)$", var.shopify_api_version))
    error_message = "shopify_api_version must be a quarterly release, YYYY-01, -04, -07 or -10."
  }
}

variable "shopify_pubsub_delivery" {
  type        = bool
  description = "Let Shopify publish webhooks to shopify-events itself (shopml connect --pubsub): grants delivery@shopify-pubsub-webhooks.iam.gserviceaccount.com publisher on that topic only."
  default     = false
}

variable "reconcile_schedule" {
  type        = string
  description = "Cloud Scheduler cron (UTC) of the reconcile passes (every 4 hours by default)."
  default     = "0 */4 * * *"

  validation {
    condition     = can(regex("^\\S+\\s+\\S+\\s+\\S+\\s+\\S+\\s+\\S+$", trimspace(var.reconcile_schedule)))
    error_message = "reconcile_schedule must be a unix-cron expression with five fields, e.g. \"0 */4 * * *\"."
  }
}

variable "reconcile_paused" {
  type        = bool
  description = "Pause the reconcile Scheduler job."
  default     = false
}

variable "privacy_export_retention_days" {
  type        = number
  description = "Days a customers/data_request export is kept in the privacy export bucket before it is deleted."
  default     = 30
}
