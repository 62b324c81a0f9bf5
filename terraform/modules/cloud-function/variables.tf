variable "project_id" {
  description = "Project that hosts the function."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid GCP project id (6-30 lower-case letters, digits, hyphens)."
  }
}

variable "region" {
  description = "Region of the function, e.g. europe-west1."
  type        = string
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must look like europe-west1."
  }
}

variable "name" {
  description = "Function name (also the Cloud Run service name)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,62}$", var.name))
    error_message = "name must be lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "entry_point" {
  description = "Python function called by functions-framework (functions/<name>/main.py)."
  type        = string
  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]*$", var.entry_point))
    error_message = "entry_point must be a Python identifier."
  }
}

variable "trigger" {
  description = "How the function is reached: http (public or scheduled callers) or pubsub_push (our own push subscription with OIDC, never an Eventarc-made one)."
  type        = string
  validation {
    condition     = contains(["http", "pubsub_push"], var.trigger)
    error_message = "trigger must be http or pubsub_push."
  }
}

variable "source_bucket" {
  description = "Bucket holding the function bundles."
  type        = string
  validation {
    condition     = length(var.source_bucket) >= 3
    error_message = "source_bucket must be a bucket name."
  }
}

variable "source_object" {
  description = "Bundle object (bundles/<name>-<sha256>.zip, written by scripts/build_bundles.py)."
  type        = string
  validation {
    condition     = can(regex("^bundles/[a-z0-9-]+-[0-9a-f]{16}\\.zip$", var.source_object))
    error_message = "source_object must be a content-addressed bundle: bundles/<name>-<16 hex>.zip."
  }
}

variable "service_account_email" {
  description = "Service account the function runs as (one per function, least privilege)."
  type        = string
  validation {
    condition     = can(regex("@", var.service_account_email))
    error_message = "service_account_email must be an email."
  }
}

variable "public" {
  description = "Whether anyone may invoke the function (allUsers). Only ingest is public."
  type        = bool
  default     = false
  validation {
    condition     = var.public == true || var.public == false
    error_message = "public must be a boolean."
  }
}

variable "behind_load_balancer" {
  description = "Whether a public function is reached only through an external load balancer (ingress internal and GCLB)."
  type        = bool
  default     = false
  validation {
    condition     = var.behind_load_balancer == true || var.behind_load_balancer == false
    error_message = "behind_load_balancer must be a boolean."
  }
}

variable "invokers" {
  description = "Members allowed to invoke a private function, e.g. serviceAccount:push@p.iam.gserviceaccount.com."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for m in var.invokers : can(regex("^(serviceAccount|user|group):", m))])
    error_message = "invokers must be IAM members (serviceAccount:, user:, group:); use public for allUsers."
  }
}

variable "environment" {
  description = "Plain environment variables of the function."
  type        = map(string)
  default     = {}
  validation {
    condition     = alltrue([for k in keys(var.environment) : can(regex("^[A-Z][A-Z0-9_]*$", k))])
    error_message = "environment variable names must be UPPER_SNAKE_CASE."
  }
}

variable "secret_environment" {
  description = "Environment variables read from Secret Manager: NAME => secret id (latest version)."
  type        = map(string)
  default     = {}
  validation {
    condition     = alltrue([for k in keys(var.secret_environment) : can(regex("^[A-Z][A-Z0-9_]*$", k))])
    error_message = "secret environment variable names must be UPPER_SNAKE_CASE."
  }
}

variable "scaling" {
  description = "Instances, concurrency and resources of the function."
  type = object({
    min_instances = optional(number, 0)
    max_instances = optional(number, 20)
    concurrency   = optional(number, 16)
    cpu           = optional(string, "1")
    memory        = optional(string, "512Mi")
    timeout_s     = optional(number, 60)
  })
  default = {}
  validation {
    condition     = var.scaling.max_instances >= var.scaling.min_instances && var.scaling.concurrency >= 1 && var.scaling.timeout_s > 0 && var.scaling.timeout_s <= 3600
    error_message = "scaling needs max_instances >= min_instances, concurrency >= 1 and 0 < timeout_s <= 3600."
  }
}

variable "runtime" {
  description = "Python runtime of the function."
  type        = string
  default     = "python311"
  validation {
    condition     = can(regex("^python3[0-9]+$", var.runtime))
    error_message = "runtime must be a python3xx runtime."
  }
}
