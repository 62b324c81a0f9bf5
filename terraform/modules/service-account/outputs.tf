output "email" {
  description = "Email of the service account."
  value       = google_service_account.account.email
}

output "member" {
  description = "IAM member string (serviceAccount:...)."
  value       = "serviceAccount:${google_service_account.account.email}"
}
