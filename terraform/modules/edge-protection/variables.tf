variable "project_id" {
  description = "Project of the load balancer and the Cloud Armor policy."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project id."
  }
}

variable "region" {
  description = "Region of the ingest function (its serverless NEG lives there)."
  type        = string
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a region such as europe-west1."
  }
}

variable "name" {
  description = "Prefix of every resource's name."
  type        = string
  default     = "telemetry-ingest"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,40}$", var.name))
    error_message = "name must be lower case letters, digits and dashes, starting with a letter."
  }
}

variable "cloud_run_service" {
  description = "The Cloud Run service behind the ingest function (its service_config's service)."
  type        = string
  validation {
    condition     = length(var.cloud_run_service) > 0
    error_message = "cloud_run_service must name the ingest function's Cloud Run service."
  }
}

variable "domain" {
  description = "The domain the beacons are sent to (a managed certificate is issued for it)."
  type        = string
  validation {
    condition     = can(regex("^([a-z0-9-]+\\.)+[a-z]{2,}$", var.domain))
    error_message = "domain must be a domain name such as t.example.com."
  }
}

variable "requests_per_minute" {
  description = "Requests a minute one client address may send before Cloud Armor answers 429."
  type        = number
  default     = 600
  validation {
    condition     = var.requests_per_minute >= 10 && var.requests_per_minute <= 100000
    error_message = "requests_per_minute must be from 10 to 100000."
  }
}

variable "ban_after_multiple" {
  description = "An address sending this many times requests_per_minute is banned for ban_duration_s."
  type        = number
  default     = 5
  validation {
    condition     = var.ban_after_multiple >= 2 && var.ban_after_multiple <= 100
    error_message = "ban_after_multiple must be from 2 to 100."
  }
}

variable "ban_duration_s" {
  description = "How long a flooding address is banned, seconds."
  type        = number
  default     = 600
  validation {
    condition     = var.ban_duration_s >= 60 && var.ban_duration_s <= 86400
    error_message = "ban_duration_s must be from 60 to 86400."
  }
}
