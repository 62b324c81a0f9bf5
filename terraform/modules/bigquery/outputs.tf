output "dataset_id" {
  description = "Dataset id."
  value       = google_bigquery_dataset.telemetry.dataset_id
}
