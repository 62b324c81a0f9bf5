output "ingest_url" {
  description = "Public beacon endpoint (POST /v1/events)."
  value       = "${module.function_ingest.uri}/v1/events"
}

output "cloudsql_connection_name" {
  description = "For TELEMETRY_CLOUDSQL_INSTANCE (migrations, operators)."
  value       = module.cloudsql.connection_name
}

output "dlq_subscription" {
  description = "Subscription holding dead-lettered messages (telemetry dlq)."
  value       = module.pubsub.dlq_subscription
}

output "snapshot_url" {
  description = "URL of the snapshot function (private: Cloud Scheduler's account invokes it)."
  value       = module.function_snapshot.uri
}

output "lifecycle_url" {
  description = "URL of the lifecycle function (private: the scheduler's account and var.lifecycle_operators invoke it)."
  value       = module.function_lifecycle.uri
}

output "cold_kms_key" {
  description = "The cold tier's key-encryption key: set it as TELEMETRY_ARCHIVE_KEK for the backend and for operators who restore."
  value       = google_kms_crypto_key.cold.id
}

output "anomaly_url" {
  description = "URL of the anomaly function (private: only the scheduler's account invokes it)."
  value       = module.function_anomaly.uri
}

output "edge_address" {
  description = "With edge_protection: the load balancer's address (point edge_domain's A record at it)."
  value       = var.edge_protection ? module.edge[0].address : null
}
