variable "project_id" {
  type        = string
  description = "ID of the Google Cloud project the functions run in."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID: 6-30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "region" {
  type        = string
  description = "Region of the functions, their source bucket and image repository (e.g. europe-west1)."

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a Google Cloud region such as europe-west1 or us-central1."
  }
}

variable "functions" {
  type = map(object({
    trigger         = string
    public          = bool
    public_reason   = optional(string, "")
    publishes       = list(string)
    memory          = string
    cpu             = string
    timeout_seconds = number
    min_instances   = number
    max_instances   = number
    concurrency     = number
  }))
  description = "Functions to deploy, keyed by function name (= folder under functions/ = entry point), with their settings from shared/topology.json."

  validation {
    condition     = alltrue([for f in values(var.functions) : contains(["http", "pubsub"], f.trigger)])
    error_message = "trigger must be \"http\" or \"pubsub\"."
  }

  validation {
    # A public function must say why; only HTTP functions may be public (Pub/Sub-triggered
    # ones are reached by push subscriptions, with an OIDC token, over internal ingress).
    condition     = alltrue([for f in values(var.functions) : !f.public || (f.trigger == "http" && length(trimspace(f.public_reason)) >= 20)])
    error_message = "A public function must have trigger \"http\" and a public_reason saying why it is reachable from the internet."
  }

  validation {
    condition     = alltrue([for f in values(var.functions) : can(regex("^[0-9]+(Mi|Gi)$", f.memory))])
    error_message = "memory must be written like \"256Mi\" or \"1Gi\"."
  }

  validation {
    condition = alltrue([
      for f in values(var.functions) :
      f.min_instances >= 0 && f.max_instances >= 1 && f.min_instances <= f.max_instances && f.concurrency >= 1 && f.concurrency <= 1000
    ])
    error_message = "Each function needs 0 <= min_instances <= max_instances, max_instances >= 1 and 1 <= concurrency <= 1000."
  }

  validation {
    condition     = alltrue([for f in values(var.functions) : f.timeout_seconds >= 1 && f.timeout_seconds <= 3600])
    error_message = "timeout_seconds must be between 1 and 3600 (the gen2 limit for HTTP functions)."
  }

  validation {
    condition     = alltrue([for name in keys(var.functions) : can(regex("^[a-z][a-z0-9_]{2,26}$", name))])
    error_message = "Function names must be snake_case, 3-27 characters (the service and account names derive from them)."
  }
}

variable "service_account_emails" {
  type        = map(string)
  description = "Runtime service account email of each function, keyed by function name (from the iam module)."
}

variable "builder_service_account_id" {
  type        = string
  description = "Fully qualified ID (projects/<p>/serviceAccounts/<email>) of the account that builds the function images."
}

variable "builder_service_account_email" {
  type        = string
  description = "Email of the account that builds the function images (read access to the source bucket, write access to the image repository)."
}

variable "invoker_service_account_email" {
  type        = string
  description = "Email of the push-invoker service account: the only identity granted roles/run.invoker on the Pub/Sub-triggered functions."
}

variable "topic_ids" {
  type        = map(string)
  description = "ID of every Pub/Sub topic, keyed by topic name (from the pubsub module); each function gets publisher on exactly the topics in its publishes."
}

variable "bundle_dir" {
  type        = string
  description = "Directory that holds one bundle directory per function (<bundle_dir>/<name>/: the function folder plus the shared/ files its import closure needs), produced by infra/scripts/bundle.py."
}

variable "source_bucket_name" {
  type        = string
  description = "Name of the bucket that stores the function source zips (globally unique)."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_.-]{1,61}[a-z0-9]$", var.source_bucket_name)) && !can(regex("google|^goog", var.source_bucket_name))
    error_message = "source_bucket_name must be a valid bucket name (3-63 lowercase characters) and must not contain \"google\"."
  }
}

variable "source_noncurrent_days" {
  type        = number
  description = "Days a replaced (noncurrent) source zip is kept before the bucket deletes it."
  default     = 30

  validation {
    condition     = var.source_noncurrent_days >= 1
    error_message = "source_noncurrent_days must be at least 1."
  }
}

variable "artifact_repository_id" {
  type        = string
  description = "ID of the Artifact Registry repository that stores the function images."
  default     = "shopml-functions"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,61}[a-z0-9]$", var.artifact_repository_id))
    error_message = "artifact_repository_id must be lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "runtime" {
  type        = string
  description = "Cloud Functions runtime of every function."
  default     = "python311"

  validation {
    condition     = can(regex("^python3[0-9]{2}$", var.runtime))
    error_message = "runtime must be a Python runtime such as python311 (shopml targets Python 3.11)."
  }
}

variable "warehouse_dataset" {
  type        = string
  description = "BigQuery dataset the functions read and write; becomes SHOPML_WAREHOUSE=bigquery://<project>/<dataset>."

  validation {
    condition     = can(regex("^[A-Za-z0-9_]{1,1024}$", var.warehouse_dataset))
    error_message = "warehouse_dataset must be a BigQuery dataset ID (letters, digits, underscores)."
  }
}

variable "extra_environment_variables" {
  type        = map(string)
  description = "Further environment variables for every function (e.g. SHOPML_LOG_LEVEL). Cannot override the ones this module sets."
  default     = {}

  validation {
    condition     = length(setintersection(keys(var.extra_environment_variables), ["GOOGLE_CLOUD_PROJECT", "SHOPML_WAREHOUSE", "SHOPML_TOPIC_PREFIX"])) == 0
    error_message = "GOOGLE_CLOUD_PROJECT, SHOPML_WAREHOUSE and SHOPML_TOPIC_PREFIX are set by the module."
  }
}

variable "function_environment_variables" {
  type        = map(map(string))
  description = "Environment variables for single functions: function name => { VAR => value } (e.g. SHOPML_FEATURE_SERVER_URL for validate_load). Merged over extra_environment_variables; cannot override the ones this module sets."
  default     = {}

  validation {
    condition     = alltrue([for name in keys(var.function_environment_variables) : contains(keys(var.functions), name)])
    error_message = "function_environment_variables names a function that is not deployed."
  }

  validation {
    condition = alltrue([
      for vars in values(var.function_environment_variables) :
      length(setintersection(keys(vars), ["GOOGLE_CLOUD_PROJECT", "SHOPML_WAREHOUSE", "SHOPML_TOPIC_PREFIX"])) == 0
    ])
    error_message = "GOOGLE_CLOUD_PROJECT, SHOPML_WAREHOUSE and SHOPML_TOPIC_PREFIX are set by the module."
  }
}

variable "secret_environment_variables" {
  type        = map(map(string))
  description = "Secret Manager secrets exposed as environment variables: function name => { ENV_VAR => secret ID }. The function's account must already hold secretAccessor on the secret (the secrets module grants it)."
  default     = {}

  validation {
    condition     = alltrue([for name in keys(var.secret_environment_variables) : contains(keys(var.functions), name)])
    error_message = "secret_environment_variables names a function that is not deployed."
  }
}

variable "vpc_egress" {
  type = map(object({
    connector       = string
    egress_settings = optional(string, "ALL_TRAFFIC")
  }))
  description = "VPC egress for single functions: function name => { connector = Serverless VPC Access connector ID, egress_settings = ALL_TRAFFIC (default) or PRIVATE_RANGES_ONLY }. ALL_TRAFFIC is what Cloud Run internal ingress (the feature server) requires of a caller. Functions not listed keep no VPC egress."
  default     = {}

  validation {
    condition     = alltrue([for name in keys(var.vpc_egress) : contains(keys(var.functions), name)])
    error_message = "vpc_egress names a function that is not deployed."
  }

  validation {
    condition     = alltrue([for egress in values(var.vpc_egress) : contains(["ALL_TRAFFIC", "PRIVATE_RANGES_ONLY"], egress.egress_settings)])
    error_message = "vpc_egress egress_settings must be ALL_TRAFFIC or PRIVATE_RANGES_ONLY."
  }

  validation {
    # A connector serves functions of its own region only.
    condition = alltrue([
      for egress in values(var.vpc_egress) :
      can(regex("^projects/[^/]+/locations/[a-z]+-[a-z]+[0-9]/connectors/[a-z][-a-z0-9]{0,23}[a-z0-9]$", egress.connector)) && try(split("/", egress.connector)[3] == var.region, false)
    ])
    error_message = "vpc_egress connector must be the ID of a connector in the functions' region: projects/<p>/locations/<region>/connectors/<name>."
  }
}

variable "labels" {
  type        = map(string)
  description = "Labels put on every function, bucket and repository (app, environment, ...)."
}
