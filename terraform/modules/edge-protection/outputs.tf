output "address" {
  description = "The load balancer's address: point the domain's A record at it."
  value       = google_compute_global_address.ingest.address
}

output "security_policy" {
  description = "The Cloud Armor policy's id."
  value       = google_compute_security_policy.ingest.id
}

output "ingest_url" {
  description = "The beacon endpoint behind the load balancer."
  value       = "https://${var.domain}/v1/events"
}
