"""Object storage behind one interface: a local directory (embedded mode) or S3 through the minio SDK."""
