# Cloud Functions gen2 of shopml: one per entry in var.functions (the root passes the functions
# of shared/topology.json whose functions/<name>/main.py exists), each with its own runtime
# service account, deployed from a content-addressed source zip.
#
# None has an event_trigger: the Pub/Sub-triggered ones are reached by the push subscriptions
# that the pubsub module owns (see the design note there), so they are HTTP services that only
# the push-invoker account may call, over internal ingress (Pub/Sub push counts as internal
# traffic for Cloud Run ingress).

locals {
  # Settings the code reads (shared/settings.py). The topic prefix exists for local runs only.
  runtime_environment = merge(var.extra_environment_variables, {
    GOOGLE_CLOUD_PROJECT = var.project_id
    SHOPML_WAREHOUSE     = "bigquery://${var.project_id}/${var.warehouse_dataset}"
    SHOPML_TOPIC_PREFIX  = ""
  })

  # One publisher grant per (function, topic it publishes to), keyed "<function>/<topic>".
  publisher_grants = {
    for grant in flatten([
      for name, fn in var.functions : [
        for topic in fn.publishes : { key = "${name}/${topic}", function = name, topic = topic }
      ]
    ]) : grant.key => grant
  }

  # functions-framework serves an entry point decorated @functions_framework.aio.http (or
  # .aio.cloud_event) with Starlette under uvicorn. The `functions-framework` command that Cloud
  # Run functions' Python buildpack starts finds that out by itself, but only after building a
  # Flask app that it then drops; FUNCTION_USE_ASGI=true (its --asgi switch) builds the ASGI app
  # straight away. So every function whose bundled main.py is async gets it (ingest_webhook,
  # predict), read from the code that is deployed; the local stack serves the same ones the same
  # way (devkit/local/stack.py ASGI_FUNCTIONS). tests/infra/test_functions_asgi.py holds both to
  # the code.
  asgi_environment = {
    for name in keys(var.functions) : name => { FUNCTION_USE_ASGI = "true" }
    if fileexists("${var.bundle_dir}/${name}/main.py") ? length(regexall("(?m)^@functions_framework\\.aio\\.(http|cloud_event)\\b", file("${var.bundle_dir}/${name}/main.py"))) > 0 : false
  }

  pubsub_functions = { for name, fn in var.functions : name => fn if fn.trigger == "pubsub" }
  public_functions = { for name, fn in var.functions : name => fn if fn.public }
}

# --- source: content-addressed zips -------------------------------------------------------

resource "google_storage_bucket" "source" {
  #checkov:skip=CKV_GCP_62:Holds only function source zips; Terraform writes and only gcf-builder reads. Audit object reads with Cloud Audit Logs (Data Access for storage) instead of legacy usage logs in a second bucket.
  project                     = var.project_id
  name                        = var.source_bucket_name
  location                    = upper(var.region)
  labels                      = var.labels
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  # Objects are named by content hash, so a code change creates a new object and Terraform
  # deletes the old one; keep the deleted (noncurrent) generation a while for forensics.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.source_noncurrent_days
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket_iam_member" "builder_reads_source" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${var.builder_service_account_email}"
}

# archive_file zeroes timestamps, and infra/scripts/bundle.py normalises file modes, so the zip's
# md5 changes only when a file's content does.
data "archive_file" "source" {
  for_each = var.functions

  type        = "zip"
  source_dir  = "${var.bundle_dir}/${each.key}"
  output_path = "${var.bundle_dir}/${each.key}.zip"

  lifecycle {
    precondition {
      condition     = fileexists("${var.bundle_dir}/${each.key}/main.py") && fileexists("${var.bundle_dir}/${each.key}/requirements.txt")
      error_message = "No bundle for ${each.key} in ${var.bundle_dir}: run `python3 infra/scripts/bundle.py` before terraform plan."
    }
  }
}

resource "google_storage_bucket_object" "source" {
  for_each = var.functions

  # The content hash in the name is what makes only changed functions redeploy.
  name         = "${each.key}/${data.archive_file.source[each.key].output_md5}.zip"
  bucket       = google_storage_bucket.source.name
  source       = data.archive_file.source[each.key].output_path
  content_type = "application/zip"
}

# --- images ---------------------------------------------------------------------------

# A repository of our own (rather than the default gcf-artifacts) so that the builder's write
# access is granted on this repository only. No cleanup policy: a live revision's instances
# start from its image, deleting an old image could break a rollback to that revision.
resource "google_artifact_registry_repository" "functions" {
  #checkov:skip=CKV_GCP_84:Images hold only function code and pinned dependencies, no data or secrets (those come from Secret Manager at run time); Google-managed encryption at rest until shopml runs a Cloud KMS key ring.
  project       = var.project_id
  location      = var.region
  repository_id = var.artifact_repository_id
  description   = "Container images of shopml's Cloud Functions (built by Cloud Functions' build)."
  format        = "DOCKER"
  labels        = var.labels
}

resource "google_artifact_registry_repository_iam_member" "builder_writes_images" {
  project    = var.project_id
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${var.builder_service_account_email}"
}

# --- functions ------------------------------------------------------------------------

resource "google_cloudfunctions2_function" "this" {
  for_each = var.functions
  #checkov:skip=CKV_GCP_124:ALLOW_ALL only for functions marked public in shared/topology.json (Shopify webhooks, storefront inference: callers on the internet, authenticated in code); every other function gets ALLOW_INTERNAL_ONLY. tests/infra holds the expression to that.

  project  = var.project_id
  location = var.region
  name     = replace(each.key, "_", "-")
  # A public function carries the reason it is public (topology.json public_reason).
  description = each.value.public ? "shopml ${each.key}. PUBLIC: ${each.value.public_reason}" : "shopml ${each.key}. Internal: invoked only by Pub/Sub push as pubsub-push-invoker."
  labels = merge(var.labels, {
    function = replace(each.key, "_", "-")
    trigger  = each.value.trigger
    access   = each.value.public ? "public" : "internal"
  })

  build_config {
    runtime           = var.runtime
    entry_point       = each.key
    service_account   = var.builder_service_account_id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source[each.key].name
      }
    }
  }

  # CPU allocation: request-based for every function, predict included. Cloud Run may give an
  # instance no CPU between requests, even a min instance (predict keeps min_instances >= 1 for its
  # cold start, not for background work), and google_cloudfunctions2_function (provider 6.41.0)
  # has no always-allocated CPU setting. So predict's guarantee is the per-request check: a
  # request whose instance's copy of the live pointer is older than SHOPML_POINTER_MAX_AGE_SECONDS
  # re-reads it before answering; the Firestore snapshot listener only makes a flip arrive sooner
  # while the instance happens to have CPU (docs/DESIGN.md, "Serving and blue-green").
  service_config {
    service_account_email            = var.service_account_emails[each.key]
    available_memory                 = each.value.memory
    available_cpu                    = each.value.cpu
    timeout_seconds                  = each.value.timeout_seconds
    min_instance_count               = each.value.min_instances
    max_instance_count               = each.value.max_instances
    max_instance_request_concurrency = each.value.concurrency
    all_traffic_on_latest_revision   = true
    # Public (HTTP) functions take internet traffic and authenticate callers themselves
    # (HMAC, API key); everything else is reachable from inside the project only.
    ingress_settings = each.value.public ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY"
    # Every function's settings, FUNCTION_USE_ASGI for the async ones, plus its own
    # (function_environment_variables); neither may override what the module sets (validated on
    # the variables).
    environment_variables = merge(local.runtime_environment, lookup(local.asgi_environment, each.key, {}), lookup(var.function_environment_variables, each.key, {}))

    # VPC egress only for the functions listed in var.vpc_egress (those that call the feature
    # server, which has internal ingress); for every other function both stay unset (null), so
    # their egress is unchanged: straight to the internet and Google APIs.
    vpc_connector                 = contains(keys(var.vpc_egress), each.key) ? var.vpc_egress[each.key].connector : null
    vpc_connector_egress_settings = contains(keys(var.vpc_egress), each.key) ? var.vpc_egress[each.key].egress_settings : null

    # "latest" is resolved when an instance starts; rotation is described in infra/README.md.
    dynamic "secret_environment_variables" {
      for_each = lookup(var.secret_environment_variables, each.key, {})
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }
  }

  depends_on = [
    google_storage_bucket_iam_member.builder_reads_source,
    google_artifact_registry_repository_iam_member.builder_writes_images,
  ]
}

# --- who may call what -------------------------------------------------------------------

# Gen2 functions are Cloud Run services: invocation is roles/run.invoker on the service.
resource "google_cloud_run_v2_service_iam_member" "push_invoker" {
  for_each = local.pubsub_functions

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.this[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${var.invoker_service_account_email}"
}

resource "google_cloud_run_v2_service_iam_member" "public_invoker" {
  for_each = local.public_functions

  # allUsers only on functions marked public in shared/topology.json; each says why in its
  # public_reason (carried in the function's description) and authenticates every request in
  # code (HMAC for webhooks, API key for the storefront).

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.this[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# --- what each function may publish ----------------------------------------------------------

resource "google_pubsub_topic_iam_member" "publisher" {
  for_each = local.publisher_grants

  project = var.project_id
  topic   = var.topic_ids[each.value.topic]
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${var.service_account_emails[each.value.function]}"
}
