terraform {
  required_version = ">= 1.5.0"
  # State lives in a GCS bucket given at init: terraform init -backend-config=bucket=<state-bucket>
  backend "gcs" {
    prefix = "telemetry"
  }
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0.0, < 8.0.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
