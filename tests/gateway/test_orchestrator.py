"""Orchestrator pieces that need no media: frame ranges, retries over a real gRPC server, API keys,
and the Ray Serve config."""

from __future__ import annotations

import pathlib
from concurrent import futures

import grpc
import pytest

from motion.errors import InputError, UnauthenticatedError, UnavailableError
from services.gateway.auth import ApiKeys, load_api_keys
from services.gateway.orchestrator import RetryPolicy, call_with_retry, frame_ranges


def test_frame_ranges_cover_every_frame_once_with_fixed_size():
    # Three ranges of at most 16 would do; an even count of equal ones keeps a pair of workers busy to the end.
    assert frame_ranges(40, 16) == [(0, 10), (10, 20), (20, 30), (30, 40)]
    assert frame_ranges(300, 64) == [(0, 50), (50, 100), (100, 150), (150, 200), (200, 250), (250, 300)]
    assert frame_ranges(48, 16) == [(0, 12), (12, 24), (24, 36), (36, 48)]
    assert frame_ranges(32, 16) == [(0, 16), (16, 32)]
    assert frame_ranges(16, 16) == [(0, 16)]
    assert frame_ranges(3, 1) == [(0, 1), (1, 2), (2, 3)]  # never more ranges than frames
    assert frame_ranges(0, 16) == []
    for count, size in ((1001, 32), (7, 2), (97, 10)):
        ranges = frame_ranges(count, size)
        assert all(0 < e - s <= size for s, e in ranges)
        assert max(e - s for s, e in ranges) - min(e - s for s, e in ranges) <= 1
    covered = [i for s, e in frame_ranges(1001, 32) for i in range(s, e)]
    assert covered == list(range(1001))
    with pytest.raises(InputError):
        frame_ranges(10, 0)


class _Flaky:
    """A real gRPC method that fails `failures` times with `code`, then answers."""

    def __init__(self, failures: int, code: grpc.StatusCode) -> None:
        self.failures, self.code, self.calls = failures, code, 0

    def __call__(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self.calls += 1
        if self.calls <= self.failures:
            context.abort(self.code, f"failure {self.calls}")
        return b"ok:" + request


@pytest.fixture
def flaky_server():
    servers = []

    def start(flaky: _Flaky) -> grpc.Channel:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        handler = grpc.method_handlers_generic_handler(
            "test.Flaky", {"Call": grpc.unary_unary_rpc_method_handler(flaky)})
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return grpc.insecure_channel(f"127.0.0.1:{port}")

    yield start
    for s in servers:
        s.stop(0)


def _call(channel: grpc.Channel):
    method = channel.unary_unary("/test.Flaky/Call")
    return lambda: method(b"x", timeout=5)


def test_call_retried_until_success_with_transient_failures(flaky_server):
    flaky = _Flaky(2, grpc.StatusCode.UNAVAILABLE)
    policy = RetryPolicy(attempts=4, initial_backoff_s=0.01, max_backoff_s=0.05)
    assert call_with_retry(_call(flaky_server(flaky)), stage="t", policy=policy) == b"ok:x"
    assert flaky.calls == 3


def test_call_not_retried_with_invalid_argument(flaky_server):
    flaky = _Flaky(5, grpc.StatusCode.INVALID_ARGUMENT)
    policy = RetryPolicy(attempts=4, initial_backoff_s=0.01)
    with pytest.raises(InputError):
        call_with_retry(_call(flaky_server(flaky)), stage="t", policy=policy)
    assert flaky.calls == 1


def test_call_fails_after_attempts_with_persistent_unavailable(flaky_server):
    flaky = _Flaky(10, grpc.StatusCode.UNAVAILABLE)
    policy = RetryPolicy(attempts=3, initial_backoff_s=0.01)
    with pytest.raises(UnavailableError):
        call_with_retry(_call(flaky_server(flaky)), stage="t", policy=policy)
    assert flaky.calls == 3


def test_api_keys_loaded_with_file_and_env(tmp_path: pathlib.Path):
    f = tmp_path / "keys.yaml"
    f.write_text("keys:\n  file-key-0001: alpha\n")
    keys = load_api_keys({"MOTION_API_KEYS_FILE": str(f), "MOTION_API_KEYS": "env-key-0002=beta, env-key-0003=gamma"})
    assert keys.tenant_for("file-key-0001") == "alpha"
    assert keys.tenant_for("env-key-0003") == "gamma"
    with pytest.raises(UnauthenticatedError):
        keys.tenant_for("nope")
    with pytest.raises(UnauthenticatedError):
        ApiKeys({}).tenant_for("")
    with pytest.raises(InputError):
        load_api_keys({"MOTION_API_KEYS": "short=alpha"})
    with pytest.raises(InputError):
        load_api_keys({"MOTION_API_KEYS": "long-enough-key=../etc"})


def test_serve_config_valid_with_ray_schema(repo_root: pathlib.Path):
    schema = pytest.importorskip("ray.serve.schema", reason="ray[serve] not installed")
    import yaml

    doc = yaml.safe_load((repo_root / "deploy/serve/config.yaml").read_text())
    parsed = schema.ServeDeploySchema.model_validate(doc) if hasattr(schema.ServeDeploySchema, "model_validate") \
        else schema.ServeDeploySchema.parse_obj(doc)
    names = {a.name: a for a in parsed.applications}
    assert set(names) == {"pose", "retarget", "render"}
    for app in parsed.applications:
        module = app.import_path.split(":")[0]
        assert (repo_root / (module.replace(".", "/") + ".py")).is_file(), app.import_path
        for d in app.deployments:
            assert d.max_ongoing_requests > 5
    assert names["render"].deployments[0].ray_actor_options.num_gpus == 1
    assert 0 < names["pose"].deployments[0].ray_actor_options.num_gpus < 1


def test_pose_options_pb_names_every_runtime_with_known_names():
    from motion.v1 import pose_service_pb2
    from services.gateway.orchestrator import AnimateOptions, pose_options_pb
    from services.pose.runtime import RUNTIME_NAMES

    for name in RUNTIME_NAMES:
        if name == "auto":
            continue
        msg = pose_options_pb(AnimateOptions(pose_runtime=name))
        assert msg.runtime != pose_service_pb2.POSE_RUNTIME_UNSPECIFIED, name
        assert pose_service_pb2.PoseRuntime.Name(msg.runtime) == f"POSE_RUNTIME_{name.upper()}"
    assert pose_options_pb(AnimateOptions()).runtime == pose_service_pb2.POSE_RUNTIME_UNSPECIFIED
