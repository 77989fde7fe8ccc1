"""Generated protobuf code for motion.v1 (make proto)."""
