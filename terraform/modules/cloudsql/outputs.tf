output "connection_name" {
  description = "project:region:instance, for TELEMETRY_CLOUDSQL_INSTANCE."
  value       = google_sql_database_instance.postgres.connection_name
}

output "database" {
  description = "Database name, for TELEMETRY_DB_NAME."
  value       = google_sql_database.telemetry.name
}

output "private_ip" {
  description = "Private IP of the instance, for TELEMETRY_CLOUDSQL_HOST (the snapshot's DuckDB connects there)."
  value       = google_sql_database_instance.postgres.private_ip_address
}
