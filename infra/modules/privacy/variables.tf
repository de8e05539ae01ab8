variable "project_id" {
  type        = string
  description = "Project that holds the export bucket."
}

variable "region" {
  type        = string
  description = "Region of the export bucket (the functions' region)."
}

variable "bucket_name" {
  type        = string
  description = "Name of the bucket that holds customers/data_request exports (globally unique)."
}

variable "export_retention_days" {
  type        = number
  description = "Days an export is kept before the lifecycle rule deletes it (the merchant has this long to fetch it)."
  default     = 30

  validation {
    condition     = var.export_retention_days >= 1 && var.export_retention_days <= 90
    error_message = "export_retention_days must be between 1 and 90: an export is one customer's data in clear."
  }
}

variable "exporters" {
  type        = map(string)
  description = "Members (serviceAccount:...) that write and delete exports and drop dead letters, keyed by function name: the compliance function."
  default     = {}
}

variable "dead_letter_subscriptions" {
  type        = map(string)
  description = "Dead-letter hold subscription IDs (projects/<p>/subscriptions/<name>), keyed by dead-letter topic."
  default     = {}
}

variable "labels" {
  type        = map(string)
  description = "Labels on the bucket."
  default     = {}
}
