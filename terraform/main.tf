# The whole pipeline. One service account per function, least privilege; ingest is public,
# every other function is private and invoked only by the accounts that need it.

locals {
  names = {
    events_topic      = "telemetry-events"
    sink_subscription = "telemetry-events-sink"
    dlq_topic         = "telemetry-events-dlq"
    dlq_subscription  = "telemetry-events-dlq-hold"
    alerts_topic      = "telemetry-alerts"
  }
  common_env = {
    TELEMETRY_ENV        = var.environment
    GOOGLE_CLOUD_PROJECT = var.project_id
    TELEMETRY_BUCKET     = var.data_bucket
    TELEMETRY_TOPIC      = local.names.events_topic
  }
  pseudonym_secret = { TELEMETRY_PSEUDONYM_KEY = module.pseudonym_key.secret_id }
  # Every function exports its spans to Cloud Trace through Google's OTLP endpoint.
  trace_roles = ["roles/telemetry.tracesWriter"]
  db_roles    = ["roles/cloudsql.client", "roles/cloudsql.instanceUser"]
}

module "ingest_sa" {
  source        = "./modules/service-account"
  project_id    = var.project_id
  account_id    = "telemetry-ingest"
  description   = "Runs ingest: publishes beacons, reads runtime flags"
  project_roles = local.trace_roles
}

module "sink_sa" {
  source        = "./modules/service-account"
  project_id    = var.project_id
  account_id    = "telemetry-sink"
  description   = "Runs the sink: writes the hot tier, publishes to the DLQ"
  project_roles = concat(local.db_roles, local.trace_roles)
}

module "push_sa" {
  source      = "./modules/service-account"
  project_id  = var.project_id
  account_id  = "telemetry-push"
  description = "Identity of Pub/Sub pushes to the sink (its only invoker)"
}

module "snapshot_sa" {
  source        = "./modules/service-account"
  project_id    = var.project_id
  account_id    = "telemetry-snapshot"
  description   = "Runs the snapshot: reads the hot tier, writes the warm tier's Parquet"
  project_roles = concat(local.db_roles, local.trace_roles)
}

module "lifecycle_sa" {
  source        = "./modules/service-account"
  project_id    = var.project_id
  account_id    = "telemetry-lifecycle"
  description   = "Runs the lifecycle: retention on every tier, GDPR erasure, archive checks"
  project_roles = concat(local.db_roles, local.trace_roles)
}

module "anomaly_sa" {
  source        = "./modules/service-account"
  project_id    = var.project_id
  account_id    = "telemetry-anomaly"
  description   = "Runs the anomaly function: evaluates the metrics catalog, alerts, stores metric values"
  project_roles = concat(local.db_roles, local.trace_roles)
}

module "scheduler_sa" {
  source      = "./modules/service-account"
  project_id  = var.project_id
  account_id  = "telemetry-scheduler"
  description = "Identity of Cloud Scheduler's calls to the scheduled functions (their only invoker)"
}

module "pseudonym_key" {
  source     = "./modules/secret"
  project_id = var.project_id
  secret_id  = "telemetry-pseudonym-key"
  accessors  = [module.ingest_sa.member, module.sink_sa.member, module.lifecycle_sa.member]
}

# Bearer tokens of OTLP exporters (POST /v1/traces on ingest), comma-separated.
module "otlp_tokens" {
  source     = "./modules/secret"
  project_id = var.project_id
  secret_id  = "telemetry-otlp-tokens"
  accessors  = [module.ingest_sa.member]
}

# The anomaly function's Slack-compatible webhook URL. Add a version out of band, then set
# var.alert_webhook = true; without it alerts go to the telemetry-alerts topic only.
module "alert_webhook" {
  source     = "./modules/secret"
  project_id = var.project_id
  secret_id  = "telemetry-alert-webhook"
  accessors  = [module.anomaly_sa.member]
}

# Optional: read access to another deployment's hot tier for the weekly canary (a
# postgresql+pg8000:// URL, read-only role). Add a version out of band, then set
# var.canary_target_database = true; without it the canary reads this deployment's database.
module "canary_target_database" {
  source     = "./modules/secret"
  project_id = var.project_id
  secret_id  = "telemetry-canary-target-database"
  accessors  = [module.anomaly_sa.member]
}

module "data_bucket" {
  source         = "./modules/storage"
  project_id     = var.project_id
  name           = var.data_bucket
  location       = var.storage_location
  kms_key_name   = var.kms_key_name
  retention      = var.retention
  object_viewers = [module.ingest_sa.member]
  object_admins  = [module.snapshot_sa.member, module.lifecycle_sa.member, module.anomaly_sa.member]
}

module "sources_bucket" {
  source     = "./modules/storage"
  project_id = var.project_id
  name       = var.sources_bucket
  location   = var.storage_location
  tiered     = false
}

module "cloudsql" {
  source               = "./modules/cloudsql"
  project_id           = var.project_id
  region               = var.region
  name                 = "telemetry"
  private_network      = var.private_network
  iam_service_accounts = [module.sink_sa.email, module.snapshot_sa.email, module.lifecycle_sa.email, module.anomaly_sa.email]
}

module "function_ingest" {
  source                = "./modules/cloud-function"
  project_id            = var.project_id
  region                = var.region
  name                  = "ingest"
  entry_point           = "ingest"
  trigger               = "http"
  public                = true
  source_bucket         = module.sources_bucket.name
  source_object         = var.function_bundles["ingest"]
  service_account_email = module.ingest_sa.email
  environment = merge(local.common_env, {
    TELEMETRY_ALLOWED_ORIGINS = join(",", var.allowed_origins)
    # Behind the load balancer of edge_protection, one proxy of ours appends to X-Forwarded-For.
    TELEMETRY_TRUSTED_PROXY_HOPS = var.edge_protection ? "1" : "0"
  })
  secret_environment   = merge(local.pseudonym_secret, { TELEMETRY_OTLP_TOKENS = module.otlp_tokens.secret_id })
  scaling              = { max_instances = 50, concurrency = 32 }
  behind_load_balancer = var.edge_protection
}

module "edge" {
  source              = "./modules/edge-protection"
  count               = var.edge_protection ? 1 : 0
  project_id          = var.project_id
  region              = var.region
  cloud_run_service   = module.function_ingest.service
  domain              = var.edge_domain
  requests_per_minute = var.edge_requests_per_minute
}

module "function_sink" {
  source                = "./modules/cloud-function"
  project_id            = var.project_id
  region                = var.region
  name                  = "sink"
  entry_point           = "sink"
  trigger               = "pubsub_push"
  source_bucket         = module.sources_bucket.name
  source_object         = var.function_bundles["sink"]
  service_account_email = module.sink_sa.email
  invokers              = [module.push_sa.member]
  secret_environment    = local.pseudonym_secret
  scaling               = { max_instances = 20, concurrency = 8 }
  environment = merge(local.common_env, {
    TELEMETRY_CLOUDSQL_INSTANCE = module.cloudsql.connection_name
    TELEMETRY_DB_IAM_USER       = trimsuffix(module.sink_sa.email, ".gserviceaccount.com")
    TELEMETRY_DB_NAME           = module.cloudsql.database
    TELEMETRY_DB_POOL_SIZE      = "8"
  })
}

module "function_snapshot" {
  source                = "./modules/cloud-function"
  project_id            = var.project_id
  region                = var.region
  name                  = "snapshot"
  entry_point           = "snapshot"
  trigger               = "http"
  source_bucket         = module.sources_bucket.name
  source_object         = var.function_bundles["snapshot"]
  service_account_email = module.snapshot_sa.email
  invokers              = [module.scheduler_sa.member]
  scaling               = { max_instances = 1, concurrency = 1 }
  environment = merge(local.common_env, {
    TELEMETRY_CLOUDSQL_INSTANCE = module.cloudsql.connection_name
    TELEMETRY_CLOUDSQL_HOST     = module.cloudsql.private_ip
    TELEMETRY_DB_IAM_USER       = trimsuffix(module.snapshot_sa.email, ".gserviceaccount.com")
    TELEMETRY_DB_NAME           = module.cloudsql.database
  })
}

# The cold tier's key-encryption key: it wraps each conversation's data key (the archive never
# stores a data key unwrapped). KMS keeps every version, so rotation re-wraps nothing; a GDPR
# erasure destroys the wrapped data keys, not this key.
resource "google_kms_key_ring" "cold" {
  project  = var.project_id
  name     = "telemetry-cold"
  location = var.region
}

resource "google_kms_crypto_key" "cold" {
  name            = "telemetry-cold-archive"
  key_ring        = google_kms_key_ring.cold.id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = "7776000s" # 90 days

  version_template {
    algorithm        = "GOOGLE_SYMMETRIC_ENCRYPTION"
    protection_level = var.cold_key_protection_level
  }

  lifecycle {
    prevent_destroy = true
  }
}

# The backend writes archives (wrap and unwrap its conversations' keys); operators who restore
# unwrap. The lifecycle function never reads an archive: it destroys wrapped keys in the
# manifests, which needs no KMS permission.
resource "google_kms_crypto_key_iam_member" "archive_writers" {
  for_each      = toset(var.archive_writers)
  crypto_key_id = google_kms_crypto_key.cold.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = each.value
}

resource "google_kms_crypto_key_iam_member" "archive_restorers" {
  for_each      = toset(var.archive_restorers)
  crypto_key_id = google_kms_crypto_key.cold.id
  role          = "roles/cloudkms.cryptoKeyDecrypter"
  member        = each.value
}

module "function_lifecycle" {
  source                = "./modules/cloud-function"
  project_id            = var.project_id
  region                = var.region
  name                  = "lifecycle"
  entry_point           = "lifecycle"
  trigger               = "http"
  source_bucket         = module.sources_bucket.name
  source_object         = var.function_bundles["lifecycle"]
  service_account_email = module.lifecycle_sa.email
  invokers              = concat([module.scheduler_sa.member], var.lifecycle_operators)
  secret_environment    = local.pseudonym_secret
  scaling               = { max_instances = 1, concurrency = 4 }
  environment = merge(local.common_env, {
    TELEMETRY_CLOUDSQL_INSTANCE = module.cloudsql.connection_name
    TELEMETRY_CLOUDSQL_HOST     = module.cloudsql.private_ip
    TELEMETRY_DB_IAM_USER       = trimsuffix(module.lifecycle_sa.email, ".gserviceaccount.com")
    TELEMETRY_DB_NAME           = module.cloudsql.database
    TELEMETRY_ARCHIVE_KEK       = google_kms_crypto_key.cold.id
  })
}

module "function_anomaly" {
  source                = "./modules/cloud-function"
  project_id            = var.project_id
  region                = var.region
  name                  = "anomaly"
  entry_point           = "anomaly"
  trigger               = "http"
  source_bucket         = module.sources_bucket.name
  source_object         = var.function_bundles["anomaly"]
  service_account_email = module.anomaly_sa.email
  invokers              = [module.scheduler_sa.member]
  secret_environment = merge(
    var.alert_webhook ? { TELEMETRY_ALERT_WEBHOOK_URL = module.alert_webhook.secret_id } : {},
    var.canary_target_database ? { TELEMETRY_CANARY_TARGET_DATABASE_URL = module.canary_target_database.secret_id } : {},
  )
  # 900 s: the scheduled evaluation's and materialization's deadline, and the canary's wait.
  scaling = { max_instances = 1, concurrency = 1, timeout_s = 900 }
  environment = merge(local.common_env, {
    TELEMETRY_CLOUDSQL_INSTANCE = module.cloudsql.connection_name
    TELEMETRY_CLOUDSQL_HOST     = module.cloudsql.private_ip
    TELEMETRY_DB_IAM_USER       = trimsuffix(module.anomaly_sa.email, ".gserviceaccount.com")
    TELEMETRY_DB_NAME           = module.cloudsql.database
    TELEMETRY_RUNBOOK_BASE_URL  = var.runbook_base_url
    # The weekly canary replays into this ingest: another deployment's, or this one's own.
    TELEMETRY_CANARY_TARGET = var.canary_target_url != "" ? var.canary_target_url : "${module.function_ingest.uri}/v1/events"
  })
}

# Cloud Scheduler calls each scheduled function with an OIDC token of the scheduler account, its
# only invoker. Every run is idempotent and resumes what an interrupted one left, so a missed,
# retried or doubled call is harmless:
# - snapshot: new hot rows into the warm tier every few minutes; weekly, a compaction;
# - retention (lifecycle, daily): partitions ahead, every tier's retention, unfinished erasures;
# - anomaly: the metrics catalog every 15 minutes; hourly, the metric views and daily values;
#   weekly, the canary (warm-tier events replayed into var.canary_target_url, compared).
locals {
  scheduled_jobs = {
    snapshot = {
      description = "New hot-tier rows into the warm tier's verified Parquet"
      schedule    = var.snapshot_schedule
      uri         = module.function_snapshot.uri
      body        = {}
      deadline    = "1800s"
      retries     = 3
      min_backoff = "60s"
    }
    compaction = {
      description = "Merge each day's small warm-tier files, then delete long-retired ones"
      schedule    = var.compaction_schedule
      uri         = module.function_snapshot.uri
      body        = { compact = true }
      deadline    = "1800s"
      retries     = 3
      min_backoff = "300s"
    }
    retention = {
      description = "Retention on every tier; resumes unfinished erasures"
      schedule    = var.retention_schedule
      uri         = module.function_lifecycle.uri
      body        = { action = "retention" }
      deadline    = "1800s"
      retries     = 3
      min_backoff = "300s"
    }
    anomaly = {
      description = "Evaluate the metrics catalog and send alerts"
      schedule    = var.anomaly_schedule
      uri         = module.function_anomaly.uri
      body        = { action = "evaluate" }
      deadline    = "900s"
      retries     = 2
      min_backoff = "60s"
    }
    metrics-materialize = {
      description = "Refresh the metric views and write daily metric values to the warm tier"
      schedule    = var.materialize_schedule
      uri         = module.function_anomaly.uri
      body        = { action = "materialize" }
      deadline    = "900s"
      retries     = 2
      min_backoff = "60s"
    }
    canary = {
      description = "Replay the newest warm-tier events into the canary target as canary traffic and compare"
      schedule    = var.canary_schedule
      uri         = module.function_anomaly.uri
      body        = { action = "canary" }
      deadline    = "1800s"
      retries     = 1
      min_backoff = "600s"
    }
  }
}

resource "google_cloud_scheduler_job" "scheduled" {
  for_each         = local.scheduled_jobs
  project          = var.project_id
  region           = var.region
  name             = "telemetry-${each.key}"
  description      = each.value.description
  schedule         = each.value.schedule
  time_zone        = "Etc/UTC"
  attempt_deadline = each.value.deadline

  retry_config {
    retry_count          = each.value.retries
    min_backoff_duration = each.value.min_backoff
  }

  http_target {
    uri         = each.value.uri
    http_method = "POST"
    body        = base64encode(jsonencode(each.value.body))
    headers     = { "Content-Type" = "application/json" }

    oidc_token {
      service_account_email = module.scheduler_sa.email
      audience              = each.value.uri
    }
  }
}

# The jobs had a resource each before; their state moves, nothing is re-created.
moved {
  from = google_cloud_scheduler_job.snapshot["snapshot"]
  to   = google_cloud_scheduler_job.scheduled["snapshot"]
}

moved {
  from = google_cloud_scheduler_job.snapshot["compaction"]
  to   = google_cloud_scheduler_job.scheduled["compaction"]
}

moved {
  from = google_cloud_scheduler_job.retention
  to   = google_cloud_scheduler_job.scheduled["retention"]
}

module "pubsub" {
  source                     = "./modules/pubsub"
  project_id                 = var.project_id
  names                      = local.names
  push_endpoint              = module.function_sink.uri
  push_service_account_email = module.push_sa.email
  publishers                 = [module.ingest_sa.member]
  dlq_publishers             = [module.sink_sa.member]
  alert_publishers           = [module.lifecycle_sa.member, module.anomaly_sa.member]
  kms_key_name               = var.kms_key_name
}

module "bigquery" {
  source       = "./modules/bigquery"
  project_id   = var.project_id
  location     = var.storage_location
  bucket       = module.data_bucket.name
  tables       = ["telemetry_events", "api_calls_log", "metrics"]
  kms_key_name = var.kms_key_name
}

module "monitoring" {
  source                = "./modules/monitoring"
  project_id            = var.project_id
  notification_channels = var.notification_channels
  runbook_base_url      = var.runbook_base_url
  names = {
    sink_subscription = module.pubsub.sink_subscription
    dlq_subscription  = module.pubsub.dlq_subscription
    ingest_service    = module.function_ingest.service
    sink_service      = module.function_sink.service
  }
}
