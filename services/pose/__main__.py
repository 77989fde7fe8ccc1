"""Serve the PoseService standalone: `python -m services.pose [--port N] [--store URL] [--model-dir DIR]`.

Binds ``MOTION_BIND_HOST`` (127.0.0.1 by default); health, reflection, the internal token check and
/metrics come from ``motion.grpcutil.serve``. SIGTERM/SIGINT stop it gracefully.
"""

from __future__ import annotations

import argparse
import logging
import pathlib

from motion import grpcutil
from motion.settings import Settings
from motion.storage import open_store
from motion.v1 import pose_service_pb2_grpc
from services.pose.models import ensure_models
from services.pose.service import SERVICE_NAME, PoseServicer, PoseWorker

log = logging.getLogger("motion.pose")


def start(worker: PoseWorker, settings: Settings | None = None, port: int | None = None,
          metrics_port: int | None = None, install_signal_handlers: bool = False) -> grpcutil.RunningServer:
    """A running PoseService server (tests use port 0 and metrics_port -1)."""
    return grpcutil.serve([(pose_service_pb2_grpc.add_PoseServiceServicer_to_server, PoseServicer(worker))],
                          [SERVICE_NAME], settings, port, metrics_port=metrics_port,
                          install_signal_handlers=install_signal_handlers)


def serve(port: int | None = None, store_url: str | None = None, model_dir: str | pathlib.Path | None = None,
          metrics_port: int | None = None) -> int:
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level)
    models = pathlib.Path(model_dir) if model_dir is not None else settings.models_path
    ensure_models(models)  # fail at start with the fix ("run motionctl models fetch"), not on first request
    worker = PoseWorker(open_store(store_url, settings), model_dir=models)
    log.info("pose runtime for requests naming none: %s (MOTION_POSE_RUNTIME=%s)", worker.default_runtime,
             settings.pose_runtime)
    running = start(worker, settings, port, metrics_port, install_signal_handlers=True)
    print(f"PoseService listening on {running.address}", flush=True)
    running.wait()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m services.pose")
    p.add_argument("--port", type=int, default=None, help="gRPC port (default $MOTION_GRPC_PORT; 0 = any free)")
    p.add_argument("--store", default=None, help="object store URL (default from settings)")
    p.add_argument("--model-dir", type=pathlib.Path, default=None, help="pose models (default from settings)")
    p.add_argument("--metrics-port", type=int, default=None, help="-1 = no /metrics endpoint")
    a = p.parse_args(argv)
    return serve(a.port, a.store, a.model_dir, a.metrics_port)


if __name__ == "__main__":
    raise SystemExit(main())
