variable "project_id" {
  type        = string
  description = "ID of the Google Cloud project that runs Vertex AI training."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID: 6-30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "region" {
  type        = string
  description = "Vertex AI region of the jobs and models; the bucket and the image repository live there too."

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a Google Cloud region such as europe-west1 or us-central1."
  }
}

variable "bucket_name" {
  type        = string
  description = "Name of the bucket for Vertex job outputs and registered model files (SHOPML_VERTEX_STAGING_BUCKET=gs://<this>)."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_.-]{1,61}[a-z0-9]$", var.bucket_name)) && !can(regex("google|^goog", var.bucket_name))
    error_message = "bucket_name must be a valid bucket name (3-63 lowercase characters) and must not contain \"google\"."
  }
}

variable "repository_id" {
  type        = string
  description = "ID of the Artifact Registry repository of the trainer image."
  default     = "shopml-trainer"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,61}[a-z0-9]$", var.repository_id))
    error_message = "repository_id must be lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "trainer_account_id" {
  type        = string
  description = "Account ID (the part before @) of the trainer's service account."
  default     = "shopml-trainer"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.trainer_account_id))
    error_message = "trainer_account_id must be 6-30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "launchers" {
  type        = map(string)
  description = "Runtime account emails of the functions that submit training jobs (trigger_training), keyed by function name: they may create CustomJobs and act as the trainer, nothing more."
  default     = {}

  validation {
    condition     = alltrue([for email in values(var.launchers) : can(regex("^[^@]+@[^@]+\\.iam\\.gserviceaccount\\.com$", email))])
    error_message = "launchers must map function names to service account emails."
  }
}

variable "model_events_topic_id" {
  type        = string
  description = "ID (projects/<p>/topics/model-events) of the topic the trainer announces registered versions on."

  validation {
    condition     = can(regex("^projects/[^/]+/topics/[^/]+$", var.model_events_topic_id))
    error_message = "model_events_topic_id must look like projects/<project>/topics/<topic>."
  }
}

variable "noncurrent_days" {
  type        = number
  description = "Days an overwritten or deleted object generation is kept before the bucket deletes it."
  default     = 90

  validation {
    condition     = var.noncurrent_days >= 1
    error_message = "noncurrent_days must be at least 1."
  }
}

variable "training_output_days" {
  type        = number
  description = "Days Vertex job outputs under training/ are kept (registered models under registry/ are kept)."
  default     = 30

  validation {
    condition     = var.training_output_days >= 1
    error_message = "training_output_days must be at least 1."
  }
}

variable "labels" {
  type        = map(string)
  description = "Labels put on the bucket and the repository (app, environment, ...)."
}
