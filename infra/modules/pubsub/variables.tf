variable "project_id" {
  type        = string
  description = "ID of the Google Cloud project that holds the topics and subscriptions."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID: 6-30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "project_number" {
  type        = string
  description = "Number of the project; names the Pub/Sub service agent that dead-letters messages."

  validation {
    condition     = can(regex("^[0-9]+$", var.project_number))
    error_message = "project_number must be the numeric project number, not the project ID."
  }
}

variable "topics" {
  type = map(object({
    purpose   = string
    retention = string
  }))
  description = "Every topic of shared/topology.json, keyed by topic name: what it carries and its message retention (\"604800s\"). Retention lets a subscription created later seek back, so nothing published before its consumer exists is lost."

  validation {
    condition = alltrue([
      for t in values(var.topics) :
      can(regex("^[0-9]+s$", t.retention)) && try(tonumber(trimsuffix(t.retention, "s")) >= 600 && tonumber(trimsuffix(t.retention, "s")) <= 2678400, false)
    ])
    error_message = "Topic retention must be written in seconds (\"86400s\") and lie between 600s (10 minutes) and 2678400s (31 days), Pub/Sub's limits."
  }

  validation {
    condition     = alltrue([for name in keys(var.topics) : can(regex("^[a-z][a-z0-9-]{2,254}$", name))])
    error_message = "Topic names must be lowercase, start with a letter and use only letters, digits and hyphens."
  }
}

variable "subscriptions" {
  type = map(object({
    topic                 = string
    push_to               = string
    ack_deadline_seconds  = number
    max_delivery_attempts = number
    min_backoff           = string
    max_backoff           = string
    dead_letter_topic     = string
  }))
  description = "Push subscriptions of shared/topology.json to create, keyed by subscription name. Only those whose function is deployed: the push endpoint is that function's URL."

  validation {
    condition     = alltrue([for s in values(var.subscriptions) : s.max_delivery_attempts >= 5 && s.max_delivery_attempts <= 100])
    error_message = "max_delivery_attempts must be between 5 and 100 (Pub/Sub's limits for dead-letter policies)."
  }

  validation {
    condition     = alltrue([for s in values(var.subscriptions) : s.ack_deadline_seconds >= 10 && s.ack_deadline_seconds <= 600])
    error_message = "ack_deadline_seconds must be between 10 and 600."
  }

  validation {
    condition = alltrue([
      for s in values(var.subscriptions) :
      can(regex("^[0-9]+s$", s.min_backoff)) && can(regex("^[0-9]+s$", s.max_backoff)) &&
      try(tonumber(trimsuffix(s.min_backoff, "s")) <= tonumber(trimsuffix(s.max_backoff, "s")) && tonumber(trimsuffix(s.max_backoff, "s")) <= 600, false)
    ])
    error_message = "Backoffs must be written in seconds (\"10s\"), min_backoff <= max_backoff <= 600s."
  }

  validation {
    condition     = alltrue([for s in values(var.subscriptions) : s.topic != s.dead_letter_topic])
    error_message = "A subscription cannot dead-letter into the topic it reads."
  }
}

variable "dead_letter_topics" {
  type        = set(string)
  description = "Topics that receive dead letters (every dead_letter_topic of shared/topology.json, deployed consumer or not). Each gets the service agent's publisher grant and a pull subscription that holds its messages."

  validation {
    condition     = length(var.dead_letter_topics) > 0
    error_message = "At least one dead-letter topic is expected: every push subscription of shopml dead-letters."
  }
}

variable "push_endpoints" {
  type        = map(string)
  description = "Base HTTPS URL of each deployed function (its Cloud Run URI), keyed by function name. Push subscriptions post to <url>/projects/<project>/topics/<topic> and use the URL as OIDC audience."

  validation {
    condition     = alltrue([for url in values(var.push_endpoints) : startswith(url, "https://")])
    error_message = "Push endpoints must be https:// URLs."
  }
}

variable "push_service_account_email" {
  type        = string
  description = "Email of the service account whose OIDC token every push request carries (it holds roles/run.invoker on the Pub/Sub-triggered functions)."

  validation {
    condition     = can(regex("^[a-z0-9-]+@[a-z0-9-]+\\.iam\\.gserviceaccount\\.com$", var.push_service_account_email))
    error_message = "push_service_account_email must be a user-managed service account email."
  }
}

variable "dead_letter_hold_retention" {
  type        = string
  description = "How long the hold subscription of a dead-letter topic keeps an unacknowledged dead letter (seconds, max 604800s)."
  default     = "604800s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.dead_letter_hold_retention)) && try(tonumber(trimsuffix(var.dead_letter_hold_retention, "s")) >= 600 && tonumber(trimsuffix(var.dead_letter_hold_retention, "s")) <= 604800, false)
    error_message = "dead_letter_hold_retention must be between 600s and 604800s."
  }
}

variable "labels" {
  type        = map(string)
  description = "Labels put on every topic and subscription (app, environment, ...)."
}
