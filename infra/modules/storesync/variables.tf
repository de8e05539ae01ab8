variable "project_id" {
  type        = string
  description = "GCP project of the bucket and the grant."
}

variable "region" {
  type        = string
  description = "Location of the sync-state bucket."
}

variable "bucket_name" {
  type        = string
  description = "Name of the sync-state bucket (reconcile's watermarks, uninstalled shops, backfill progress)."
}

variable "labels" {
  type        = map(string)
  description = "Labels of the bucket."
  default     = {}
}

variable "noncurrent_retention_days" {
  type        = number
  description = "Days an overwritten sync-state document is kept before it is deleted."
  default     = 30

  validation {
    condition     = var.noncurrent_retention_days >= 1
    error_message = "noncurrent_retention_days must be at least 1."
  }
}

variable "state_writers" {
  type        = map(string)
  description = "name => IAM member that reads and replaces the sync-state documents (the reconcile function)."
  default     = {}

  validation {
    condition     = alltrue([for member in values(var.state_writers) : can(regex("^serviceAccount:", member))])
    error_message = "state_writers must be service accounts (serviceAccount:...)."
  }
}

variable "delivery_topic_id" {
  type        = string
  description = "The shopify-events topic (projects/P/topics/T) Shopify publishes to when Pub/Sub delivery is on."
}

variable "shopify_pubsub_delivery" {
  type        = bool
  description = "Grant Shopify's delivery service account publisher on the shopify-events topic (shopml connect --pubsub)."
  default     = false
}

variable "shopify_delivery_service_account" {
  type        = string
  description = "Shopify's Pub/Sub delivery service account (shown in the Partner Dashboard)."
  default     = "delivery@shopify-pubsub-webhooks.iam.gserviceaccount.com"

  validation {
    condition     = can(regex("^[a-z0-9-]+@[a-z0-9.-]+\\.iam\\.gserviceaccount\\.com$", var.shopify_delivery_service_account))
    error_message = "shopify_delivery_service_account must be a service account e-mail address."
  }
}

variable "shops" {
  type        = set(string)
  description = "Connected shops (x.myshopify.com, lower case): one access-token secret each."
  default     = []

  validation {
    condition     = alltrue([for shop in var.shops : can(regex("^[a-z0-9][a-z0-9-]*\\.myshopify\\.com$", shop))])
    error_message = "shops must be lower-case *.myshopify.com domains."
  }
}

variable "token_readers" {
  type        = map(string)
  description = "name => IAM member that reads every shop's access token (the reconcile function)."
  default     = {}

  validation {
    condition     = alltrue([for member in values(var.token_readers) : can(regex("^serviceAccount:", member))])
    error_message = "token_readers must be service accounts (serviceAccount:...)."
  }
}
