"""Media I/O through PyAV: probe, validate, decode, encode."""
