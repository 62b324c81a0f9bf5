"""The warm tier: verified, typed Parquet files of the event tables, by event day, in GCS."""
