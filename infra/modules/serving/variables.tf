variable "project_id" {
  type        = string
  description = "ID of the Google Cloud project that serves the models."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID: 6-30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "database_name" {
  type        = string
  description = "Firestore database of the live pointers: (default) or a named database (SHOPML_FIRESTORE_DATABASE)."
  default     = "(default)"

  validation {
    condition     = var.database_name == "(default)" || can(regex("^[a-z][a-z0-9-]{2,61}[a-z0-9]$", var.database_name))
    error_message = "database_name must be (default) or 4-63 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "location" {
  type        = string
  description = "Firestore location: a multi-region (eur3, nam5) or a region (europe-west1). Cannot change once the database exists."

  validation {
    condition     = can(regex("^(eur3|nam5|nam7|[a-z]+-[a-z]+[0-9])$", var.location))
    error_message = "location must be a Firestore multi-region (eur3, nam5, nam7) or a region such as europe-west1."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse to delete the database (and abandon it on terraform destroy). Keep true outside throw-away environments."
  default     = true
}

variable "pointer_readers" {
  type        = map(string)
  description = "IAM members (serviceAccount:...) that follow the live pointer (read and listen): roles/datastore.viewer, keyed by function name."
  default     = {}

  validation {
    condition     = alltrue([for member in values(var.pointer_readers) : startswith(member, "serviceAccount:")])
    error_message = "pointer_readers takes service accounts only (serviceAccount:...)."
  }
}

variable "pointer_writers" {
  type        = map(string)
  description = "IAM members (serviceAccount:...) that change the live pointer in transactions: roles/datastore.user, keyed by function name."
  default     = {}

  validation {
    condition     = alltrue([for member in values(var.pointer_writers) : startswith(member, "serviceAccount:")])
    error_message = "pointer_writers takes service accounts only (serviceAccount:...)."
  }
}

variable "registry_bucket" {
  type        = string
  description = "Bucket holding the registered model files (the Vertex bucket; model files under <registry_prefix>/<model>/<version>/)."
}

variable "registry_prefix" {
  type        = string
  description = "Folder of the registered versions in registry_bucket (shared/serving/slots.py: model_files_url)."
  default     = "registry"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_-]*$", var.registry_prefix))
    error_message = "registry_prefix must be a single folder name (no slashes)."
  }
}

variable "registry_readers" {
  type        = map(string)
  description = "IAM members that read the registered model files and cards (objectViewer limited to registry_prefix/ by a condition), keyed by function name."
  default     = {}

  validation {
    condition     = alltrue([for member in values(var.registry_readers) : startswith(member, "serviceAccount:")])
    error_message = "registry_readers takes service accounts only (serviceAccount:...)."
  }
}

variable "alias_movers" {
  type        = map(string)
  description = "IAM members that move Vertex AI Model Registry aliases (live, previous): roles/aiplatform.user on the project, keyed by function name."
  default     = {}

  validation {
    condition     = alltrue([for member in values(var.alias_movers) : startswith(member, "serviceAccount:")])
    error_message = "alias_movers takes service accounts only (serviceAccount:...)."
  }
}

variable "metric_writers" {
  type        = map(string)
  description = "IAM members that push metrics to Cloud Monitoring (predict, OTLP to the Telemetry API): roles/monitoring.metricWriter on the project, keyed by function name."
  default     = {}

  validation {
    condition     = alltrue([for member in values(var.metric_writers) : startswith(member, "serviceAccount:")])
    error_message = "metric_writers takes service accounts only (serviceAccount:...)."
  }
}
