"""RenderService over real gRPC on 127.0.0.1 with a local-directory object store."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator

import av
import cv2
import grpc
import numpy as np
import pytest

from motion.media import concat_segments
from motion.settings import Settings
from motion.storage import open_store
from motion.v1 import common_pb2, render_service_pb2, render_service_pb2_grpc
from services.render.__main__ import start
from services.render.service import RenderWorker
from tests.render.synthetic import JOINTS, make_character, wave_sequence


@pytest.fixture()
def server(tmp_path: pathlib.Path) -> Iterator[tuple[render_service_pb2_grpc.RenderServiceStub, object]]:
    store = open_store(f"file://{tmp_path / 'store'}")
    settings = Settings.from_env()
    running = start(RenderWorker(store), settings, port=0, metrics_port=-1)
    channel = grpc.insecure_channel(running.address)
    try:
        yield render_service_pb2_grpc.RenderServiceStub(channel), store
    finally:
        channel.close()
        running.stop(0)


def _frames(path: pathlib.Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_render_range_streams_progress_and_segments_join_with_grpc(server, tmp_path: pathlib.Path) -> None:  # type: ignore[no-untyped-def]
    stub, store = server
    rig_ref = make_character().save(store)
    seq = wave_sequence(10)
    skel_ref = store.put_bytes("skeletons/test/seq.pb", seq.to_bytes(), content_type="application/x-protobuf")
    opts = render_service_pb2.RenderOptions(
        resolution=common_pb2.RESOLUTION_720P, width=240, height=360,
        background=render_service_pb2.Background(mode=render_service_pb2.BACKGROUND_MODE_SOLID, color="#202020"))
    paths = []
    for a, b in ((0, 6), (6, 0)):
        msgs = list(stub.RenderRange(render_service_pb2.RenderRangeRequest(
            rig=rig_ref, skeleton=skel_ref, options=opts, start_frame=a, end_frame=b), timeout=120))
        assert len(msgs) >= 2
        assert msgs[-1].segment.key.endswith(".mp4")
        assert msgs[-1].frame_count == (6 if a == 0 else 4)
        assert any(m.progress.done < m.progress.total for m in msgs[:-1]) or len(msgs) > 2
        path = store.get_file(msgs[-1].segment, tmp_path / f"seg{a}.mp4")
        paths.append(path)
    joined = concat_segments(paths, tmp_path / "joined.mp4")
    frames = _frames(joined)
    assert len(frames) == 10
    assert tuple(frames[0][3, 3]) == pytest.approx((32, 32, 32), abs=3)
    # A second identical request is served from the store.
    again = list(stub.RenderRange(render_service_pb2.RenderRangeRequest(
        rig=rig_ref, skeleton=skel_ref, options=opts, start_frame=0, end_frame=6), timeout=60))
    assert again[-1].progress.message == "cached"


def test_render_range_rejects_empty_range_with_invalid_argument(server) -> None:  # type: ignore[no-untyped-def]
    stub, store = server
    rig_ref = make_character().save(store)
    skel_ref = store.put_bytes("skeletons/test/seq.pb", wave_sequence(3).to_bytes())
    with pytest.raises(grpc.RpcError) as err:
        list(stub.RenderRange(render_service_pb2.RenderRangeRequest(
            rig=rig_ref, skeleton=skel_ref, start_frame=5, end_frame=0), timeout=60))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "render.frame_range" in (err.value.details() or "")


def test_build_rig_stores_rig_and_hits_cache_with_joints_override(server, tmp_path: pathlib.Path) -> None:  # type: ignore[no-untyped-def]
    stub, store = server
    rig = make_character()
    rgba = np.concatenate([rig.texture_rgba[..., :3], rig.mask[..., None]], axis=2)
    png = tmp_path / "char.png"
    cv2.imwrite(str(png), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    img_ref = store.put_file("uploads/char.png", png, content_type="image/png")
    joints = {"format": "motion-control/character-joints", "version": 1, "width": rig.width, "height": rig.height,
              "joints": {k: list(v) for k, v in JOINTS.items()}}
    j_ref = store.put_bytes("uploads/joints.json", json.dumps(joints).encode(), content_type="application/json")
    first = stub.BuildRig(render_service_pb2.BuildRigRequest(image=img_ref, joints_override=j_ref), timeout=120)
    second = stub.BuildRig(render_service_pb2.BuildRigRequest(image=img_ref, joints_override=j_ref), timeout=120)
    assert first.rig.key and not first.cache_hit
    assert second.cache_hit and second.rig.key == first.rig.key
    from motion.rig import CharacterRig

    loaded = CharacterRig.load(store, first.rig)
    assert (loaded.width, loaded.height) == (rig.width, rig.height)
    assert abs(loaded.joints["left_elbow"][0] - JOINTS["left_elbow"][0]) < 1.0


def test_concurrent_first_ranges_parse_skeleton_once_with_two_threads(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import threading

    from motion.skeleton import SkeletonSequence
    from motion.storage import LocalStore
    from services.render.service import RenderWorker
    from tests.render.synthetic import wave_sequence

    store = LocalStore(tmp_path / "store")
    ref = store.put_content_addressed(wave_sequence(5).to_bytes(), "retargeted", ".pb", "application/x-protobuf")
    parses = []
    real = SkeletonSequence.from_bytes.__func__  # type: ignore[attr-defined]

    def slow_parse(cls, data):  # type: ignore[no-untyped-def]
        parses.append(1)
        threading.Event().wait(0.2)  # both threads ask while the first parse is still running
        return real(cls, data)

    monkeypatch.setattr(SkeletonSequence, "from_bytes", classmethod(slow_parse))
    worker = RenderWorker(store, max_parallel=2)
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(worker._sequence(ref))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(parses) == 1 and len(got) == 2 and got[0] is got[1]
    assert not worker._loading  # no gate left behind


def test_kept_renderer_gives_fresh_renderer_bytes_with_consecutive_ranges(tmp_path: pathlib.Path) -> None:
    import services.render.service as service

    made: list[object] = []
    real = service.Renderer

    class Counting(real):  # type: ignore[misc, valid-type]
        def __init__(self, *a, **k) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*a, **k)
            made.append(self)

    seq = wave_sequence(12)
    opts = render_service_pb2.RenderOptions(
        resolution=common_pb2.RESOLUTION_720P, width=240, height=360,
        background=render_service_pb2.Background(mode=render_service_pb2.BACKGROUND_MODE_SOLID, color="#204060"))
    segments: dict[bool, list[bytes]] = {}
    for keep in (False, True):
        store = open_store(f"file://{tmp_path / f'store-{keep}'}")
        rig_ref = make_character().save(store)
        skel_ref = store.put_bytes("skeletons/test/seq.pb", seq.to_bytes(), content_type="application/x-protobuf")
        worker = RenderWorker(store)
        service.Renderer = Counting  # type: ignore[misc]
        try:
            made.clear()
            refs = [worker.render_range(rig_ref, skel_ref, opts, a, b, keep_renderer=keep).segment
                    for a, b in ((0, 4), (4, 8), (8, 12))]
            assert len(made) == (1 if keep else 0)  # kept: one Renderer for the three ranges
            if keep:
                assert worker._local.renderer[1] is made[0]
                worker.release_thread_renderer()
                assert getattr(worker._local, "renderer", None) is None
        finally:
            service.Renderer = real  # type: ignore[misc]
        segments[keep] = [store.get_bytes(r) for r in refs]
    assert segments[True] == segments[False]  # same segment bytes as a fresh Renderer per range
