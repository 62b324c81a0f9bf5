variable "project_id" {
  description = "Project that hosts the bucket."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid GCP project id."
  }
}

variable "name" {
  description = "Bucket name (globally unique)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$", var.name))
    error_message = "name must be a valid bucket name."
  }
}

variable "location" {
  description = "Bucket location (region or multi-region)."
  type        = string
  validation {
    condition     = length(var.location) >= 2
    error_message = "location must be set."
  }
}

variable "retention" {
  description = "Lifecycle ages in days; the defaults are shared/storage_layout.py's (checked by the tests). Null disables a rule (for a bucket without tiers, like the bundles bucket)."
  type = object({
    warm_days            = optional(number, 180)
    cold_archive_after   = optional(number, 365)
    cold_days            = optional(number, 730)
    noncurrent_keep_days = optional(number, 7)
  })
  default = {}
  validation {
    condition = (
      var.retention.warm_days > 0 && var.retention.cold_archive_after > 0 &&
      var.retention.cold_days > var.retention.cold_archive_after && var.retention.noncurrent_keep_days > 0
    )
    error_message = "retention ages must be positive, and cold_days greater than cold_archive_after."
  }
}

variable "tiered" {
  description = "Whether the analytics/ and archives/ lifecycle rules apply (the data bucket)."
  type        = bool
  default     = true
  validation {
    condition     = var.tiered == true || var.tiered == false
    error_message = "tiered must be a boolean."
  }
}

variable "kms_key_name" {
  description = "Optional Cloud KMS key for default object encryption (CMEK)."
  type        = string
  default     = null
  validation {
    condition     = var.kms_key_name == null || can(regex("^projects/.+/cryptoKeys/.+$", var.kms_key_name))
    error_message = "kms_key_name must be a full crypto key name."
  }
}

variable "log_bucket" {
  description = "Optional bucket receiving this bucket's access logs."
  type        = string
  default     = null
  validation {
    condition     = var.log_bucket == null || length(var.log_bucket) >= 3
    error_message = "log_bucket must be a bucket name."
  }
}

variable "object_admins" {
  description = "Members with objectAdmin on the bucket (the functions that write tiers)."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for m in var.object_admins : can(regex("^(serviceAccount|group):", m))])
    error_message = "object_admins must be serviceAccount: or group: members."
  }
}

variable "object_viewers" {
  description = "Members with objectViewer on the bucket (readers of runtime flags, analysts)."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for m in var.object_viewers : can(regex("^(serviceAccount|group|user):", m))])
    error_message = "object_viewers must be IAM members."
  }
}
