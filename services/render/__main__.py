"""Serve the RenderService standalone: `python -m services.render [--port N] [--store URL]`.

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
from motion.v1 import render_service_pb2_grpc
from services.render.raster import create_context
from services.render.service import SERVICE_NAME, RenderServicer, RenderWorker

log = logging.getLogger("motion.render")


def start(worker: RenderWorker, settings: Settings | None = None, port: int | None = None,
          metrics_port: int | None = None, install_signal_handlers: bool = False) -> grpcutil.RunningServer:
    """A running RenderService server (tests use port 0 and metrics_port -1)."""
    return grpcutil.serve([(render_service_pb2_grpc.add_RenderServiceServicer_to_server, RenderServicer(worker))],
                          [SERVICE_NAME], settings, port, metrics_port=metrics_port,
                          install_signal_handlers=install_signal_handlers)


def serve(port: int | None = None, store_url: str | None = None, model_dir: str | pathlib.Path | None = None,
          metrics_port: int | None = None) -> int:
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level)
    create_context().release()  # fail at start (no EGL) with the fix, not on the first request
    models = pathlib.Path(model_dir) if model_dir is not None else settings.models_path
    running = start(RenderWorker(open_store(store_url, settings), model_dir=models), settings, port, metrics_port,
                    install_signal_handlers=True)
    print(f"RenderService listening on {running.address}", flush=True)
    running.wait()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m services.render")
    p.add_argument("--port", type=int, default=None, help="gRPC port (default $MOTION_GRPC_PORT; 0 = any free)")
    p.add_argument("--store", default=None, help="object store URL (default from settings)")
    p.add_argument("--model-dir", type=pathlib.Path, default=None, help="pose models for BuildRig")
    p.add_argument("--metrics-port", type=int, default=None, help="-1 = no /metrics endpoint")
    a = p.parse_args(argv)
    return serve(a.port, a.store, a.model_dir, a.metrics_port)


if __name__ == "__main__":
    raise SystemExit(main())
