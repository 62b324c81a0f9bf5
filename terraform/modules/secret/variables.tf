variable "project_id" {
  description = "Project that hosts the secret."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid GCP project id."
  }
}

variable "secret_id" {
  description = "Secret id; its versions are added out of band (never in Terraform state)."
  type        = string
  validation {
    condition     = can(regex("^[a-zA-Z0-9_-]{1,255}$", var.secret_id))
    error_message = "secret_id must be letters, digits, hyphens and underscores."
  }
}

variable "accessors" {
  description = "Members allowed to read the secret (the functions that pseudonymise)."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for m in var.accessors : can(regex("^serviceAccount:", m))])
    error_message = "accessors must be serviceAccount: members."
  }
}
