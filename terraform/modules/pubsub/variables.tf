variable "project_id" {
  description = "Project that hosts the topics and subscriptions."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid GCP project id."
  }
}

variable "names" {
  description = "Resource names; the defaults are the contract of shared/names.py."
  type = object({
    events_topic      = optional(string, "telemetry-events")
    sink_subscription = optional(string, "telemetry-events-sink")
    dlq_topic         = optional(string, "telemetry-events-dlq")
    dlq_subscription  = optional(string, "telemetry-events-dlq-hold")
    alerts_topic      = optional(string, "telemetry-alerts")
  })
  default = {}
  validation {
    condition     = alltrue([for n in values(var.names) : can(regex("^[a-zA-Z][a-zA-Z0-9._~%+-]{2,254}$", n))])
    error_message = "Pub/Sub names must start with a letter, 3-255 characters."
  }
}

variable "push_endpoint" {
  description = "HTTPS URL the sink subscription pushes to (the sink function's URI)."
  type        = string
  validation {
    condition     = can(regex("^https://", var.push_endpoint))
    error_message = "push_endpoint must be an https URL."
  }
}

variable "push_service_account_email" {
  description = "Service account whose OIDC token authenticates pushes (the only invoker of the sink)."
  type        = string
  validation {
    condition     = can(regex("@", var.push_service_account_email))
    error_message = "push_service_account_email must be an email."
  }
}

variable "max_delivery_attempts" {
  description = "Deliveries before Pub/Sub dead-letters a message (5-100). The sink dead-letters poison messages itself, so this only has to outlast outages: 100 attempts with the 10-600 s backoff span about 15.7 hours."
  type        = number
  default     = 100
  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be between 5 and 100."
  }
}

variable "retry_backoff" {
  description = "Redelivery backoff of the sink subscription (durations like 10s)."
  type = object({
    minimum = optional(string, "10s")
    maximum = optional(string, "600s")
  })
  default = {}
  validation {
    condition     = can(regex("^[0-9]+s$", var.retry_backoff.minimum)) && can(regex("^[0-9]+s$", var.retry_backoff.maximum))
    error_message = "backoffs are durations in seconds, like 10s."
  }
}

variable "publishers" {
  description = "Members allowed to publish to the events topic (ingest, backends)."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for m in var.publishers : can(regex("^(serviceAccount|group):", m))])
    error_message = "publishers must be serviceAccount: or group: members."
  }
}

variable "alert_publishers" {
  description = "Members allowed to publish to the alerts topic (the lifecycle, the anomaly function)."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for m in var.alert_publishers : can(regex("^(serviceAccount|group):", m))])
    error_message = "alert_publishers must be serviceAccount: or group: members."
  }
}

variable "dlq_publishers" {
  description = "Members allowed to publish to the dead-letter topic (the sink, for poison messages)."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for m in var.dlq_publishers : can(regex("^(serviceAccount|group):", m))])
    error_message = "dlq_publishers must be serviceAccount: or group: members."
  }
}

variable "kms_key_name" {
  description = "Optional Cloud KMS key for the topics (CMEK); Google-managed encryption when null."
  type        = string
  default     = null
  validation {
    condition     = var.kms_key_name == null || can(regex("^projects/.+/cryptoKeys/.+$", var.kms_key_name))
    error_message = "kms_key_name must be a full crypto key name."
  }
}
