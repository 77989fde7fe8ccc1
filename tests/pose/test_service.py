"""PoseService through a real gRPC server on 127.0.0.1 with a local-directory object store."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from motion.settings import Settings
from motion.skeleton import SkeletonSequence
from motion.storage import LocalStore
from motion.v1 import pose_service_pb2, pose_service_pb2_grpc, skeleton_pb2
from services.pose.__main__ import start
from services.pose.pipeline import sha256_file
from services.pose.service import PoseWorker, skeleton_key

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("pose_models")]


@pytest.fixture()
def store(tmp_path: pathlib.Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


@pytest.fixture()
def stub(store: LocalStore) -> Iterator[pose_service_pb2_grpc.PoseServiceStub]:
    running = start(PoseWorker(store), Settings(bind_host="127.0.0.1"), port=0, metrics_port=-1)
    try:
        with grpc.insecure_channel(running.address) as channel:
            yield pose_service_pb2_grpc.PoseServiceStub(channel)
    finally:
        running.stop(0)


def _opts() -> pose_service_pb2.PoseOptions:
    return pose_service_pb2.PoseOptions(runtime=pose_service_pb2.POSE_RUNTIME_LITERT, hands=True, face=False,
                                        smoothing=True, max_duration_s=0.5)


def test_extract_video_stores_skeleton_then_hits_cache_with_repeat_request(
        stub: pose_service_pb2_grpc.PoseServiceStub, store: LocalStore, short_clip: pathlib.Path) -> None:
    ref = store.put_file("uploads/clip.mp4", short_clip, content_type="video/mp4")
    req = pose_service_pb2.ExtractVideoRequest(video=ref, options=_opts())
    first = stub.ExtractVideo(req, timeout=120)
    assert not first.cache_hit and first.frame_count == 15 and first.frames_with_person == 15
    seq = SkeletonSequence.from_bytes(store.get_bytes(first.skeleton))
    assert seq.source_sha256 == sha256_file(short_clip)
    assert first.skeleton.key == skeleton_key(seq.source_sha256, seq.options_digest)
    assert seq.frames[0].present and seq.frames[0].left_hand is not None and seq.frames[0].face is None
    second = stub.ExtractVideo(req, timeout=60)
    assert second.cache_hit and second.skeleton.key == first.skeleton.key
    assert second.frame_count == 15 and second.frames_with_person == 15
    # Other options are another object.
    other = pose_service_pb2.ExtractVideoRequest(video=ref, options=pose_service_pb2.PoseOptions(
        hands=False, face=False, max_duration_s=0.5))
    third = stub.ExtractVideo(other, timeout=120)
    assert not third.cache_hit and third.skeleton.key != first.skeleton.key


def test_stream_extract_video_reports_progress_then_result_with_real_clip(
        stub: pose_service_pb2_grpc.PoseServiceStub, store: LocalStore, short_clip: pathlib.Path) -> None:
    ref = store.put_file("uploads/clip.mp4", short_clip, content_type="video/mp4")
    msgs = list(stub.StreamExtractVideo(pose_service_pb2.ExtractVideoRequest(video=ref, options=_opts()),
                                        timeout=120))
    assert len(msgs) >= 3
    done = [m.progress.done for m in msgs[:-1]]
    assert done == sorted(done) and done[-1] == 15
    last = msgs[-1]
    assert last.skeleton.key and last.frame_count == 15
    assert store.exists(last.skeleton.key)


def test_extract_video_returns_invalid_argument_with_black_video(
        stub: pose_service_pb2_grpc.PoseServiceStub, store: LocalStore, tmp_path: pathlib.Path) -> None:
    from tests.pose.conftest import write_clip

    clip = write_clip(tmp_path / "black.mp4", [np.zeros((128, 128, 3), np.uint8)] * 5, 5.0)
    ref = store.put_file("uploads/black.mp4", clip, content_type="video/mp4")
    with pytest.raises(grpc.RpcError) as err:
        stub.ExtractVideo(pose_service_pb2.ExtractVideoRequest(video=ref), timeout=60)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "pose.no_person" in (err.value.details() or "")


def test_extract_image_returns_frame_with_character_image(
        stub: pose_service_pb2_grpc.PoseServiceStub, store: LocalStore, shared_data: pathlib.Path) -> None:
    ref = store.put_file("uploads/man.jpg", shared_data / "characters" / "musev__man.jpg", content_type="image/jpeg")
    res = stub.ExtractImage(pose_service_pb2.ExtractImageRequest(image=ref), timeout=60)
    assert res.frame.present and len(res.frame.body) == 33
    assert 0 < res.frame.body[0].x < res.width and 0 < res.frame.body[0].y < res.height
    assert res.frame.face.present and len(res.frame.face.landmarks) == 468
    assert isinstance(res.frame, skeleton_pb2.SkeletonFrame)


def test_health_reports_serving_with_running_server(store: LocalStore) -> None:
    from motion.grpcutil import health_status

    running = start(PoseWorker(store), Settings(bind_host="127.0.0.1"), port=0, metrics_port=-1)
    try:
        assert health_status(running.address, "motion.v1.PoseService") == "SERVING"
    finally:
        running.stop(0)


def test_extract_image_returns_invalid_argument_with_corrupt_bytes(
        stub: pose_service_pb2_grpc.PoseServiceStub, store: LocalStore) -> None:
    ref = store.put_bytes("uploads/bad.png", b"not an image", content_type="image/png")
    with pytest.raises(grpc.RpcError) as err:
        stub.ExtractImage(pose_service_pb2.ExtractImageRequest(image=ref), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_module_entry_point_serves_then_stops_with_sigterm(tmp_path: pathlib.Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    from motion.grpcutil import health_status

    env = {**os.environ, "MOTION_BIND_HOST": "127.0.0.1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.pose", "--port", "0", "--metrics-port", "-1",
         "--store", (tmp_path / "store").as_uri()],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "PoseService listening on 127.0.0.1:" in line
        address = line.strip().rsplit(" ", 1)[-1]
        assert health_status(address, "motion.v1.PoseService") == "SERVING"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
