variable "project_id" {
  type        = string
  description = "Project that owns the dataset."
}

variable "location" {
  type        = string
  description = "BigQuery location of the dataset (e.g. EU, US, europe-west1). Choose where the merchants' data may live."
}

variable "dataset_id" {
  type        = string
  description = "Dataset holding every shopml table and view."

  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_]{0,1023}$", var.dataset_id))
    error_message = "dataset_id may contain letters, digits and underscores only, and must not start with a digit."
  }
}

variable "tables" {
  type = map(object({
    description = string
    schema      = any
    clustering  = optional(list(string), [])
    time_partitioning = optional(object({
      type            = string
      field           = optional(string)
      expiration_days = optional(number)
    }))
  }))
  description = "Tables keyed by name, decoded from shared/schemas/tables/*.json (the files the code reads too)."
}

variable "writers" {
  type        = map(string)
  description = "IAM members (serviceAccount:...) granted roles/bigquery.dataEditor on the dataset, keyed by function name."
  default     = {}
}

variable "readers" {
  type        = map(string)
  description = "IAM members granted roles/bigquery.dataViewer on the dataset, keyed by function name."
  default     = {}
}

variable "job_users" {
  type        = map(string)
  description = "IAM members granted roles/bigquery.jobUser on the project (they run query jobs; the data they may touch is the dataset grant), keyed by function name."
  default     = {}

  validation {
    condition     = alltrue([for member in values(var.job_users) : can(regex("^serviceAccount:", member))])
    error_message = "job_users takes service accounts only (serviceAccount:...)."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse to destroy tables with data (keep true in production: the raw landing table is the system of record)."
  default     = true
}

variable "labels" {
  type        = map(string)
  description = "Labels on the dataset and every table."
  default     = {}
}
