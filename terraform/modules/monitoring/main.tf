locals {
  policies = {
    dlq_messages = {
      name      = "Telemetry: messages in the dead-letter queue"
      runbook   = "dlq-messages.md"
      filter    = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${var.names.dlq_subscription}\" AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\""
      threshold = 0
      aligner   = "ALIGN_MAX"
      duration  = "300s"
    }
    sink_backlog = {
      name      = "Telemetry: sink subscription backlog is old"
      runbook   = "sink-backlog.md"
      filter    = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${var.names.sink_subscription}\" AND metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\""
      threshold = var.thresholds.oldest_unacked_s
      aligner   = "ALIGN_MAX"
      duration  = "300s"
    }
    ingest_5xx = {
      name      = "Telemetry: ingest answers 5xx"
      runbook   = "ingest-5xx.md"
      filter    = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = \"${var.names.ingest_service}\" AND metric.type = \"run.googleapis.com/request_count\" AND metric.labels.response_code_class = \"5xx\""
      threshold = var.thresholds.ingest_5xx_per_s
      aligner   = "ALIGN_RATE"
      duration  = "300s"
    }
    sink_errors = {
      name      = "Telemetry: sink fails deliveries"
      runbook   = "sink-errors.md"
      filter    = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = \"${var.names.sink_service}\" AND metric.type = \"run.googleapis.com/request_count\" AND metric.labels.response_code_class = \"5xx\""
      threshold = var.thresholds.sink_5xx_per_s
      aligner   = "ALIGN_RATE"
      duration  = "600s"
    }
  }
}

resource "google_monitoring_alert_policy" "policy" {
  for_each              = local.policies
  project               = var.project_id
  display_name          = each.value.name
  combiner              = "OR"
  notification_channels = var.notification_channels

  conditions {
    display_name = each.value.name
    condition_threshold {
      filter          = each.value.filter
      comparison      = "COMPARISON_GT"
      threshold_value = each.value.threshold
      duration        = each.value.duration
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = each.value.aligner
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Runbook: ${var.runbook_base_url}/${each.value.runbook}"
  }
}
