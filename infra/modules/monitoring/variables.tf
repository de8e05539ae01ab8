variable "project_id" {
  type        = string
  description = "ID of the Google Cloud project whose metrics the alert policies watch."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID: 6-30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "predict_service_name" {
  type        = string
  description = "Cloud Run service name of the predict function (a Cloud Functions 2nd gen function runs as the Cloud Run service of its name)."
  default     = "predict"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,48}[a-z0-9]$", var.predict_service_name))
    error_message = "predict_service_name must be a Cloud Run service name (lowercase letters, digits, hyphens)."
  }
}

variable "dead_letter_subscriptions" {
  type        = set(string)
  description = "Names (not IDs) of the pull subscriptions that hold the dead-letter topics' messages (<dead-letter topic>-hold); any undelivered message on them alerts."

  validation {
    condition     = alltrue([for name in var.dead_letter_subscriptions : can(regex("^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$", name))])
    error_message = "dead_letter_subscriptions must list subscription names such as pipeline-dlq-hold, not projects/.../subscriptions/... IDs."
  }
}

variable "thresholds" {
  type = object({
    predict_p99_seconds         = number
    predict_error_share         = number
    fallback_share              = number
    dead_letter_messages        = number
    accuracy_error_ratio        = number
    accuracy_floor              = number
    drift_check_max_age_seconds = number
  })
  description = "Alert thresholds, the same as in infra/monitoring/prometheus/shopml-rules.yml: predict p99 latency budget (s), share of predict answers that are 5xx, share of items answered with a fallback, dead-lettered messages tolerated, live WAPE / card holdout WAPE, shop-week accuracy floor (1 - WAPE), age of the latest drift check (s)."

  validation {
    condition = alltrue([
      var.thresholds.predict_p99_seconds > 0,
      var.thresholds.predict_error_share > 0 && var.thresholds.predict_error_share < 1,
      var.thresholds.fallback_share > 0 && var.thresholds.fallback_share < 1,
      var.thresholds.dead_letter_messages >= 0,
      var.thresholds.accuracy_error_ratio >= 1,
      var.thresholds.accuracy_floor > 0 && var.thresholds.accuracy_floor < 1,
      var.thresholds.drift_check_max_age_seconds >= 3600,
    ])
    error_message = "thresholds: p99 > 0 s; error and fallback shares and the accuracy floor between 0 and 1; dead letters >= 0; the error ratio >= 1; the drift check age at least one hour (checks run hourly)."
  }
}

variable "email_addresses" {
  type        = set(string)
  description = "Email addresses notified of every alert (one Cloud Monitoring email channel each). Empty: no email channel."
  default     = []

  validation {
    condition     = alltrue([for address in var.email_addresses : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", address))])
    error_message = "email_addresses must be email addresses."
  }
}

variable "slack_channel_name" {
  type        = string
  description = "Slack channel (e.g. #shopml-alerts) notified of every alert through Cloud Monitoring's Slack channel type. Empty (default): no Slack channel from Terraform."
  default     = ""

  validation {
    condition     = var.slack_channel_name == "" || can(regex("^#[a-z0-9_-]{1,80}$", var.slack_channel_name))
    error_message = "slack_channel_name must be empty or a Slack channel name such as #shopml-alerts."
  }
}

variable "slack_auth_token" {
  type        = string
  description = "OAuth token of the Slack app Cloud Monitoring posts as (xoxb-...), required when slack_channel_name is set. It is kept in the Terraform state (the provider has no write-only form for it): pass it as TF_VAR_slack_auth_token, or create the Slack channel in the console and list it in notification_channel_ids instead."
  default     = null
  sensitive   = true
}

variable "notification_channel_ids" {
  type        = set(string)
  description = "Existing notification channels (projects/<p>/notificationChannels/<id>) notified of every alert, e.g. a Slack channel created in the console."
  default     = []

  validation {
    condition     = alltrue([for id in var.notification_channel_ids : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", id))])
    error_message = "notification_channel_ids must be IDs such as projects/<project>/notificationChannels/<id>."
  }
}

variable "labels" {
  type        = map(string)
  description = "User labels on every alert policy and notification channel."
  default     = {}
}

variable "region" {
  type        = string
  description = "Region of the drift-reports bucket."
}

variable "reports_bucket_name" {
  type        = string
  description = "Name of the bucket drift_monitor writes its HTML drift reports to (SHOPML_REPORTS)."
}

variable "report_retention_days" {
  type        = number
  description = "Days a drift report is kept before the bucket's lifecycle rule deletes it."
  default     = 400

  validation {
    condition     = var.report_retention_days >= 1
    error_message = "report_retention_days must be at least 1."
  }
}

variable "report_writers" {
  type        = map(string)
  description = "IAM members that write drift reports (roles/storage.objectCreator on the bucket), keyed by function name."
  default     = {}
}
