"""Gateway process: configuration, the gRPC server (health, reflection, metrics) and graceful drain."""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from motion.errors import InputError
from motion.settings import Settings
from motion.v1 import gateway_service_pb2, gateway_service_pb2_grpc
from services.gateway import metrics
from services.gateway.auth import ApiKeys, load_api_keys
from services.gateway.orchestrator import GrpcStages, InProcessStages, Stages
from services.gateway.runner import JobRunner, RunnerOptions
from services.gateway.service import GatewayOptions, GatewayService

log = logging.getLogger("motion.gateway.server")

SERVICE_NAME = gateway_service_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name


def _env_int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InputError(f"settings.{name.lower()}", f"{name} must be an integer", actual=raw) from None


def _env_float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise InputError(f"settings.{name.lower()}", f"{name} must be a number", actual=raw) from None


@dataclass
class GatewayConfig:
    """Gateway wiring; MOTION_GATEWAY_* environment variables, overridable by flags."""

    pose_addr: str = ""
    retarget_addr: str = ""
    render_addrs: list[str] = field(default_factory=list)
    # Stable replica id: a restarted gateway with the same id resumes its own leases at once.
    owner: str = ""
    max_queue: int = 16
    concurrency: int = 2
    lease_ttl_s: float = 15.0
    scan_interval_s: float = 2.0
    drain_timeout_s: float = 30.0
    frames_per_range: int = 0
    in_process: bool = False
    retry_after_s: int = 5
    # The services sit behind Ray Serve's gRPC ingress (one address; `application` metadata routes).
    ray_serve: bool = False
    # How often the render workers' health is polled for the motion_render_workers_healthy gauge.
    health_interval_s: float = 10.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> GatewayConfig:
        e = dict(os.environ if env is None else env)
        renders = [a.strip() for a in e.get("MOTION_GATEWAY_RENDER_ADDRS", "").split(",") if a.strip()]
        return cls(
            pose_addr=e.get("MOTION_GATEWAY_POSE_ADDR", ""),
            retarget_addr=e.get("MOTION_GATEWAY_RETARGET_ADDR", ""),
            render_addrs=renders,
            owner=e.get("MOTION_GATEWAY_ID", "") or f"{socket.gethostname()}-{os.getpid()}",
            max_queue=_env_int(e, "MOTION_GATEWAY_MAX_QUEUE", 16),
            concurrency=_env_int(e, "MOTION_GATEWAY_CONCURRENCY", 2),
            lease_ttl_s=_env_float(e, "MOTION_GATEWAY_LEASE_TTL_S", 15.0),
            scan_interval_s=_env_float(e, "MOTION_GATEWAY_SCAN_INTERVAL_S", 2.0),
            drain_timeout_s=_env_float(e, "MOTION_GATEWAY_DRAIN_TIMEOUT_S", 30.0),
            frames_per_range=_env_int(e, "MOTION_GATEWAY_FRAMES_PER_RANGE", 0),
            in_process=e.get("MOTION_GATEWAY_IN_PROCESS", "") in ("1", "true", "yes"),
            retry_after_s=_env_int(e, "MOTION_GATEWAY_RETRY_AFTER_S", 5),
            ray_serve=e.get("MOTION_GATEWAY_RAY_SERVE", "") in ("1", "true", "yes"),
            health_interval_s=_env_float(e, "MOTION_GATEWAY_HEALTH_INTERVAL_S", 10.0),
        )

    def check(self) -> None:
        if self.in_process:
            return
        missing = [n for n, v in (("pose", self.pose_addr), ("retarget", self.retarget_addr)) if not v]
        if not self.render_addrs:
            missing.append("render")
        if missing:
            raise InputError("gateway.backends", "gateway needs the addresses of its services "
                             "(MOTION_GATEWAY_POSE_ADDR, _RETARGET_ADDR, _RENDER_ADDRS) or --in-process",
                             actual=",".join(missing))
        if self.health_interval_s <= 0:
            raise InputError("gateway.health_interval_s", "health poll interval must be positive", limit=">0",
                             actual=self.health_interval_s)
        if self.max_queue < 1:
            raise InputError("gateway.max_queue", "queue must hold at least one job", limit=">=1",
                             actual=self.max_queue)


class GatewayServer:
    """The gateway process's parts; a context manager that drains on exit."""

    def __init__(self, settings: Settings, config: GatewayConfig, *, api_keys: ApiKeys | None = None,
                 store: Any = None, stages: Stages | None = None) -> None:
        from motion.storage import open_store

        config.check()
        self.settings = settings
        self.config = config
        self.store = store if store is not None else open_store(settings.effective_store_url, settings)
        if stages is None:
            if config.in_process:
                stages = InProcessStages(self.store, model_dir=settings.model_dir)
            else:
                stages = GrpcStages.connect(config.pose_addr, config.retarget_addr, config.render_addrs,
                                            internal_token=settings.internal_token, ray_serve=config.ray_serve)
        self.stages = stages
        self.runner = JobRunner(self.store, stages, RunnerOptions(
            owner=config.owner, max_queue=config.max_queue, concurrency=config.concurrency,
            lease_ttl_s=config.lease_ttl_s, scan_interval_s=config.scan_interval_s,
            frames_per_range=config.frames_per_range,
        ))
        self.api_keys = api_keys if api_keys is not None else load_api_keys()
        self.service = GatewayService(self.store, self.runner, self.api_keys,
                                      GatewayOptions(retry_after_s=config.retry_after_s))
        self.running: Any = None
        self.port = 0
        self.metrics_port = 0
        self._stopped = threading.Event()
        self._health_thread: threading.Thread | None = None

    def start(self) -> int:
        from motion import grpcutil

        # The gateway is the public door: clients authenticate with API keys, not the internal token
        # (which the gateway itself sends to the services behind it).
        public = dataclasses.replace(self.settings, internal_token="")
        self.running = grpcutil.serve(
            [(gateway_service_pb2_grpc.add_GatewayServiceServicer_to_server, self.service)], [SERVICE_NAME],
            public, max_workers=32, grace_s=5.0, install_signal_handlers=False,
        )
        self.port = self.running.port
        self.metrics_port = self.running.metrics_port or 0
        self.runner.start()
        self._health_thread = threading.Thread(target=self._poll_render_health, name="render-health", daemon=True)
        self._health_thread.start()
        log.info("gateway listening on %s (metrics %d, owner %s)", self.running.address, self.metrics_port,
                 self.config.owner)
        return self.port

    def stop(self, drain_timeout_s: float | None = None) -> None:
        """SIGTERM path: report NOT_SERVING, finish running jobs, then stop the server."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        timeout = self.config.drain_timeout_s if drain_timeout_s is None else drain_timeout_s
        if self.running is not None:
            # NOT_SERVING first so load balancers send new jobs elsewhere while this one drains.
            self.running.health.enter_graceful_shutdown()
        self.runner.stop(drain_timeout_s=timeout)
        if self.running is not None:
            self.running.stop()
        if self._health_thread is not None:
            self._health_thread.join(timeout=5.0)

    def render_health(self) -> int:
        """Render workers healthy now; in-process stages are as healthy as this process."""
        probe = getattr(self.stages, "render_health", None)
        return int(probe()) if callable(probe) else self.stages.render_workers()

    def _poll_render_health(self) -> None:
        # First poll at once so the gauge is right from the start, then every health_interval_s.
        while True:
            try:
                metrics.RENDER_WORKERS_HEALTHY.set(self.render_health())
            except Exception:  # a failed poll must not end the poller; the next one retries
                log.exception("render health poll failed")
            if self._stopped.wait(self.config.health_interval_s):
                return

    def wait(self) -> None:
        if self.running is not None:
            self.running.wait()

    def __enter__(self) -> GatewayServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
