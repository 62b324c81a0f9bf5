variable "project_id" {
  description = "Project of the dataset."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid GCP project id."
  }
}

variable "dataset_id" {
  description = "Dataset holding the external tables."
  type        = string
  default     = "telemetry"
  validation {
    condition     = can(regex("^[a-zA-Z0-9_]{1,1024}$", var.dataset_id))
    error_message = "dataset_id must be letters, digits and underscores."
  }
}

variable "location" {
  description = "Dataset location (same as the bucket's)."
  type        = string
  validation {
    condition     = length(var.location) >= 2
    error_message = "location must be set."
  }
}

variable "bucket" {
  description = "Bucket whose analytics/ prefix holds the warm tier."
  type        = string
  validation {
    condition     = length(var.bucket) >= 3
    error_message = "bucket must be a bucket name."
  }
}

variable "tables" {
  description = "Warm-tier tables (analytics/<table>/event_date=YYYY-MM-DD/*.parquet)."
  type        = list(string)
  default     = ["telemetry_events", "api_calls_log"]
  validation {
    condition     = length(var.tables) > 0 && alltrue([for t in var.tables : can(regex("^[a-z_]+$", t))])
    error_message = "tables must be lower-case snake_case names."
  }
}

variable "kms_key_name" {
  description = "Optional Cloud KMS key for the dataset (CMEK)."
  type        = string
  default     = null
  validation {
    condition     = var.kms_key_name == null || can(regex("^projects/.+/cryptoKeys/.+$", var.kms_key_name))
    error_message = "kms_key_name must be a full crypto key name."
  }
}
