"""pose service."""
