variable "project_id" {
  type        = string
  description = "ID of the Google Cloud project that runs the scheduler jobs."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID: 6-30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "region" {
  type        = string
  description = "Cloud Scheduler location of the jobs (e.g. europe-west1)."

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a Google Cloud region such as europe-west1 or us-central1."
  }
}

variable "jobs" {
  type = map(object({
    description = string
    schedule    = string
    time_zone   = string
    topic_id    = string
    message     = any
    attributes  = optional(map(string), {})
    paused      = optional(bool, false)
  }))
  description = "Scheduler jobs keyed by job name: a unix-cron schedule in an IANA time zone, the topic ID to publish to, and the message (JSON-encoded as the data) with its attributes."

  validation {
    condition     = alltrue([for name in keys(var.jobs) : can(regex("^[a-z][a-z0-9-]{0,62}$", name))])
    error_message = "Job names must be lowercase letters, digits and hyphens, starting with a letter."
  }

  validation {
    # Five unix-cron fields (minute hour day-of-month month day-of-week).
    condition     = alltrue([for job in values(var.jobs) : can(regex("^\\S+\\s+\\S+\\s+\\S+\\s+\\S+\\s+\\S+$", trimspace(job.schedule)))])
    error_message = "schedule must be a unix-cron expression with five fields, e.g. \"0 2 * * *\"."
  }

  validation {
    condition     = alltrue([for job in values(var.jobs) : can(regex("^(UTC|Etc/[A-Za-z0-9+-]+|[A-Z][A-Za-z_]+(/[A-Za-z0-9_+-]+){1,2})$", job.time_zone))])
    error_message = "time_zone must be an IANA time zone such as UTC or Europe/Berlin."
  }

  validation {
    condition     = alltrue([for job in values(var.jobs) : can(regex("^projects/[^/]+/topics/[^/]+$", job.topic_id))])
    error_message = "topic_id must look like projects/<project>/topics/<topic>."
  }
}
