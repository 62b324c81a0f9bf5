variable "project_id" {
  description = "Project of the service account."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid GCP project id."
  }
}

variable "account_id" {
  description = "Account id (the part before @)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.account_id))
    error_message = "account_id must be 6-30 lower-case letters, digits and hyphens."
  }
}

variable "description" {
  description = "What the account is for."
  type        = string
  validation {
    condition     = length(var.description) > 0
    error_message = "describe the account."
  }
}

variable "project_roles" {
  description = "Project-level roles (keep this short: prefer resource-level bindings)."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for r in var.project_roles : can(regex("^roles/", r)) && !contains(["roles/owner", "roles/editor"], r)])
    error_message = "project_roles must be predefined roles, never owner or editor."
  }
}
