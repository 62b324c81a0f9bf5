output "uri" {
  description = "HTTPS URL of the function."
  value       = google_cloudfunctions2_function.function.service_config[0].uri
}

output "service" {
  description = "Name of the underlying Cloud Run service (metrics and alerts use it)."
  value       = google_cloudfunctions2_function.function.service_config[0].service
}
