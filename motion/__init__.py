"""Motion Control: shared code (settings, errors, storage, media I/O, skeletons, telemetry, gRPC bootstrap).

Generated protobuf modules live in ``motion.v1`` (``make proto``).
"""

__version__ = "0.1.0"
