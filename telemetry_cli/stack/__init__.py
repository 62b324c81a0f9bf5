"""The local stack: real PostgreSQL, Pub/Sub emulator, GCS emulator and the functions."""
