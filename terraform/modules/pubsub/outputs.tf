output "events_topic" {
  description = "Full id of the events topic."
  value       = google_pubsub_topic.events.id
}

output "dlq_topic" {
  description = "Full id of the dead-letter topic."
  value       = google_pubsub_topic.dlq.id
}

output "sink_subscription" {
  description = "Name of the sink push subscription."
  value       = google_pubsub_subscription.sink.name
}

output "dlq_subscription" {
  description = "Name of the subscription holding dead-lettered messages."
  value       = google_pubsub_subscription.dlq_hold.name
}
