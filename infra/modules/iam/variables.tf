variable "project_id" {
  type        = string
  description = "ID of the Google Cloud project that holds shopml."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID: 6-30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "project_number" {
  type        = string
  description = "Number of the project; names the Pub/Sub service agent (service-<number>@gcp-sa-pubsub.iam.gserviceaccount.com)."

  validation {
    condition     = can(regex("^[0-9]+$", var.project_number))
    error_message = "project_number must be the numeric project number, not the project ID."
  }
}

variable "function_names" {
  type        = set(string)
  description = "Names of the functions to create a runtime service account for (keys of shared/topology.json \"functions\")."

  validation {
    # The account ID is "fn-" + the name with hyphens; service account IDs are 6-30 characters.
    condition     = alltrue([for name in var.function_names : can(regex("^[a-z][a-z0-9_]{2,26}$", name))])
    error_message = "Function names must be snake_case, start with a letter and be 3-27 characters long (the service account ID is fn-<name>)."
  }
}

variable "deployer_members" {
  type        = set(string)
  description = "IAM members (e.g. serviceAccount:<cloud-build-sa>) that deploy the functions and therefore need roles/iam.serviceAccountUser on the runtime and build service accounts (granted on each account, not project-wide)."
  default     = []

  validation {
    condition     = alltrue([for m in var.deployer_members : can(regex("^(serviceAccount|user|group):[^@]+@[^@]+$", m))])
    error_message = "deployer_members must be IAM members such as serviceAccount:name@project.iam.gserviceaccount.com."
  }
}
