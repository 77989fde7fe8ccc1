"""The gRPC RetargetService on 127.0.0.1 with a real S3 server (`weed mini`): refs in, refs out, cache."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import grpc
import pytest

from motion.grpcutil import channel, error_from_rpc
from motion.rig import CharacterRig
from motion.settings import Settings
from motion.skeleton import SPACE_CHARACTER, SkeletonSequence
from motion.storage import S3Store
from motion.v1 import common_pb2, retarget_service_pb2, retarget_service_pb2_grpc
from services.render.character import analyse_character
from services.retarget.__main__ import start
from services.retarget.service import RetargetWorker
from tests.retarget.synthetic import make_sequence

pytestmark = pytest.mark.integration
TOKEN = "retarget-test-token"


@pytest.fixture
def stub_and_store(s3_store: S3Store) -> Iterator[tuple[retarget_service_pb2_grpc.RetargetServiceStub, S3Store]]:
    worker = RetargetWorker(s3_store)
    with start(worker, Settings(internal_token=TOKEN), 0, metrics_port=-1, install_signal_handlers=False) as server:
        assert server.host == "127.0.0.1"
        with channel(server.address, token=TOKEN) as ch:
            yield retarget_service_pb2_grpc.RetargetServiceStub(ch), s3_store


def test_retarget_rpc_writes_result_and_hits_cache_with_stored_inputs(
        stub_and_store: tuple[retarget_service_pb2_grpc.RetargetServiceStub, S3Store], shared_data: pathlib.Path) -> None:
    stub, store = stub_and_store
    rig = analyse_character(shared_data / "drawings" / "char4_texture.png",
                            shared_data / "drawings" / "char4_char_cfg.yaml")
    rig_ref = rig.save(store)
    seq = make_sequence(330, fps=10.0, walk=True)  # 33 s: the image mode keeps 10 s
    seq_ref = store.put_content_addressed(seq.to_bytes(), "skeletons", ".pb", "application/x-protobuf")
    request = retarget_service_pb2.RetargetRequest(
        skeleton=seq_ref, rig=rig_ref,
        options=retarget_service_pb2.RetargetOptions(orientation=common_pb2.ORIENTATION_IMAGE, pin_feet=True))
    first = stub.Retarget(request, timeout=60)
    assert not first.cache_hit and first.frame_count == 100
    assert first.trimmed_s == pytest.approx(23.0)
    out = SkeletonSequence.from_bytes(store.get_bytes(first.skeleton))
    assert out.space == SPACE_CHARACTER and (out.width, out.height) == (216, 475) and len(out.frames) == 100
    assert first.skeleton.key.startswith("retargeted/") and first.skeleton.sha256
    second = stub.Retarget(request, timeout=60)
    assert second.cache_hit and second.skeleton.key == first.skeleton.key
    # Different options: a different result.
    request.options.orientation = common_pb2.ORIENTATION_VIDEO
    third = stub.Retarget(request, timeout=60)
    assert not third.cache_hit and third.frame_count == 300
    assert CharacterRig.load(store, rig_ref).width == 216


def test_retarget_rpc_reports_invalid_argument_with_missing_rig_ref(
        stub_and_store: tuple[retarget_service_pb2_grpc.RetargetServiceStub, S3Store]) -> None:
    stub, store = stub_and_store
    seq_ref = store.put_content_addressed(make_sequence(5).to_bytes(), "skeletons", ".pb")
    with pytest.raises(grpc.RpcError) as exc:
        stub.Retarget(retarget_service_pb2.RetargetRequest(skeleton=seq_ref), timeout=30)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    err = error_from_rpc(exc.value)
    assert getattr(err, "rule", "") == "retarget.rig_ref"


def test_standalone_server_serves_health_and_stops_with_sigterm(tmp_path: pathlib.Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    from motion.grpcutil import health_status

    env = {**os.environ, "MOTION_BIND_HOST": "127.0.0.1", "MOTION_INTERNAL_TOKEN": ""}
    proc = subprocess.Popen([sys.executable, "-m", "services.retarget", "--port", "0", "--metrics-port", "-1",
                             "--store", f"file://{tmp_path / 'store'}"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "RetargetService listening on 127.0.0.1:" in line, line
        address = line.rsplit(" ", 1)[-1].strip()
        assert health_status(address, "motion.v1.RetargetService") == "SERVING"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
