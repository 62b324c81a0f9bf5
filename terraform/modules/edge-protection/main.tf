# Ingest behind an external HTTPS load balancer whose Cloud Armor policy bans, per client
# address, whoever sends more than a set number of requests a minute: a flood stops at Google's
# edge, before any instance runs (each instance's own limits cannot see the others').
resource "google_compute_region_network_endpoint_group" "ingest" {
  project               = var.project_id
  region                = var.region
  name                  = "${var.name}-neg"
  network_endpoint_type = "SERVERLESS"
  cloud_run {
    service = var.cloud_run_service
  }
}

resource "google_compute_security_policy" "ingest" {
  project     = var.project_id
  name        = "${var.name}-armor"
  description = "Rate-based bans per client address in front of the public ingest endpoint."
  type        = "CLOUD_ARMOR"

  rule {
    action   = "rate_based_ban"
    priority = 1000
    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }
    rate_limit_options {
      conform_action   = "allow"
      exceed_action    = "deny(429)"
      enforce_on_key   = "IP"
      ban_duration_sec = var.ban_duration_s
      rate_limit_threshold {
        count        = var.requests_per_minute
        interval_sec = 60
      }
      ban_threshold {
        count        = var.requests_per_minute * var.ban_after_multiple
        interval_sec = 60
      }
    }
    description = "Over the per-address rate: 429; far over it: banned for a while."
  }

  rule {
    action   = "deny(403)"
    priority = 900
    match {
      expr {
        expression = "evaluatePreconfiguredWaf('cve-canary')"
      }
    }
    description = "Log4j-style probes (CVE-2021-44228) never reach the function."
  }

  rule {
    action   = "allow"
    priority = 2147483647
    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }
    description = "Everything else reaches ingest, whose own limits apply per sender."
  }
}

resource "google_compute_backend_service" "ingest" {
  project               = var.project_id
  name                  = "${var.name}-backend"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  protocol              = "HTTPS"
  security_policy       = google_compute_security_policy.ingest.id
  backend {
    group = google_compute_region_network_endpoint_group.ingest.id
  }
  log_config {
    enable      = true
    sample_rate = 1.0
  }
}

resource "google_compute_url_map" "ingest" {
  project         = var.project_id
  name            = "${var.name}-urls"
  default_service = google_compute_backend_service.ingest.id
}

resource "google_compute_managed_ssl_certificate" "ingest" {
  project = var.project_id
  name    = "${var.name}-cert"
  managed {
    domains = [var.domain]
  }
}

resource "google_compute_ssl_policy" "ingest" {
  project         = var.project_id
  name            = "${var.name}-tls"
  profile         = "RESTRICTED"
  min_tls_version = "TLS_1_2"
}

resource "google_compute_target_https_proxy" "ingest" {
  project          = var.project_id
  name             = "${var.name}-https"
  url_map          = google_compute_url_map.ingest.id
  ssl_certificates = [google_compute_managed_ssl_certificate.ingest.id]
  ssl_policy       = google_compute_ssl_policy.ingest.id
}

resource "google_compute_global_address" "ingest" {
  project = var.project_id
  name    = "${var.name}-address"
}

resource "google_compute_global_forwarding_rule" "ingest" {
  project               = var.project_id
  name                  = "${var.name}-https"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  ip_address            = google_compute_global_address.ingest.address
  port_range            = "443"
  target                = google_compute_target_https_proxy.ingest.id
}
