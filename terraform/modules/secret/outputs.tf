output "secret_id" {
  description = "The secret's id."
  value       = google_secret_manager_secret.secret.secret_id
}
