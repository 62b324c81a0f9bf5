variable "project_id" {
  description = "GCP project to deploy into."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid GCP project id (6-30 lower-case letters, digits, hyphens)."
  }
}

variable "region" {
  description = "Region of the functions and the database, e.g. europe-west1."
  type        = string
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must look like europe-west1."
  }
}

variable "environment" {
  description = "TELEMETRY_ENV of the deployment: staging or prod."
  type        = string
  default     = "prod"
  validation {
    condition     = contains(["staging", "prod"], var.environment)
    error_message = "environment must be staging or prod."
  }
}

variable "allowed_origins" {
  description = "Origins whose browsers may send beacons to ingest (TELEMETRY_ALLOWED_ORIGINS)."
  type        = list(string)
  validation {
    condition     = length(var.allowed_origins) > 0 && alltrue([for o in var.allowed_origins : can(regex("^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$", o))])
    error_message = "allowed_origins must be origins like https://app.example.com (no path, no wildcard)."
  }
}

variable "data_bucket" {
  description = "Bucket of the warm (analytics/) and cold (archives/) tiers (TELEMETRY_BUCKET)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$", var.data_bucket))
    error_message = "data_bucket must be a valid bucket name."
  }
}

variable "sources_bucket" {
  description = "Bucket receiving the function bundles (uploaded by Cloud Build before plan)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$", var.sources_bucket))
    error_message = "sources_bucket must be a valid bucket name."
  }
}

variable "storage_location" {
  description = "Location of the buckets and the BigQuery dataset (EU, US or a region)."
  type        = string
  default     = "EU"
  validation {
    condition     = length(var.storage_location) >= 2
    error_message = "storage_location must be set."
  }
}

variable "private_network" {
  description = "VPC for Cloud SQL's private IP: projects/<p>/global/networks/<n>."
  type        = string
  validation {
    condition     = can(regex("^projects/.+/global/networks/.+$", var.private_network))
    error_message = "private_network must be projects/<p>/global/networks/<n>."
  }
}

variable "function_bundles" {
  description = "Bundle object per function, written by scripts/build_bundles.py to bundles.auto.tfvars.json."
  type        = map(string)
  validation {
    condition     = alltrue([for o in values(var.function_bundles) : can(regex("^bundles/[a-z0-9-]+-[0-9a-f]{16}\\.zip$", o))])
    error_message = "function_bundles values must be bundles/<name>-<16 hex>.zip."
  }
}

variable "retention" {
  description = "Tier retention in days; defaults equal shared/storage_layout.py (a test checks it)."
  type = object({
    warm_days          = optional(number, 180)
    cold_archive_after = optional(number, 365)
    cold_days          = optional(number, 730)
  })
  default = {}
  validation {
    condition     = var.retention.warm_days > 0 && var.retention.cold_archive_after > 0 && var.retention.cold_days > var.retention.cold_archive_after
    error_message = "retention ages must be positive and cold_days greater than cold_archive_after."
  }
}

variable "notification_channels" {
  description = "Monitoring notification channels for the pipeline's alerts."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for c in var.notification_channels : can(regex("^projects/.+/notificationChannels/.+$", c))])
    error_message = "notification_channels must be full channel names."
  }
}

variable "runbook_base_url" {
  description = "Browsable URL of docs/runbooks/ in this repository."
  type        = string
  validation {
    condition     = can(regex("^https://", var.runbook_base_url))
    error_message = "runbook_base_url must be an https URL."
  }
}

variable "kms_key_name" {
  description = "Optional Cloud KMS key (CMEK) for the bucket, topics and dataset."
  type        = string
  default     = null
  validation {
    condition     = var.kms_key_name == null || can(regex("^projects/.+/cryptoKeys/.+$", var.kms_key_name))
    error_message = "kms_key_name must be a full crypto key name."
  }
}

variable "snapshot_schedule" {
  description = "Cron schedule (UTC) of the snapshot into the warm tier."
  type        = string
  default     = "*/15 * * * *"
  validation {
    condition     = length(split(" ", var.snapshot_schedule)) == 5
    error_message = "snapshot_schedule is a five-field cron expression."
  }
}

variable "compaction_schedule" {
  description = "Cron schedule (UTC) of the weekly compaction of the warm tier's small files."
  type        = string
  default     = "0 3 * * 0"
  validation {
    condition     = length(split(" ", var.compaction_schedule)) == 5
    error_message = "compaction_schedule is a five-field cron expression."
  }
}

variable "retention_schedule" {
  description = "Cron schedule (UTC) of the daily retention run of the lifecycle function."
  type        = string
  default     = "30 2 * * *"
  validation {
    condition     = length(split(" ", var.retention_schedule)) == 5
    error_message = "retention_schedule is a five-field cron expression."
  }
}

variable "anomaly_schedule" {
  description = "Cron schedule (UTC) of the anomaly function's evaluation of the metrics catalog."
  type        = string
  default     = "*/15 * * * *"
  validation {
    condition     = length(split(" ", var.anomaly_schedule)) == 5
    error_message = "anomaly_schedule is a five-field cron expression."
  }
}

variable "materialize_schedule" {
  description = "Cron schedule (UTC) of the metric views' refresh and the daily metric values' export."
  type        = string
  default     = "7 * * * *"
  validation {
    condition     = length(split(" ", var.materialize_schedule)) == 5
    error_message = "materialize_schedule is a five-field cron expression."
  }
}

variable "canary_schedule" {
  description = "Cron schedule (UTC) of the weekly canary (the anomaly function's canary action)."
  type        = string
  default     = "0 6 * * 1"
  validation {
    condition     = length(split(" ", var.canary_schedule)) == 5
    error_message = "canary_schedule is a five-field cron expression."
  }
}

variable "canary_target_url" {
  description = "Ingest URL (…/v1/events) of the deployment the weekly canary replays into, staging for example; empty: this deployment's own ingest."
  type        = string
  default     = ""
  validation {
    condition     = var.canary_target_url == "" || can(regex("^https://", var.canary_target_url))
    error_message = "canary_target_url is empty or an https:// URL."
  }
}

variable "canary_target_database" {
  description = "Whether the telemetry-canary-target-database secret holds a version (a read-only postgresql+pg8000:// URL of the target's hot tier); false: the canary reads this deployment's database."
  type        = bool
  default     = false
  validation {
    condition     = contains([true, false], var.canary_target_database)
    error_message = "canary_target_database is true or false."
  }
}

variable "alert_webhook" {
  description = "Whether the telemetry-alert-webhook secret holds a version (a Slack-compatible URL) the anomaly function should post alerts to; false: the alerts topic only."
  type        = bool
  default     = false
  validation {
    condition     = contains([true, false], var.alert_webhook)
    error_message = "alert_webhook is true or false."
  }
}

variable "archive_writers" {
  description = "Members (the backend's service account) that write cold archives: they wrap and unwrap data keys with the cold KMS key."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for m in var.archive_writers : can(regex("^serviceAccount:", m))])
    error_message = "archive_writers must be serviceAccount: members."
  }
}

variable "archive_restorers" {
  description = "Members (operators) allowed to unwrap data keys to restore an archive."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for m in var.archive_restorers : can(regex("^(user|group|serviceAccount):", m))])
    error_message = "archive_restorers must be user:, group: or serviceAccount: members."
  }
}

variable "lifecycle_operators" {
  description = "Members (operators) allowed to call the lifecycle function (erasure requests)."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for m in var.lifecycle_operators : can(regex("^(user|group|serviceAccount):", m))])
    error_message = "lifecycle_operators must be user:, group: or serviceAccount: members."
  }
}

variable "cold_key_protection_level" {
  description = "Protection level of the cold tier's KMS key: SOFTWARE or HSM."
  type        = string
  default     = "SOFTWARE"
  validation {
    condition     = contains(["SOFTWARE", "HSM"], var.cold_key_protection_level)
    error_message = "cold_key_protection_level must be SOFTWARE or HSM."
  }
}

variable "edge_protection" {
  description = "Put ingest behind an external HTTPS load balancer with Cloud Armor rate-based bans per client address (docs/abuse.md)."
  type        = bool
  default     = false
  validation {
    condition     = var.edge_protection == true || var.edge_protection == false
    error_message = "edge_protection must be a boolean."
  }
}

variable "edge_domain" {
  description = "With edge_protection: the domain beacons are sent to (a managed certificate is issued for it)."
  type        = string
  default     = ""
  validation {
    condition     = var.edge_domain == "" || can(regex("^([a-z0-9-]+\\.)+[a-z]{2,}$", var.edge_domain))
    error_message = "edge_domain must be empty or a domain name such as t.example.com."
  }
}

variable "edge_requests_per_minute" {
  description = "With edge_protection: requests a minute one client address may send before Cloud Armor answers 429."
  type        = number
  default     = 600
  validation {
    condition     = var.edge_requests_per_minute >= 10 && var.edge_requests_per_minute <= 100000
    error_message = "edge_requests_per_minute must be from 10 to 100000."
  }
}
