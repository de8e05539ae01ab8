variable "project_id" {
  type        = string
  description = "ID of the Google Cloud project that holds the secrets."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID: 6-30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "secrets" {
  type = map(object({
    description = string
    accessors   = map(string)
  }))
  description = "Secrets to create, keyed by secret ID. accessors: the only members granted roles/secretmanager.secretAccessor on that secret, keyed by a static name (the function name), valued with the IAM member."

  validation {
    condition     = alltrue([for id in keys(var.secrets) : can(regex("^[A-Za-z0-9_-]{1,255}$", id))])
    error_message = "Secret IDs may use only letters, digits, hyphens and underscores."
  }

  validation {
    condition     = alltrue(flatten([for s in values(var.secrets) : [for m in values(s.accessors) : startswith(m, "serviceAccount:")]]))
    error_message = "Only service accounts may read shopml's secrets (members must start with serviceAccount:); never users, groups, allUsers or a domain."
  }
}

variable "secret_values_wo_version" {
  type        = map(number)
  description = "Secret IDs whose value Terraform writes, with a version number to bump for every new value. Empty by default: versions are added with `gcloud secrets versions add` and never touch Terraform."
  default     = {}

  validation {
    condition     = alltrue([for v in values(var.secret_values_wo_version) : v >= 1 && floor(v) == v])
    error_message = "Write-only version numbers are whole numbers starting at 1."
  }
}

variable "secret_values_wo" {
  type        = map(string)
  description = "Values for the secrets listed in secret_values_wo_version, keyed by secret ID. Ephemeral and write-only: sent to Secret Manager, never stored in plan or state."
  default     = {}
  sensitive   = true
  ephemeral   = true
}

variable "labels" {
  type        = map(string)
  description = "Labels put on every secret (app, environment, ...)."
}
