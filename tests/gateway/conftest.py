"""Fixtures: a real gateway gRPC server on 127.0.0.1 over a real S3 bucket (weed mini)."""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from motion.settings import Settings
from motion.v1 import gateway_service_pb2_grpc as gw_grpc
from services.gateway.auth import ApiKeys
from services.gateway.server import GatewayConfig, GatewayServer
from tests.gateway.media import write_image, write_video

KEYS = {"key-alpha-0001": "alpha", "key-beta-00002": "beta", "key-gamma-0003": "gamma"}
KEY_OF = {tenant: key for key, tenant in KEYS.items()}


@dataclass
class ApiGateway:
    server: GatewayServer
    stub: gw_grpc.GatewayServiceStub
    store: Any
    addr: str

    @staticmethod
    def md(tenant: str) -> tuple[tuple[str, str], ...]:
        return (("x-api-key", KEY_OF[tenant]),)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    d = tmp_path_factory.mktemp("gateway-media")
    write_image(d / "character.png")
    write_image(d / "character2.jpg", seed=1)
    write_image(d / "small.png", width=200, height=420)
    write_image(d / "wide.png", width=1100, height=340)
    write_video(d / "clip.mp4")
    write_video(d / "short.mp4", seconds=1.0)
    write_video(d / "tiny.mp4", width=320, height=240)
    return d


@contextlib.contextmanager
def start_gateway(store: Any, owner: str, concurrency: int) -> Iterator[ApiGateway]:
    """A real GatewayServer on 127.0.0.1 over ``store`` (in-process stages) and a client stub for it."""
    settings = Settings(bind_host="127.0.0.1", grpc_port=0, metrics_port=0)
    config = GatewayConfig(owner=owner, max_queue=3, concurrency=concurrency, in_process=True,
                           scan_interval_s=60.0)
    server = GatewayServer(settings, config, api_keys=ApiKeys(KEYS), store=store)
    port = server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}",
                                    options=[("grpc.max_send_message_length", 80 * 1024 * 1024)])
    try:
        yield ApiGateway(server, gw_grpc.GatewayServiceStub(channel), store, f"127.0.0.1:{port}")
    finally:
        channel.close()
        server.stop(drain_timeout_s=1.0)


@pytest.fixture
def api_gateway(s3_store: Any) -> Iterator[ApiGateway]:
    """Admission-only gateway (no job runners): jobs stay queued, so API behaviour is deterministic."""
    with start_gateway(s3_store, "api-test", concurrency=0) as gateway:
        yield gateway
