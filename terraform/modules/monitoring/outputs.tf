output "policies" {
  description = "Alert policy names by key."
  value       = { for k, p in google_monitoring_alert_policy.policy : k => p.name }
}
