# shopml on Google Cloud: the root composes one module per concern under infra/modules/.
#
# shared/topology.json is the single source of truth for topics, push subscriptions, dead
# letters and functions: the local stack (shared/topology.py) and this configuration both read
# it, so the emulator setup and the cloud cannot drift apart. Nothing below names a topic or a
# function's settings by hand; it derives them from the file.
#
# Alerts (module.monitoring) take module.pubsub's dead-letter hold subscriptions and local.labels.

provider "google" {
  project = var.project_id
  region  = var.region
}

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  topology = jsondecode(file("${path.module}/shared/topology.json"))

  # A function ships once its code exists: functions/<name>/main.py (the folder is the entry point).
  implemented_functions = sort([
    for name in keys(local.topology.functions) : name
    if fileexists("${path.module}/functions/${name}/main.py")
  ])
  enabled_functions = var.enabled_functions == null ? local.implemented_functions : sort(tolist(var.enabled_functions))

  functions = {
    for name in local.enabled_functions : name => {
      trigger         = local.topology.functions[name].trigger
      public          = local.topology.functions[name].public
      public_reason   = try(local.topology.functions[name].public_reason, "")
      publishes       = local.topology.functions[name].publishes
      memory          = local.topology.functions[name].memory
      cpu             = local.topology.functions[name].cpu
      timeout_seconds = local.topology.functions[name].timeout_seconds
      min_instances   = local.topology.functions[name].min_instances
      max_instances   = local.topology.functions[name].max_instances
      concurrency     = local.topology.functions[name].concurrency
    } if contains(keys(local.topology.functions), name)
  }

  # A push subscription needs its function's URL: only those of deployed functions are created.
  # Messages published meanwhile stay on the topic (topic retention) for a later seek.
  subscriptions = {
    for name, sub in local.topology.subscriptions : name => sub
    if contains(local.enabled_functions, sub.push_to)
  }
  dead_letter_topics = toset([for sub in values(local.topology.subscriptions) : sub.dead_letter_topic])

  # Push subscriptions whose ack deadline is shorter than the function's timeout: Pub/Sub
  # would redeliver while the first attempt still runs.
  short_ack_deadlines = [
    for name, sub in local.topology.subscriptions : "${name} (ack ${sub.ack_deadline_seconds}s < ${sub.push_to} timeout ${local.topology.functions[sub.push_to].timeout_seconds}s)"
    if sub.ack_deadline_seconds < local.topology.functions[sub.push_to].timeout_seconds
  ]

  labels = merge(var.labels, {
    app         = "shopml"
    environment = var.environment
  })

  # The warehouse tables: one file per table, read by the code too (shared/warehouse.py).
  warehouse_tables = {
    for file in fileset("${path.module}/shared/schemas/tables", "*.json") :
    trimsuffix(file, ".json") => jsondecode(file("${path.module}/shared/schemas/tables/${file}"))
  }
  # Dataset access per deployed function, from topology.json's "warehouse": "write" | "read".
  warehouse_access = {
    for name in keys(local.functions) : name => try(local.topology.functions[name].warehouse, "none")
  }
  # Deployed functions that run BigQuery query jobs: they need roles/bigquery.jobUser, which
  # exists only on the project (bigquery.jobs.create has no dataset-level equivalent); what those
  # queries may read stays the dataset grant above. validate_load: its feature push reads the
  # stored state of the changed variants (shared/features/push.py, warehouse.query).
  # tests/infra/test_bigquery.py finds the functions whose code queries and holds this list to it.
  # drift_monitor reads the predictions window, realised sales and earlier drift_reports.
  # reconcile compares the Admin API's changes with the latest-state views and raw_events.
  # compliance reads and redacts the warehouse with queries and DML jobs (shared/privacy).
  bigquery_job_users = [for name in ["validate_load", "drift_monitor", "reconcile", "compliance"] : name if contains(keys(local.functions), name)]

  # The Shopify webhook secrets: readable by ingest_webhook (webhook HMAC) and predict (the app
  # proxy's signature uses the same app secrets), nobody else.
  webhook_secret_id      = "shopify-webhook-secrets"
  webhook_secret_readers = ["ingest_webhook", "predict"]

  # predict's per-shop bearer keys (SHOPML_PREDICT_KEYS = shop_domain=key,...): predict only.
  # The value never passes through Terraform unless predict_keys_version opts into the write-only
  # path (infra/README.md, "Serving").
  predict_keys_secret_id = "shopml-predict-keys"
  predict_keys_readers   = ["predict"]

  # The Slack incoming-webhook URL drift_monitor posts its alerts to (it carries Slack's token):
  # drift_monitor only. Without a version the function sends no Slack alert (metrics, drift
  # reports and Cloud Monitoring's own channels still have them).
  slack_secret_id      = "shopml-slack-webhook-url"
  slack_secret_readers = ["drift_monitor"]
  # The function gets the secret only once it has a version (else Cloud Run cannot start it).
  slack_alerts = var.slack_alerts || var.slack_webhook_url_version > 0

  # The HMAC key of the personal-data hashes (customers' email/phone): the functions that
  # write or look up those hashes read it, nobody else. Without it the hash columns stay NULL.
  pii_key_secret_id = "shopml-pii-hash-key"
  pii_key_readers   = ["validate_load", "compliance"]

  # Training (Vertex AI) and the model registry. The trainer image is built and pushed by
  # Cloud Build (step trainer-image) before apply, tagged with the commit; TF_VAR_trainer_image.
  vertex_region = var.vertex_region == "" ? var.region : var.vertex_region
  trainer_image = var.trainer_image != "" ? var.trainer_image : "${module.vertex.repository_url}/trainer:latest"
  # Functions that submit training jobs: they may act as the trainer account.
  training_launchers = [for name in ["trigger_training"] : name if contains(keys(local.functions), name)]
  # Settings the training and registry code reads (shared/settings.py), for every function:
  # trigger_training submits CustomJobs with them; deploy_model and predict read the registry.
  model_environment = {
    SHOPML_MODEL_NAME              = var.model_name
    SHOPML_REGISTRY                = "vertex://${var.project_id}/${local.vertex_region}"
    SHOPML_TRAINING_BACKEND        = "vertex"
    SHOPML_VERTEX_REGION           = local.vertex_region
    SHOPML_VERTEX_STAGING_BUCKET   = module.vertex.bucket_url
    SHOPML_TRAINER_IMAGE           = local.trainer_image
    SHOPML_TRAINER_SERVICE_ACCOUNT = module.vertex.trainer_email
  }

  # The Feast feature server (module.features): the image Cloud Build pushed (step
  # feature-server-image, TF_VAR_feature_server_image), and the functions that call it over
  # HTTP (validate_load pushes, predict reads): each gets invoker on the service and its URL.
  feature_server_image   = var.feature_server_image != "" ? var.feature_server_image : "${module.vertex.repository_url}/feature-server:latest"
  feature_server_clients = [for name in ["validate_load", "predict"] : name if contains(keys(local.functions), name)]
  function_feature_env = {
    for name in local.feature_server_clients : name => { SHOPML_FEATURE_SERVER_URL = module.features.url }
  }
  # The service's ingress is internal: a caller's request is admitted only if the caller routes
  # all of its traffic through the VPC. So every function that gets the URL gets the connector
  # (module.network) with ALL_TRAFFIC, and no other function does.
  function_vpc_egress = {
    for name, vars in local.function_feature_env : name => {
      connector       = module.network.connector_id
      egress_settings = "ALL_TRAFFIC"
    } if contains(keys(vars), "SHOPML_FEATURE_SERVER_URL")
  }

  # Secrets each function receives as environment variables: function => { VAR => secret }.
  function_secret_env = {
    for name in keys(local.functions) : name => merge(
      contains(local.webhook_secret_readers, name) ? { SHOPIFY_WEBHOOK_SECRETS = local.webhook_secret_id } : {},
      contains(local.pii_key_readers, name) ? { SHOPML_PII_HASH_KEY = local.pii_key_secret_id } : {},
      contains(local.predict_keys_readers, name) ? { SHOPML_PREDICT_KEYS = local.predict_keys_secret_id } : {},
      contains(local.slack_secret_readers, name) && local.slack_alerts ? { SHOPML_SLACK_WEBHOOK_URL = local.slack_secret_id } : {},
    )
  }

  # Serving and blue-green (module.serving): who follows the live pointer (read and listen), who
  # changes it (transactions), who reads the registered model files and who moves the registry's
  # live / previous aliases. Each list is cut to the deployed functions.
  pointer_readers  = [for name in ["predict", "drift_monitor"] : name if contains(keys(local.functions), name)]
  pointer_writers  = [for name in ["deploy_model", "rollback"] : name if contains(keys(local.functions), name)]
  registry_readers = [for name in ["predict", "deploy_model", "rollback", "drift_monitor"] : name if contains(keys(local.functions), name)]
  alias_movers     = [for name in ["deploy_model", "rollback"] : name if contains(keys(local.functions), name)]
  # predict and drift_monitor push their metrics to Cloud Monitoring (docs/DESIGN.md, "Serving
  # metrics in the cloud"); the alert policies read drift_monitor's shopml_* gauges there.
  metric_writers = [for name in ["predict", "drift_monitor"] : name if contains(keys(local.functions), name)]
  # drift_monitor writes its HTML drift reports to the monitoring module's bucket.
  report_writers = [for name in ["drift_monitor"] : name if contains(keys(local.functions), name)]

  # Per-function settings of serving: the pointer's database for its readers and writers; predict
  # runs on functions-framework's ASGI path (its entry point is @functions_framework.aio.http) and
  # gets the storefront origins allowed by CORS, and pushes its metrics over OTLP to the Telemetry
  # API (SHOPML_METRICS_EXPORT; the region names the series' location).
  function_serving_env = {
    for name in keys(local.functions) : name => merge(
      contains(concat(local.pointer_readers, local.pointer_writers), name) ? { SHOPML_FIRESTORE_DATABASE = module.serving.firestore_database } : {},
      name == "predict" ? { SHOPML_PREDICT_CORS_ORIGINS = join(",", var.predict_cors_origins) } : {},
      contains(local.metric_writers, name) ? { SHOPML_METRICS_EXPORT = "otlp", SHOPML_METRICS_LOCATION = var.region } : {},
      contains(local.report_writers, name) ? { SHOPML_REPORTS = "gs://${module.monitoring.reports_bucket_name}/drift-reports" } : {},
    )
  }
  # Privacy requests (functions/compliance): data-request exports in module.privacy's bucket.
  privacy_exporters = [for name in ["compliance"] : name if contains(keys(local.functions), name)]
  function_privacy_env = {
    for name in local.privacy_exporters : name => { SHOPML_PRIVACY_EXPORTS = module.privacy.exports_url }
  }
  # Store syncing (Step 6, Shopify side; docs/store-sync.md): reconcile reads each connected
  # shop's Admin API access token from a secret of its own (shopify-token-<shop, dots as ->; the
  # value is added with gcloud, never through Terraform) and keeps its watermarks in
  # module.storesync's bucket.
  token_readers = [for name in ["reconcile"] : name if contains(keys(local.functions), name)]
  function_storesync_env = {
    for name in local.token_readers : name => {
      SHOPML_SYNC_STATE           = module.storesync.sync_state_url
      SHOPML_SHOPIFY_TOKEN_SECRET = "shopify-token-{shop}"
      SHOPML_SHOPIFY_API_VERSION  = var.shopify_api_version
    }
  }
  # Every per-function variable: feature server, serving, store syncing and privacy alike.
  function_environment = {
    for name in keys(local.functions) : name => merge(
      lookup(local.function_feature_env, name, {}),
      local.function_serving_env[name],
      lookup(local.function_storesync_env, name, {}),
      lookup(local.function_privacy_env, name, {}),
    )
    if length(merge(lookup(local.function_feature_env, name, {}), local.function_serving_env[name], lookup(local.function_storesync_env, name, {}), lookup(local.function_privacy_env, name, {}))) > 0
  }
}

# Fails the plan, with a message, when the configuration and the repository disagree.
resource "terraform_data" "topology_guard" {
  input = sha256(file("${path.module}/shared/topology.json"))

  lifecycle {
    precondition {
      condition     = length(setsubtract(local.enabled_functions, keys(local.topology.functions))) == 0
      error_message = "enabled_functions names functions that are not in shared/topology.json: ${join(", ", sort(setsubtract(local.enabled_functions, keys(local.topology.functions))))}."
    }
    precondition {
      condition     = alltrue([for name in local.enabled_functions : fileexists("${path.module}/functions/${name}/main.py")])
      error_message = "Every enabled function needs functions/<name>/main.py."
    }
  }
}

check "push_ack_deadline_covers_function_timeout" {
  assert {
    condition     = length(local.short_ack_deadlines) == 0
    error_message = "Ack deadline shorter than the function timeout in shared/topology.json: ${join("; ", local.short_ack_deadlines)}. Pub/Sub redelivers a message still being processed (duplicates, wasted work)."
  }
}

resource "google_project_service" "this" {
  for_each = var.activate_apis

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

module "iam" {
  source = "./infra/modules/iam"

  project_id       = var.project_id
  project_number   = data.google_project.this.number
  function_names   = toset(keys(local.functions))
  deployer_members = var.deployer_members

  depends_on = [google_project_service.this]
}

module "secrets" {
  source = "./infra/modules/secrets"

  project_id = var.project_id
  labels     = local.labels
  secrets = {
    (local.webhook_secret_id) = {
      description = "SHOPIFY_WEBHOOK_SECRETS: comma-separated Shopify app secrets; any one may sign a webhook (rotation)."
      accessors = {
        for name in local.webhook_secret_readers : name => module.iam.function_members[name]
        if contains(keys(local.functions), name)
      }
    }
    (local.pii_key_secret_id) = {
      description = "SHOPML_PII_HASH_KEY: HMAC key of the keyed hashes that stand in for customers' email and phone in the warehouse."
      accessors = {
        for name in local.pii_key_readers : name => module.iam.function_members[name]
        if contains(keys(local.functions), name)
      }
    }
    (local.predict_keys_secret_id) = {
      description = "SHOPML_PREDICT_KEYS: per-shop bearer keys of predict's non-app-proxy callers (shop_domain=key,...), compared in constant time."
      accessors = {
        for name in local.predict_keys_readers : name => module.iam.function_members[name]
        if contains(keys(local.functions), name)
      }
    }
    (local.slack_secret_id) = {
      description = "SHOPML_SLACK_WEBHOOK_URL: the Slack incoming webhook drift_monitor posts its alerts to (the URL carries Slack's token)."
      accessors = {
        for name in local.slack_secret_readers : name => module.iam.function_members[name]
        if contains(keys(local.functions), name)
      }
    }
  }
  # Optional write-only versions (sent to Secret Manager, never stored in plan or state).
  secret_values_wo_version = merge(
    var.webhook_secrets_version > 0 ? { (local.webhook_secret_id) = var.webhook_secrets_version } : {},
    var.predict_keys_version > 0 ? { (local.predict_keys_secret_id) = var.predict_keys_version } : {},
    var.slack_webhook_url_version > 0 ? { (local.slack_secret_id) = var.slack_webhook_url_version } : {},
  )
  secret_values_wo = merge(
    var.webhook_secrets_version > 0 ? { (local.webhook_secret_id) = var.webhook_secrets } : {},
    var.predict_keys_version > 0 ? { (local.predict_keys_secret_id) = var.predict_keys } : {},
    var.slack_webhook_url_version > 0 ? { (local.slack_secret_id) = var.slack_webhook_url } : {},
  )

  depends_on = [google_project_service.this]
}

# pubsub and functions refer to each other (topics -> publisher grants -> functions -> push
# subscriptions); Terraform resolves that per resource, there is no cycle.
module "pubsub" {
  source = "./infra/modules/pubsub"

  project_id                 = var.project_id
  project_number             = data.google_project.this.number
  topics                     = local.topology.topics
  subscriptions              = local.subscriptions
  dead_letter_topics         = local.dead_letter_topics
  push_endpoints             = module.functions.uris
  push_service_account_email = module.iam.push_invoker_email
  labels                     = local.labels

  depends_on = [google_project_service.this]
}

module "functions" {
  source = "./infra/modules/functions"

  project_id                    = var.project_id
  region                        = var.region
  functions                     = local.functions
  service_account_emails        = module.iam.function_emails
  builder_service_account_id    = module.iam.builder_id
  builder_service_account_email = module.iam.builder_email
  invoker_service_account_email = module.iam.push_invoker_email
  topic_ids                     = module.pubsub.topic_ids
  bundle_dir                    = "${path.module}/${var.function_bundle_dir}"
  source_bucket_name            = "${var.project_id}-shopml-fn-source"
  warehouse_dataset             = var.bigquery_dataset
  labels                        = local.labels
  # SHOPML_SECRET_ROLLOUT is read by nothing: changing it creates new revisions, whose instances
  # read the latest secrets.
  extra_environment_variables = merge(
    local.model_environment,
    var.secret_rollout == "" ? {} : { SHOPML_SECRET_ROLLOUT = var.secret_rollout },
  )

  # Per function: the feature server's URL for its clients, the serving settings.
  function_environment_variables = local.function_environment
  # ...and VPC egress (all traffic through the connector) for exactly those functions.
  vpc_egress = local.function_vpc_egress

  secret_environment_variables = {
    for name, vars in local.function_secret_env : name => {
      for variable, secret in vars : variable => module.secrets.secret_ids[secret]
    } if length(vars) > 0
  }

  # Only on the APIs: a module depends_on defers the module's data sources (the source zips)
  # to apply time whenever the dependency has changes, which would hide which code redeploys.
  # The APIs change rarely (first apply); terraform_data.topology_guard is left out on purpose.
  depends_on = [google_project_service.this]
}

module "bigquery" {
  source = "./infra/modules/bigquery"

  project_id          = var.project_id
  location            = var.bigquery_location
  dataset_id          = var.bigquery_dataset
  deletion_protection = var.bigquery_deletion_protection
  labels              = local.labels
  tables = {
    for name, table in local.warehouse_tables : name => {
      description       = table.description
      schema            = table.schema
      clustering        = try(table.clustering, [])
      time_partitioning = try(table.time_partitioning, null)
    }
  }
  writers = { for name, access in local.warehouse_access : name => module.iam.function_members[name] if access == "write" }
  # The trainer (a Vertex AI CustomJob, not a function) reads the training data.
  readers = merge(
    { for name, access in local.warehouse_access : name => module.iam.function_members[name] if access == "read" },
    { shopml_trainer = module.vertex.trainer_member },
    # The nightly materialization reads the warehouse to build the feature table.
    { shopml_materialize = module.features.materializer_member },
  )
  # Project-level jobUser for the functions that query (the trainer's is in module.vertex), and
  # for the nightly materialization job, which builds the feature table with queries.
  job_users = merge(
    { for name in local.bigquery_job_users : name => module.iam.function_members[name] },
    { shopml_materialize = module.features.materializer_member },
  )

  depends_on = [google_project_service.this]
}

module "vertex" {
  source = "./infra/modules/vertex"

  project_id            = var.project_id
  region                = local.vertex_region
  bucket_name           = "${var.project_id}-shopml-vertex"
  model_events_topic_id = module.pubsub.topic_ids["model-events"]
  launchers             = { for name in local.training_launchers : name => module.iam.function_emails[name] }
  labels                = local.labels

  depends_on = [google_project_service.this]
}

# Nightly training: Cloud Scheduler publishes {"model": ...} to training-requests; the night is
# the UTC date of the publish (shared/training_requests.py), so a redelivery is the same run.
module "scheduler" {
  source = "./infra/modules/scheduler"

  project_id = var.project_id
  region     = var.region
  jobs = {
    shopml-nightly-training = {
      description = "shopml: ask trigger_training to train ${var.model_name} on the data up to yesterday."
      schedule    = var.training_schedule
      time_zone   = var.training_time_zone
      topic_id    = module.pubsub.topic_ids["training-requests"]
      message     = { model = var.model_name }
      paused      = var.training_paused
    }
    # Every 4 hours: reconcile compares each connected shop's recent changes with the warehouse.
    shopml-reconcile = {
      description = "shopml: ask reconcile to fill in what webhooks missed for every connected shop."
      schedule    = var.reconcile_schedule
      time_zone   = "Etc/UTC"
      topic_id    = module.pubsub.topic_ids["reconcile"]
      message     = {}
      paused      = var.reconcile_paused
    }
    # Hourly drift and accuracy check of the live model (drift_monitor, shared/monitoring/monitor.py).
    shopml-drift-checks = {
      description = "shopml: ask drift_monitor to check ${var.model_name}'s serving inputs and accuracy."
      schedule    = var.drift_check_schedule
      time_zone   = "Etc/UTC"
      topic_id    = module.pubsub.topic_ids["drift-checks"]
      message     = { model = var.model_name }
      paused      = var.drift_checks_paused
    }
  }

  depends_on = [google_project_service.this]
}

# Store syncing: reconcile's sync-state bucket (watermarks, uninstalled shops, backfill
# progress), one Admin API token secret per connected shop (readable by reconcile only) and,
# when the shops deliver through Pub/Sub, Shopify's publisher grant on shopify-events only.
module "storesync" {
  source = "./infra/modules/storesync"

  project_id              = var.project_id
  region                  = var.region
  bucket_name             = "${var.project_id}-shopml-sync"
  labels                  = local.labels
  state_writers           = { for name in local.token_readers : name => module.iam.function_members[name] }
  shops                   = toset([for shop in var.shopify_shops : lower(shop)])
  token_readers           = { for name in local.token_readers : name => module.iam.function_members[name] }
  delivery_topic_id       = module.pubsub.topic_ids["shopify-events"]
  shopify_pubsub_delivery = var.shopify_pubsub_delivery

  depends_on = [google_project_service.this]
}

# Privacy requests (functions/compliance, shared/privacy): the data-request export bucket with
# its retention rule, and compliance's grants on it and on the dead-letter hold subscriptions.
module "privacy" {
  source = "./infra/modules/privacy"

  project_id                = var.project_id
  region                    = var.region
  bucket_name               = "${var.project_id}-shopml-privacy-exports"
  export_retention_days     = var.privacy_export_retention_days
  exporters                 = { for name in local.privacy_exporters : name => module.iam.function_members[name] }
  dead_letter_subscriptions = module.pubsub.dead_letter_hold_subscription_ids
  labels                    = local.labels

  depends_on = [google_project_service.this]
}

# The online side of the feature store: Feast's feature server on Cloud Run (min 1 instance,
# internal ingress, IAM invocation), Memorystore for Redis (AUTH + TLS), the registry bucket.
module "features" {
  source = "./infra/modules/features"

  project_id        = var.project_id
  region            = var.region
  network           = "projects/${var.project_id}/global/networks/${var.feature_network}"
  subnetwork        = var.feature_subnetwork
  image             = local.feature_server_image
  min_instances     = var.feature_server_min_instances
  bucket_name       = "${var.project_id}-shopml-features"
  bigquery_dataset  = var.bigquery_dataset
  bigquery_location = var.bigquery_location
  redis_tier        = var.redis_tier
  deployer_members  = var.deployer_members
  labels            = local.labels
  # The nightly materialization (Cloud Run Job + Cloud Scheduler), after the training request.
  materialize_schedule  = var.materialization_schedule
  materialize_time_zone = var.materialization_time_zone
  materialize_paused    = var.materialization_paused
  # validate_load and predict (when deployed), plus any extra service account listed.
  invokers = merge(
    { for name in local.feature_server_clients : name => module.iam.function_members[name] },
    { for member in var.feature_server_invoker_members : member => member },
  )

  depends_on = [google_project_service.this]
}

# Serverless egress into the feature network for the functions that call the feature server: a
# Serverless VPC Access connector on a /28 subnet of its own with Private Google Access (no Cloud
# NAT: those functions reach only Google APIs and Cloud Run).
module "network" {
  source = "./infra/modules/network"

  project_id    = var.project_id
  region        = var.region
  network       = "projects/${var.project_id}/global/networks/${var.feature_network}"
  ip_cidr_range = var.feature_connector_ip_cidr_range

  depends_on = [google_project_service.this]
}

# Serving and blue-green: the Firestore database of the live pointers and the serving functions'
# grants on it, on the registered model files and on the registry's aliases (module header).
module "serving" {
  source = "./infra/modules/serving"

  project_id          = var.project_id
  database_name       = var.firestore_database
  location            = var.firestore_location
  deletion_protection = var.firestore_deletion_protection
  registry_bucket     = module.vertex.bucket_name
  pointer_readers     = { for name in local.pointer_readers : name => module.iam.function_members[name] }
  pointer_writers     = { for name in local.pointer_writers : name => module.iam.function_members[name] }
  registry_readers    = { for name in local.registry_readers : name => module.iam.function_members[name] }
  alias_movers        = { for name in local.alias_movers : name => module.iam.function_members[name] }
  metric_writers      = { for name in local.metric_writers : name => module.iam.function_members[name] }

  depends_on = [google_project_service.this]
}

# Alerts: the conditions of infra/monitoring/prometheus/shopml-rules.yml as Cloud Monitoring alert
# policies (same names and thresholds): predict's latency and errors from Cloud Run's request
# metrics, dead letters from Pub/Sub, fallbacks, drift and accuracy in PromQL (module header).
module "monitoring" {
  source = "./infra/modules/monitoring"

  project_id           = var.project_id
  predict_service_name = "predict"
  # The hold subscriptions' names, from their IDs (projects/<p>/subscriptions/<name>).
  dead_letter_subscriptions = toset([
    for id in values(module.pubsub.dead_letter_hold_subscription_ids) : element(split("/", id), 3)
  ])
  thresholds = {
    predict_p99_seconds         = var.alert_predict_p99_seconds
    predict_error_share         = var.alert_predict_error_share
    fallback_share              = var.alert_fallback_share
    dead_letter_messages        = var.alert_dead_letter_messages
    accuracy_error_ratio        = var.alert_accuracy_error_ratio
    accuracy_floor              = var.alert_accuracy_floor
    drift_check_max_age_seconds = var.alert_drift_check_max_age_seconds
  }
  region                   = var.region
  reports_bucket_name      = "${var.project_id}-shopml-reports"
  report_retention_days    = var.drift_report_retention_days
  report_writers           = { for name in local.report_writers : name => module.iam.function_members[name] }
  email_addresses          = var.alert_email_addresses
  slack_channel_name       = var.alert_slack_channel
  slack_auth_token         = var.alert_slack_auth_token
  notification_channel_ids = var.alert_notification_channel_ids
  labels                   = local.labels

  depends_on = [google_project_service.this]
}
