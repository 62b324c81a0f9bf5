resource "google_bigquery_dataset" "telemetry" {
  # checkov:skip=CKV_GCP_81:CMEK is optional (var.kms_key_name); the data itself lives in the bucket
  project    = var.project_id
  dataset_id = var.dataset_id
  location   = var.location

  dynamic "default_encryption_configuration" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      kms_key_name = default_encryption_configuration.value
    }
  }
}

# External tables over the hive-partitioned Parquet of the warm tier: analysts query the
# files where they are, partition-pruned by event_date.
resource "google_bigquery_table" "warm" {
  # checkov:skip=CKV_GCP_80:external tables hold no data in BigQuery; the bucket's encryption applies
  for_each            = toset(var.tables)
  project             = var.project_id
  dataset_id          = google_bigquery_dataset.telemetry.dataset_id
  table_id            = each.value
  deletion_protection = true

  external_data_configuration {
    source_format = "PARQUET"
    autodetect    = true
    source_uris   = ["gs://${var.bucket}/analytics/${each.value}/*"]

    hive_partitioning_options {
      mode                     = "AUTO"
      source_uri_prefix        = "gs://${var.bucket}/analytics/${each.value}/"
      require_partition_filter = true
    }
  }
}
