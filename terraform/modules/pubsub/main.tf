data "google_project" "project" {
  project_id = var.project_id
}

locals {
  pubsub_agent = "serviceAccount:service-${data.google_project.project.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic" "events" {
  # checkov:skip=CKV_GCP_83:CMEK is optional (var.kms_key_name); Google-managed encryption otherwise
  project                    = var.project_id
  name                       = var.names.events_topic
  kms_key_name               = var.kms_key_name
  message_retention_duration = "86400s"
}

resource "google_pubsub_topic" "dlq" {
  # checkov:skip=CKV_GCP_83:CMEK is optional (var.kms_key_name); Google-managed encryption otherwise
  project      = var.project_id
  name         = var.names.dlq_topic
  kms_key_name = var.kms_key_name
}

resource "google_pubsub_topic" "alerts" {
  # checkov:skip=CKV_GCP_83:CMEK is optional (var.kms_key_name); Google-managed encryption otherwise
  project      = var.project_id
  name         = var.names.alerts_topic
  kms_key_name = var.kms_key_name
}

# Our own push subscription (not Eventarc's), so it carries the dead-letter policy.
resource "google_pubsub_subscription" "sink" {
  project                    = var.project_id
  name                       = var.names.sink_subscription
  topic                      = google_pubsub_topic.events.id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  push_config {
    push_endpoint = var.push_endpoint
    oidc_token {
      service_account_email = var.push_service_account_email
      audience              = var.push_endpoint
    }
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dlq.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  retry_policy {
    minimum_backoff = var.retry_backoff.minimum
    maximum_backoff = var.retry_backoff.maximum
  }

  expiration_policy {
    ttl = ""
  }
}

# Keeps every dead-lettered message until it is replayed (`telemetry dlq replay`).
resource "google_pubsub_subscription" "dlq_hold" {
  project                    = var.project_id
  name                       = var.names.dlq_subscription
  topic                      = google_pubsub_topic.dlq.id
  ack_deadline_seconds       = 60
  message_retention_duration = "2678400s"
  retain_acked_messages      = false

  expiration_policy {
    ttl = ""
  }
}

# What the Pub/Sub service agent needs to dead-letter: publish to the DLQ topic, and
# acknowledge (subscribe) on the source subscription.
resource "google_pubsub_topic_iam_member" "agent_publishes_dlq" {
  project = var.project_id
  topic   = google_pubsub_topic.dlq.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "agent_acks_sink" {
  project      = var.project_id
  subscription = google_pubsub_subscription.sink.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

# The agent mints the OIDC tokens of the push service account.
resource "google_service_account_iam_member" "agent_mints_push_tokens" {
  service_account_id = "projects/${var.project_id}/serviceAccounts/${var.push_service_account_email}"
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

resource "google_pubsub_topic_iam_member" "publishers" {
  for_each = toset(var.publishers)
  project  = var.project_id
  topic    = google_pubsub_topic.events.name
  role     = "roles/pubsub.publisher"
  member   = each.value
}

resource "google_pubsub_topic_iam_member" "alert_publishers" {
  for_each = toset(var.alert_publishers)
  project  = var.project_id
  topic    = google_pubsub_topic.alerts.name
  role     = "roles/pubsub.publisher"
  member   = each.value
}

resource "google_pubsub_topic_iam_member" "dlq_publishers" {
  for_each = toset(var.dlq_publishers)
  project  = var.project_id
  topic    = google_pubsub_topic.dlq.name
  role     = "roles/pubsub.publisher"
  member   = each.value
}
