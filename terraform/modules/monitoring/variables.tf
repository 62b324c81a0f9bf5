variable "project_id" {
  description = "Project whose pipeline is watched."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid GCP project id."
  }
}

variable "notification_channels" {
  description = "Monitoring notification channel ids that receive the alerts."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for c in var.notification_channels : can(regex("^projects/.+/notificationChannels/.+$", c))])
    error_message = "notification_channels must be full channel names."
  }
}

variable "runbook_base_url" {
  description = "Where docs/runbooks/ is browsable (each alert links its runbook)."
  type        = string
  validation {
    condition     = can(regex("^https://", var.runbook_base_url))
    error_message = "runbook_base_url must be an https URL."
  }
}

variable "names" {
  description = "What to watch: the subscriptions and the Cloud Run services of ingest and sink."
  type = object({
    sink_subscription = string
    dlq_subscription  = string
    ingest_service    = string
    sink_service      = string
  })
  validation {
    condition     = alltrue([for v in values(var.names) : length(v) > 0])
    error_message = "every name must be set."
  }
}

variable "thresholds" {
  description = "Alert thresholds."
  type = object({
    oldest_unacked_s = optional(number, 600)
    ingest_5xx_per_s = optional(number, 0.5)
    sink_5xx_per_s   = optional(number, 1)
  })
  default = {}
  validation {
    condition     = var.thresholds.oldest_unacked_s > 0 && var.thresholds.ingest_5xx_per_s > 0 && var.thresholds.sink_5xx_per_s > 0
    error_message = "thresholds must be positive."
  }
}
