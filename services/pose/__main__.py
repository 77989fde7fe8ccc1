"""Serve the PoseService standalone: `python -m services.pose [--port N]` (binds 127.0.0.1 by default)."""

from __future__ import annotations

import argparse
import logging
import pathlib
import signal
from concurrent import futures
from types import FrameType

import grpc

from motion.settings import Settings
from motion.storage import open_store
from motion.v1 import pose_service_pb2, pose_service_pb2_grpc
from services.pose.service import PoseServicer, PoseWorker

log = logging.getLogger("motion.pose")
SERVICE_NAME = pose_service_pb2.DESCRIPTOR.services_by_name["PoseService"].full_name


def build_server(worker: PoseWorker, host: str = "127.0.0.1", port: int = 0,
                 max_workers: int = 4) -> tuple[grpc.Server, int]:
    """A started-ready gRPC server with the PoseService (+ health and reflection when available)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="pose-rpc"))
    pose_service_pb2_grpc.add_PoseServiceServicer_to_server(PoseServicer(worker), server)
    try:
        from grpc_health.v1 import health, health_pb2, health_pb2_grpc

        health_servicer = health.HealthServicer()
        health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    except ImportError:
        pass
    try:
        from grpc_reflection.v1alpha import reflection

        reflection.enable_server_reflection((SERVICE_NAME, "grpc.health.v1.Health", reflection.SERVICE_NAME), server)
    except ImportError:
        pass
    bound = server.add_insecure_port(f"{host}:{port}")
    return server, bound


def serve(port: int | None = None, store_url: str | None = None, model_dir: str | pathlib.Path | None = None) -> None:
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level)
    from services.pose.models import ensure_models

    ensure_models(model_dir if model_dir is not None else settings.models_path)  # fail fast with the fix
    worker = PoseWorker(open_store(store_url, settings), model_dir=model_dir or settings.models_path)
    server, bound = build_server(worker, settings.bind_host, settings.grpc_port if port is None else port)
    server.start()
    log.info("PoseService listening on %s:%d", settings.bind_host, bound)
    print(f"PoseService listening on {settings.bind_host}:{bound}", flush=True)

    def stop(signum: int, frame: FrameType | None) -> None:
        server.stop(grace=10)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.wait_for_termination()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m services.pose")
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--store", default=None)
    p.add_argument("--model-dir", type=pathlib.Path, default=None)
    a = p.parse_args()
    serve(a.port, a.store, a.model_dir)


if __name__ == "__main__":
    main()
