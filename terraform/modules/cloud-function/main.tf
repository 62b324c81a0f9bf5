# A Cloud Run function (2nd gen) built from a content-addressed bundle. Every function is an
# HTTP service: the sink is reached by our own Pub/Sub push subscription (OIDC), not by an
# Eventarc trigger, so that we own its dead-letter policy.
resource "google_cloudfunctions2_function" "function" {
  # checkov:skip=CKV_GCP_124:ingress is ALLOW_ALL only when var.public (the ingest beacon endpoint); private functions are internal-only
  project  = var.project_id
  location = var.region
  name     = var.name

  build_config {
    runtime     = var.runtime
    entry_point = var.entry_point
    source {
      storage_source {
        bucket = var.source_bucket
        object = var.source_object
      }
    }
  }

  service_config {
    service_account_email            = var.service_account_email
    ingress_settings                 = var.public ? (var.behind_load_balancer ? "ALLOW_INTERNAL_AND_GCLB" : "ALLOW_ALL") : "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    min_instance_count               = var.scaling.min_instances
    max_instance_count               = var.scaling.max_instances
    max_instance_request_concurrency = var.scaling.concurrency
    available_cpu                    = var.scaling.cpu
    available_memory                 = var.scaling.memory
    timeout_seconds                  = var.scaling.timeout_s
    environment_variables            = merge(var.environment, { THREADS = tostring(var.scaling.concurrency) })

    dynamic "secret_environment_variables" {
      for_each = var.secret_environment
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }
  }
}

resource "google_cloud_run_service_iam_member" "public" {
  # checkov:skip=CKV_GCP_102:ingest is the public beacon endpoint by design; origins are checked by the function
  count    = var.public ? 1 : 0
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.function.service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}

resource "google_cloud_run_service_iam_member" "invokers" {
  for_each = toset(var.invokers)
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.function.service_config[0].service
  role     = "roles/run.invoker"
  member   = each.value
}
