//! Event files in an S3 bucket (AWS or MinIO).
