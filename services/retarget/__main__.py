"""Serve the RetargetService standalone: `python -m services.retarget [--port N] [--store URL]`.

Binds ``MOTION_BIND_HOST`` (127.0.0.1 by default); health, reflection, the internal token check and
/metrics come from ``motion.grpcutil.serve``. SIGTERM/SIGINT stop it gracefully.
"""

from __future__ import annotations

import argparse
import logging

from motion import grpcutil
from motion.settings import Settings
from motion.storage import open_store
from motion.v1 import retarget_service_pb2_grpc
from services.retarget.service import SERVICE_NAME, RetargetServicer, RetargetWorker

log = logging.getLogger("motion.retarget")


def start(worker: RetargetWorker, settings: Settings | None = None, port: int | None = None, *,
          metrics_port: int | None = None, install_signal_handlers: bool = True) -> grpcutil.RunningServer:
    """A started RetargetService server (use as a context manager, or ``wait()`` on it)."""
    return grpcutil.serve(
        [(retarget_service_pb2_grpc.add_RetargetServiceServicer_to_server, RetargetServicer(worker))],
        [SERVICE_NAME], settings, port, metrics_port=metrics_port, install_signal_handlers=install_signal_handlers)


def serve(port: int | None = None, store_url: str | None = None, metrics_port: int | None = None) -> int:
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level)
    running = start(RetargetWorker(open_store(store_url, settings)), settings, port, metrics_port=metrics_port)
    print(f"RetargetService listening on {running.address}", flush=True)
    running.wait()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m services.retarget")
    p.add_argument("--port", type=int, default=None, help="gRPC port (default $MOTION_GRPC_PORT; 0 = any free)")
    p.add_argument("--store", default=None, help="object store URL (default from settings)")
    p.add_argument("--metrics-port", type=int, default=None, help="-1 = no /metrics endpoint")
    a = p.parse_args(argv)
    return serve(a.port, a.store, a.metrics_port)


if __name__ == "__main__":
    raise SystemExit(main())
