"""motion.grpcutil over real gRPC on 127.0.0.1: health, reflection, error mapping, token, metrics, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from motion.errors import InputError, UnauthenticatedError, UnavailableError
from motion.grpcutil import RunningServer, channel, error_from_rpc, health_status, serve
from motion.settings import Settings
from motion.v1 import pose_service_pb2 as pb
from motion.v1 import pose_service_pb2_grpc as pb_grpc
from motion.v1.common_pb2 import ObjectRef
from tests.conftest import REPO_ROOT
from tests.foundation.pose_echo_server import SERVICE, start

pytestmark = pytest.mark.integration

TOKEN = "internal-secret-for-tests"


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    settings = Settings(internal_token=TOKEN)
    with start(settings, port=0, metrics_port=0, install_signal_handlers=False) as running:
        yield running


@pytest.fixture
def stub(server: RunningServer) -> Iterator[pb_grpc.PoseServiceStub]:
    with channel(server.address, token=TOKEN) as ch:
        yield pb_grpc.PoseServiceStub(ch)


def _request(key: str) -> pb.ExtractVideoRequest:
    return pb.ExtractVideoRequest(video=ObjectRef(key=key))


def _scrape(server: RunningServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    assert server.metrics_port
    return _scrape_url(f"http://127.0.0.1:{server.metrics_port}/metrics")


def _scrape_url(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _labels(method: str, code: str, **extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"service": SERVICE, "method": method, "code": code, **extra}.items()))


def test_server_binds_loopback_and_reports_serving_with_defaults(server: RunningServer) -> None:
    assert server.host == "127.0.0.1" and server.port > 0
    assert health_status(server.address) == "SERVING"
    assert health_status(server.address, SERVICE) == "SERVING"
    with grpc.insecure_channel(server.address) as ch, pytest.raises(grpc.RpcError) as exc:
        health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5
        )
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_services_with_token(server: RunningServer) -> None:
    with channel(server.address, token=TOKEN) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        responses = list(
            stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
            )
        )
    names = {s.name for s in responses[0].list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names


def test_unary_call_succeeds_with_valid_token(stub: pb_grpc.PoseServiceStub) -> None:
    assert stub.ExtractVideo(_request("hello"), timeout=10).frame_count == 5


def test_input_error_maps_to_invalid_argument_with_rule_in_details(stub: pb_grpc.PoseServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as exc:
        stub.ExtractVideo(_request("bad"), timeout=10)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.value.details().startswith("video.min_duration_s: ")
    rebuilt = error_from_rpc(exc.value)
    assert isinstance(rebuilt, InputError)
    assert (rebuilt.rule, rebuilt.limit, rebuilt.actual) == ("video.min_duration_s", 1.0, 0.2)
    assert rebuilt.message == "video.min_duration_s: video is too short"


def test_unexpected_exception_maps_to_internal_with_crashing_servicer(stub: pb_grpc.PoseServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as exc:
        stub.ExtractVideo(_request("crash"), timeout=10)
    assert exc.value.code() == grpc.StatusCode.INTERNAL
    assert "RuntimeError: boom" in exc.value.details()


def test_servicer_abort_keeps_its_status_with_context_abort(stub: pb_grpc.PoseServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as exc:
        stub.ExtractVideo(_request("abort"), timeout=10)
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND
    assert exc.value.details() == "no such video"


def test_stream_delivers_messages_then_maps_error_with_failing_stream(stub: pb_grpc.PoseServiceStub) -> None:
    done = [m.progress.done for m in stub.StreamExtractVideo(_request("ok"), timeout=10)]
    assert done == [1, 2, 3]
    received: list[int] = []
    with pytest.raises(grpc.RpcError) as exc:
        for message in stub.StreamExtractVideo(_request("bad"), timeout=10):
            received.append(message.progress.done)
    assert received == [1]
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert isinstance(error_from_rpc(exc.value), InputError)


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_call_rejected_as_unauthenticated_with_missing_or_wrong_token(
    server: RunningServer, token: str | None
) -> None:
    with channel(server.address, token=token) as ch:
        with pytest.raises(grpc.RpcError) as exc:
            pb_grpc.PoseServiceStub(ch).ExtractVideo(_request("hello"), timeout=10)
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert isinstance(error_from_rpc(exc.value), UnauthenticatedError)
        with pytest.raises(grpc.RpcError) as exc:
            list(pb_grpc.PoseServiceStub(ch).StreamExtractVideo(_request("ok"), timeout=10))
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # Health stays open to probes without the token.
        reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_metrics_count_requests_by_method_and_code_with_scrape(
    server: RunningServer, stub: pb_grpc.PoseServiceStub
) -> None:
    before = _scrape(server)
    stub.ExtractVideo(_request("a"), timeout=10)
    stub.ExtractVideo(_request("b"), timeout=10)
    with pytest.raises(grpc.RpcError):
        stub.ExtractVideo(_request("bad"), timeout=10)
    list(stub.StreamExtractVideo(_request("ok"), timeout=10))
    after = _scrape(server)

    def delta(name: str, labels: tuple[tuple[str, str], ...]) -> float:
        return after.get((name, labels), 0.0) - before.get((name, labels), 0.0)

    assert delta("motion_grpc_requests_total", _labels("ExtractVideo", "OK")) == 2
    assert delta("motion_grpc_requests_total", _labels("ExtractVideo", "INVALID_ARGUMENT")) == 1
    assert delta("motion_grpc_requests_total", _labels("StreamExtractVideo", "OK")) == 1
    assert delta("motion_grpc_request_duration_seconds_count", _labels("ExtractVideo", "OK")) == 2
    assert delta("motion_grpc_request_duration_seconds_bucket", _labels("ExtractVideo", "OK", le="+Inf")) == 2


def test_serve_raises_unavailable_with_port_in_use(server: RunningServer) -> None:
    with pytest.raises(UnavailableError) as exc:
        serve([], [], Settings(), port=server.port, metrics_port=-1, install_signal_handlers=False)
    assert exc.value.details["rule"] == "grpc.bind"


def test_sigterm_finishes_in_flight_call_then_exits_with_subprocess() -> None:
    env = {**os.environ, "MOTION_INTERNAL_TOKEN": TOKEN, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.foundation.pose_echo_server"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().split()
        assert first and first[0] == "PORT", proc.stderr.read() if proc.stderr else ""
        address = f"127.0.0.1:{first[1]}"
        result: dict[str, object] = {}

        def slow_call() -> None:
            with channel(address, token=TOKEN) as ch:
                try:
                    result["frames"] = (
                        pb_grpc.PoseServiceStub(ch).ExtractVideo(_request("slow:1.5"), timeout=20).frame_count
                    )
                except grpc.RpcError as err:
                    result["error"] = err.code()

        caller = threading.Thread(target=slow_call)
        caller.start()
        # Send the signal only once the call is inside the servicer (the in-flight gauge says so).
        metrics_url = f"http://127.0.0.1:{first[2]}/metrics"
        gauge = (
            "motion_grpc_in_flight_requests",
            tuple(sorted({"service": SERVICE, "method": "ExtractVideo"}.items())),
        )
        deadline = time.monotonic() + 10.0
        while _scrape_url(metrics_url).get(gauge, 0.0) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _scrape_url(metrics_url).get(gauge) == 1
        proc.send_signal(signal.SIGTERM)
        caller.join(timeout=30)
        assert proc.wait(timeout=30) == 0
        assert result == {"frames": len("slow:1.5")}, result
        assert proc.stdout.read().strip() == "STOPPED"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
