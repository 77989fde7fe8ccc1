"""render service."""
