variable "project_id" {
  description = "Project of the instance."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid GCP project id."
  }
}

variable "region" {
  description = "Region of the instance."
  type        = string
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must look like europe-west1."
  }
}

variable "name" {
  description = "Instance name."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,97}$", var.name))
    error_message = "name must be lower-case letters, digits and hyphens."
  }
}

variable "tier" {
  description = "Machine tier, e.g. db-custom-2-7680."
  type        = string
  default     = "db-custom-2-7680"
  validation {
    condition     = can(regex("^db-", var.tier))
    error_message = "tier must be a Cloud SQL tier (db-...)."
  }
}

variable "private_network" {
  description = "VPC self link for the private IP (no public IP is created)."
  type        = string
  validation {
    condition     = can(regex("^projects/.+/global/networks/.+$", var.private_network))
    error_message = "private_network must be projects/<p>/global/networks/<n>."
  }
}

variable "database" {
  description = "Database the functions use."
  type        = string
  default     = "telemetry"
  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.database))
    error_message = "database must be a lower-case identifier."
  }
}

variable "iam_service_accounts" {
  description = "Service account emails that sign in with IAM database authentication."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for e in var.iam_service_accounts : can(regex("\\.iam\\.gserviceaccount\\.com$", e))])
    error_message = "iam_service_accounts must be service account emails."
  }
}

variable "deletion_protection" {
  description = "Refuse to delete the instance from Terraform."
  type        = bool
  default     = true
  validation {
    condition     = var.deletion_protection == true || var.deletion_protection == false
    error_message = "deletion_protection must be a boolean."
  }
}
