"""The image HEALTHCHECK client against a real gRPC server on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from motion.grpcutil import serve
from motion.healthcheck import HealthCheckOptions, check, main
from motion.settings import Settings

SERVICE = "motion.v1.GatewayService"


@pytest.fixture
def server():  # type: ignore[no-untyped-def]
    settings = Settings(bind_host="127.0.0.1")
    with serve([], [SERVICE], settings, port=0, metrics_port=-1, install_signal_handlers=False) as running:
        yield running


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_check_reports_serving_with_running_server(server) -> None:  # type: ignore[no-untyped-def]
    result = check(HealthCheckOptions(target=server.address, service=SERVICE))
    assert result.serving and result.status == "SERVING"
    assert main(["--target", server.address]) == 0


def test_check_reports_not_serving_with_service_marked_down(server) -> None:  # type: ignore[no-untyped-def]
    server.set_serving(SERVICE, False)
    result = check(HealthCheckOptions(target=server.address, service=SERVICE))
    assert not result.serving and result.status == "NOT_SERVING"
    assert main(["--target", server.address, "--service", SERVICE]) == 1


def test_check_reports_unknown_with_unregistered_service(server) -> None:  # type: ignore[no-untyped-def]
    result = check(HealthCheckOptions(target=server.address, service="motion.v1.Nope"))
    assert not result.serving and result.status == "SERVICE_UNKNOWN"


def test_check_fails_fast_with_nothing_listening() -> None:
    result = check(HealthCheckOptions(target=f"127.0.0.1:{_free_port()}", timeout_s=1.0))
    assert not result.serving and result.status in ("UNAVAILABLE", "DEADLINE_EXCEEDED")


def test_module_exits_zero_with_port_from_environment(server) -> None:  # type: ignore[no-untyped-def]
    env = {"MOTION_GRPC_PORT": str(server.port), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "motion.healthcheck"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "SERVING" in proc.stdout


def test_module_exits_two_with_no_target_configured() -> None:
    proc = subprocess.run([sys.executable, "-m", "motion.healthcheck"], env={"PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "healthcheck.target" in proc.stderr
