resource "google_storage_bucket" "bucket" {
  # checkov:skip=CKV_GCP_62:access logging is optional (var.log_bucket); Cloud Audit Logs cover data access
  project                     = var.project_id
  name                        = var.name
  location                    = var.location
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  dynamic "encryption" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  dynamic "logging" {
    for_each = var.log_bucket == null ? [] : [var.log_bucket]
    content {
      log_bucket = logging.value
    }
  }

  # Warm tier: Parquet partitions are deleted after their retention.
  dynamic "lifecycle_rule" {
    for_each = var.tiered ? [1] : []
    content {
      condition {
        age            = var.retention.warm_days
        matches_prefix = ["analytics/"]
      }
      action {
        type = "Delete"
      }
    }
  }

  # Cold tier: moved to ARCHIVE after a year, deleted after two.
  dynamic "lifecycle_rule" {
    for_each = var.tiered ? [1] : []
    content {
      condition {
        age            = var.retention.cold_archive_after
        matches_prefix = ["archives/"]
      }
      action {
        type          = "SetStorageClass"
        storage_class = "ARCHIVE"
      }
    }
  }

  dynamic "lifecycle_rule" {
    for_each = var.tiered ? [1] : []
    content {
      condition {
        age            = var.retention.cold_days
        matches_prefix = ["archives/"]
      }
      action {
        type = "Delete"
      }
    }
  }

  # Versioning protects against mistakes, but an erased person must not survive in an old
  # version: noncurrent versions go after a few days.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.retention.noncurrent_keep_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket_iam_member" "admins" {
  for_each = toset(var.object_admins)
  bucket   = google_storage_bucket.bucket.name
  role     = "roles/storage.objectAdmin"
  member   = each.value
}

resource "google_storage_bucket_iam_member" "viewers" {
  for_each = toset(var.object_viewers)
  bucket   = google_storage_bucket.bucket.name
  role     = "roles/storage.objectViewer"
  member   = each.value
}
