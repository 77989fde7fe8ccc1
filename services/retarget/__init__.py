"""retarget service."""
