"""Local mesh: each service in its own process on loopback, plus a local `weed mini` S3.

`LocalMesh` is what `motionctl serve all` runs and what the integration tests drive (they kill
and restart single processes of it). `serve_worker` runs one service in this process.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import pathlib
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from motion.errors import InputError, UnavailableError
from motion.settings import Settings

log = logging.getLogger("motion.gateway.mesh")

WORKERS = ("pose", "retarget", "render")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_serving(addr: str, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Blocks until addr answers grpc.health.v1 SERVING (or raises with the process's fate)."""
    deadline = time.monotonic() + timeout_s
    last = ""
    with grpc.insecure_channel(addr) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise UnavailableError(f"process for {addr} exited with {proc.returncode}", addr=addr)
            try:
                resp = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = str(resp.status)
            except grpc.RpcError as exc:
                last = exc.code().name
            time.sleep(0.2)
    raise UnavailableError(f"{addr} not serving after {timeout_s:.0f}s ({last})", addr=addr, limit=timeout_s)


def serve_worker(name: str, settings: Settings) -> int:
    """Runs services.<name> standalone in this process (its own __main__), with these settings."""
    if name not in WORKERS:
        raise InputError("serve.service", "unknown service", limit=list(WORKERS), actual=name)
    for key, value in (("MOTION_BIND_HOST", settings.bind_host), ("MOTION_GRPC_PORT", settings.grpc_port),
                       ("MOTION_METRICS_PORT", settings.metrics_port), ("MOTION_STORE_URL", settings.store_url)):
        if value not in ("", None):
            os.environ[key] = str(value)
    module = importlib.import_module(f"services.{name}.__main__")
    sys.argv = [f"motionctl serve {name}"]
    module.main()
    return 0


@dataclass
class MeshOptions:
    data_dir: pathlib.Path
    render_workers: int = 2
    host: str = "127.0.0.1"
    gateway_port: int = 0
    # Extra environment for every process (e.g. MOTION_MODEL_DIR) and for the gateway only.
    env: dict[str, str] = field(default_factory=dict)
    gateway_env: dict[str, str] = field(default_factory=dict)
    api_keys: dict[str, str] = field(default_factory=dict)
    start_timeout_s: float = 120.0
    # An existing S3 endpoint environment (from a test fixture); None = start our own weed mini.
    s3_env: dict[str, str] | None = None


class LocalMesh:
    """pose + retarget + N render workers + gateway as subprocesses, sharing one S3 bucket."""

    def __init__(self, options: MeshOptions) -> None:
        self.options = options
        self.data_dir = options.data_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.addrs: dict[str, str] = {}
        self.metrics_ports: dict[str, int] = {}
        self.internal_token = secrets.token_hex(16)
        self._weed: Any = None
        self.s3_env: dict[str, str] = {}
        self.api_keys_file = self.data_dir / "api-keys.json"
        self._lock = threading.Lock()

    # ---- lifecycle --------------------------------------------------------------------------------
    def start(self) -> LocalMesh:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(exist_ok=True)
        if self.options.s3_env is None:
            from motion.storage.weed import WeedMini

            self._weed = WeedMini(self.data_dir / "s3").start()
            self.s3_env = self._weed.env("motion")
        else:
            self.s3_env = dict(self.options.s3_env)
        keys = self.options.api_keys or {secrets.token_urlsafe(18): "default"}
        self.api_keys_file.write_text(json.dumps({"keys": keys}, indent=2))
        os.chmod(self.api_keys_file, 0o600)
        try:
            for name in ("pose", "retarget"):
                self.start_worker(name)
            for i in range(self.options.render_workers):
                self.start_worker(f"render-{i}")
            for name in list(self.procs):
                self._wait(name)
            self.start_gateway()
        except BaseException:
            self.stop()
            raise
        return self

    def _env(self, port: int, metrics_port: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.s3_env)
        env.update(self.options.env)
        env.update({
            "MOTION_BIND_HOST": self.options.host, "MOTION_GRPC_PORT": str(port),
            "MOTION_METRICS_PORT": str(metrics_port), "MOTION_INTERNAL_TOKEN": self.internal_token,
            "MOTION_LOG_JSON": "1",
        })
        return env

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log_path = self.data_dir / "logs" / f"{name}.log"
        with open(log_path, "ab") as fh:
            proc = subprocess.Popen(argv, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def start_worker(self, name: str, port: int | None = None) -> None:
        """(Re)starts a worker process; render workers are named render-<i>."""
        service = name.split("-", 1)[0]
        port = port or (int(self.addrs[name].rsplit(":", 1)[1]) if name in self.addrs else free_port())
        metrics_port = self.metrics_ports.get(name) or free_port()
        self.addrs[name] = f"{self.options.host}:{port}"
        self.metrics_ports[name] = metrics_port
        self._spawn(name, [sys.executable, "-m", "motion.cli", "serve", service], self._env(port, metrics_port))

    def gateway_env(self, name: str = "gateway") -> dict[str, str]:
        port = int(self.addrs[name].rsplit(":", 1)[1])
        env = self._env(port, self.metrics_ports[name])
        renders = sorted(n for n in self.addrs if n.startswith("render-"))
        env.update({
            "MOTION_GATEWAY_POSE_ADDR": self.addrs["pose"],
            "MOTION_GATEWAY_RETARGET_ADDR": self.addrs["retarget"],
            "MOTION_GATEWAY_RENDER_ADDRS": ",".join(self.addrs[n] for n in renders),
            # The replica id is stable across restarts: a restarted gateway resumes its leases at once.
            "MOTION_GATEWAY_ID": name,
            "MOTION_API_KEYS_FILE": str(self.api_keys_file),
        })
        env.pop("MOTION_API_KEYS", None)
        env.update(self.options.gateway_env)
        return env

    def start_gateway(self, name: str = "gateway", wait: bool = True) -> None:
        """(Re)starts a gateway replica; extra replicas (any other name) share the store and workers."""
        if name not in self.addrs:
            port = self.options.gateway_port if name == "gateway" and self.options.gateway_port else free_port()
            self.addrs[name] = f"{self.options.host}:{port}"
            self.metrics_ports[name] = free_port()
        self._spawn(name, [sys.executable, "-m", "motion.cli", "serve", "gateway"], self.gateway_env(name))
        if wait:
            self._wait(name)

    def _wait(self, name: str) -> None:
        try:
            wait_serving(self.addrs[name], self.options.start_timeout_s, self.procs[name])
        except UnavailableError as exc:
            raise UnavailableError(f"{exc.message}\n--- {name}.log ---\n{self.log_tail(name)}") from None

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(timeout=60)

    def stop(self) -> None:
        # Gateways first (SIGTERM: they drain), then the workers, then S3.
        order = sorted(self.procs, key=lambda n: not n.startswith("gateway"))
        for name in order:
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=40 if name.startswith("gateway") else 15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._weed is not None:
            self._weed.stop()
            self._weed = None

    def log_tail(self, name: str, max_bytes: int = 4000) -> str:
        path = self.data_dir / "logs" / f"{name}.log"
        return path.read_bytes()[-max_bytes:].decode(errors="replace") if path.exists() else ""

    def describe(self) -> dict[str, Any]:
        return {
            "addresses": dict(self.addrs), "metrics_ports": dict(self.metrics_ports),
            "s3_endpoint": self.s3_env.get("MOTION_S3_ENDPOINT", ""), "store": self.s3_env.get("MOTION_STORE_URL", ""),
            "api_keys_file": str(self.api_keys_file), "logs": str(self.data_dir / "logs"),
        }

    def __enter__(self) -> LocalMesh:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_all(settings: Settings, *, render_workers: int = 2, data_dir: pathlib.Path | None = None) -> int:
    """`motionctl serve all`: the whole mesh on loopback until SIGTERM/SIGINT."""
    data_dir = data_dir or (settings.cache_dir / "mesh")
    api_keys: dict[str, str] = {}
    if os.environ.get("MOTION_API_KEYS_FILE") or os.environ.get("MOTION_API_KEYS"):
        from services.gateway.auth import load_api_keys

        api_keys = dict(load_api_keys().tenants_by_key)
    mesh = LocalMesh(MeshOptions(data_dir=data_dir, render_workers=render_workers, host=settings.bind_host,
                                 gateway_port=settings.grpc_port or 50051, api_keys=api_keys))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with mesh:
        info = mesh.describe()
        print(json.dumps(info, indent=2), flush=True)
        if not api_keys:
            print(f"API keys (generated): {mesh.api_keys_file}", flush=True)
        while not stop.wait(1.0):
            for name, proc in list(mesh.procs.items()):
                if proc.poll() is not None:
                    print(f"{name} exited with {proc.returncode}; see {info['logs']}/{name}.log", flush=True)
                    stop.set()
    return 0
