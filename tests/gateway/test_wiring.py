"""Cross-service wiring: Ray Serve routing metadata, render health gauge, pose runtime default, public S3 URLs.

Real gRPC servers on 127.0.0.1 and a real S3 (weed mini); nothing is stubbed inside the code under test.
"""

from __future__ import annotations

import pathlib
import threading
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from motion.errors import InputError, MotionError
from motion.settings import Settings
from motion.v1 import common_pb2, pose_service_pb2, pose_service_pb2_grpc
from services.gateway.mesh import free_port
from services.gateway.orchestrator import RENDER_SERVICE_NAME, AnimateOptions, GrpcStages
from tests.gateway.media import write_video


class _Recorder(grpc.GenericRpcHandler):
    """Answers every RPC with INVALID_ARGUMENT after recording (method, metadata): what a client sent."""

    STREAMING = ("StreamExtractVideo", "RenderRange")

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        with self._lock:
            self.calls.append((method, {k: str(v) for k, v in handler_call_details.invocation_metadata}))

        def refuse(request: bytes, context: grpc.ServicerContext) -> Any:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "recorded")

        if method.rsplit("/", 1)[-1] in self.STREAMING:
            return grpc.unary_stream_rpc_method_handler(refuse)
        return grpc.unary_unary_rpc_method_handler(refuse)


@pytest.fixture
def recorder() -> Iterator[tuple[str, _Recorder]]:
    rec = _Recorder()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((rec,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", rec
    finally:
        server.stop(0)


def _call_every_stage(stages: GrpcStages) -> None:
    ref = common_pb2.ObjectRef(key="x/y.bin")
    opts = AnimateOptions()
    for call in (lambda: stages.extract_pose(ref, opts), lambda: stages.build_rig(ref),
                 lambda: stages.retarget(ref, ref, opts), lambda: stages.render_range(ref, ref, opts, 0, 4, 0)):
        with pytest.raises(MotionError):
            call()


def test_stage_calls_carry_application_metadata_with_ray_serve_ingress(recorder: tuple[str, _Recorder]) -> None:
    addr, rec = recorder
    # The Helm chart points all three stages at one Serve ingress; only `application` tells them apart.
    stages = GrpcStages.connect(addr, addr, [addr], internal_token="tok-1", ray_serve=True)
    _call_every_stage(stages)
    apps = {method.rsplit("/", 1)[-1]: md.get("application") for method, md in rec.calls}
    assert apps == {"StreamExtractVideo": "pose", "BuildRig": "render", "Retarget": "retarget",
                    "RenderRange": "render"}
    assert all(md.get("x-motion-internal-token") == "tok-1" for _, md in rec.calls)


def test_stage_calls_omit_application_metadata_with_standalone_services(recorder: tuple[str, _Recorder]) -> None:
    addr, rec = recorder
    _call_every_stage(GrpcStages.connect(addr, addr, [addr], ray_serve=False))
    assert len(rec.calls) == 4
    assert all("application" not in md for _, md in rec.calls)


@pytest.fixture
def health_servers() -> Iterator[list[tuple[str, health.HealthServicer]]]:
    servers = []
    try:
        for _ in range(2):
            server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
            servicer = health.HealthServicer()
            health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
            port = server.add_insecure_port("127.0.0.1:0")
            server.start()
            servers.append((server, f"127.0.0.1:{port}", servicer))
        yield [(addr, servicer) for _, addr, servicer in servers]
    finally:
        for server, _, _ in servers:
            server.stop(0)


def test_render_health_counts_only_serving_workers_with_one_down_and_one_draining(
    health_servers: list[tuple[str, health.HealthServicer]],
) -> None:
    (up, up_health), (draining, draining_health) = health_servers
    up_health.set(RENDER_SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    draining_health.set(RENDER_SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
    dead = f"127.0.0.1:{free_port()}"
    stages = GrpcStages.connect(up, up, [up, draining, dead])
    assert stages.render_health(timeout_s=1.0) == 1
    draining_health.set(RENDER_SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    assert stages.render_health(timeout_s=1.0) == 2


def test_gateway_gauge_reports_healthy_render_workers_with_poller_running(
    health_servers: list[tuple[str, health.HealthServicer]], tmp_path: pathlib.Path
) -> None:
    from prometheus_client import REGISTRY

    from motion.storage import open_store
    from services.gateway.auth import ApiKeys
    from services.gateway.server import GatewayConfig, GatewayServer

    (a, a_health), (b, b_health) = health_servers
    a_health.set(RENDER_SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    b_health.set(RENDER_SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    config = GatewayConfig(pose_addr=a, retarget_addr=a, render_addrs=[a, b], owner="health-test",
                           concurrency=0, scan_interval_s=60.0, health_interval_s=0.2)
    settings = Settings(bind_host="127.0.0.1", grpc_port=0, metrics_port=-1)
    store = open_store(f"file://{tmp_path / 'store'}")
    with GatewayServer(settings, config, api_keys=ApiKeys({"k": "t"}), store=store):
        assert _wait_gauge(REGISTRY, 2.0)
        b_health.set(RENDER_SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
        assert _wait_gauge(REGISTRY, 1.0)


def _wait_gauge(registry: Any, want: float, timeout_s: float = 10.0) -> bool:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if registry.get_sample_value("motion_render_workers_healthy") == want:
            return True
        time.sleep(0.05)
    return False


def test_pose_options_use_configured_runtime_with_runtime_unspecified() -> None:
    from services.pose.service import options_from_proto

    assert options_from_proto(None, False, "torch").runtime == "torch"
    unspecified = pose_service_pb2.PoseOptions(hands=True)
    assert options_from_proto(unspecified, True, "tensorrt").runtime == "tensorrt"
    named = pose_service_pb2.PoseOptions(runtime=pose_service_pb2.POSE_RUNTIME_LITERT)
    assert options_from_proto(named, True, "tensorrt").runtime == "litert"


def test_pose_worker_reads_default_runtime_with_env_set(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    from motion.storage import open_store
    from services.pose.service import PoseWorker

    monkeypatch.setenv("MOTION_POSE_RUNTIME", "litert")
    assert Settings.from_env().pose_runtime == "litert"
    store = open_store(f"file://{tmp_path}")
    assert PoseWorker(store).default_runtime == "litert"
    monkeypatch.setenv("MOTION_POSE_RUNTIME", "onnx")
    with pytest.raises(InputError) as err:
        PoseWorker(store)
    assert err.value.rule == "settings.pose_runtime" and err.value.actual == "onnx"


def test_pose_service_fails_precondition_naming_runtime_with_tensorrt_default_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    from motion.storage import open_store
    from services.pose.__main__ import start
    from services.pose.runtime import get_runtime
    from services.pose.service import PoseWorker

    try:
        get_runtime("tensorrt")
        pytest.skip("tensorrt is available here: the fallback error cannot happen")
    except MotionError:
        pass
    monkeypatch.setenv("MOTION_POSE_RUNTIME", "tensorrt")
    store = open_store(f"file://{tmp_path / 'store'}")
    video = store.put_file("inputs/clip.mp4", write_video(tmp_path / "clip.mp4", seconds=1.0))
    running = start(PoseWorker(store), Settings(bind_host="127.0.0.1"), port=0, metrics_port=-1)
    try:
        with grpc.insecure_channel(running.address) as channel:
            stub = pose_service_pb2_grpc.PoseServiceStub(channel)
            with pytest.raises(grpc.RpcError) as err:
                stub.ExtractVideo(pose_service_pb2.ExtractVideoRequest(video=video), timeout=60)
    finally:
        running.stop(0)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "tensorrt" in (err.value.details() or "")


def _s3_env(s3_server: Any, **extra: str) -> dict[str, str]:
    return {**s3_server.env(f"pub-{uuid.uuid4().hex[:8]}"), **extra}


def test_presigned_url_uses_public_host_with_public_endpoint_set(s3_server: Any) -> None:
    from motion.storage import open_store

    internal = urllib.parse.urlsplit(s3_server.url if "://" in s3_server.url else f"http://{s3_server.endpoint}")
    port = internal.port or int(s3_server.endpoint.rsplit(":", 1)[1])
    # Same server under another name, as a cluster's ingress host would be: the signature must be for it.
    public = f"localhost:{port}"
    settings = Settings.from_env(_s3_env(s3_server, MOTION_S3_PUBLIC_ENDPOINT=public))
    assert settings.s3_public_endpoint == public
    store = open_store(settings.store_url, settings)
    store.put_bytes("results/a.bin", b"public bytes")
    url = store.presign_get("results/a.bin", expires_s=120)
    assert urllib.parse.urlsplit(url).netloc == public
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.read() == b"public bytes"


def test_presigned_url_uses_internal_host_with_public_endpoint_unset(s3_server: Any) -> None:
    from motion.storage import open_store

    settings = Settings.from_env(_s3_env(s3_server))
    assert settings.s3_public_endpoint == ""
    store = open_store(settings.store_url, settings)
    store.put_bytes("results/b.bin", b"internal bytes")
    url = store.presign_get("results/b.bin", expires_s=120)
    assert urllib.parse.urlsplit(url).netloc == settings.s3_endpoint
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.read() == b"internal bytes"
