"""The rig is built while the pose stage runs: real in-process stages on the sample kit, with each stage's
start and end recorded around the real calls."""

from __future__ import annotations

import inspect
import pathlib
import threading
import time
from typing import Any

import pytest

from motion.samples.kit import write_samples
from motion.storage import open_store
from motion.v1.common_pb2 import ObjectRef
from services.gateway.orchestrator import AnimateOptions, InProcessStages, Orchestrator, RigResult


class _Recording(InProcessStages):
    """The real in-process stages, timestamping when pose and rig run."""

    def __init__(self, store: Any, **kwargs: Any) -> None:
        super().__init__(store, **kwargs)
        self.spans: dict[str, tuple[float, float]] = {}
        self.threads: dict[str, str] = {}
        self.first_range_s = float("inf")

    def extract_pose(self, video: ObjectRef, opts: AnimateOptions, progress: Any = None) -> ObjectRef:
        t0 = time.monotonic()
        try:
            return super().extract_pose(video, opts, progress)
        finally:
            self.spans["pose"] = (t0, time.monotonic())
            self.threads["pose"] = threading.current_thread().name

    def build_rig(self, image: ObjectRef, joints: ObjectRef | None = None) -> RigResult:
        t0 = time.monotonic()
        try:
            return super().build_rig(image, joints)
        finally:
            self.spans["rig"] = (t0, time.monotonic())
            self.threads["rig"] = threading.current_thread().name

    def render_range(self, rig: ObjectRef, skeleton: ObjectRef, opts: AnimateOptions, start: int, end: int,
                     worker: int, cancel: threading.Event | None = None) -> ObjectRef:
        self.first_range_s = min(self.first_range_s, time.monotonic())
        return super().render_range(rig, skeleton, opts, start, end, worker, cancel)


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return write_samples(tmp_path_factory.mktemp("kit"), duration_s=3.0, fps=10.0, size=(360, 640))


def test_rig_builds_while_pose_runs_with_in_process_stages(kit: Any, tmp_path: pathlib.Path) -> None:
    store = open_store(f"file://{tmp_path / 'store'}")
    image = store.put_content_addressed(pathlib.Path(kit.character_png).read_bytes(), "uploads", ".png", "image/png")
    video = store.put_content_addressed(pathlib.Path(kit.performer_mp4).read_bytes(), "uploads", ".mp4", "video/mp4")
    stages = _Recording(store)
    events: list[tuple[str, int, int]] = []
    run = Orchestrator(stages, store).run(image, video, AnimateOptions(resolution="720p", width=240, height=360),
                                          progress=lambda s, d, t, m: events.append((s, d, t)))
    (p0, p1), (r0, r1) = stages.spans["pose"], stages.spans["rig"]
    assert r0 < p1 and p0 < r1, (stages.spans, "the rig and pose stages did not overlap")
    assert stages.threads["rig"] != stages.threads["pose"]
    assert set(run.stage_s) >= {"pose", "rig", "retarget", "render", "join"}
    assert run.stage_s["rig"] <= (r1 - r0) + 0.5  # the rig's own duration, not the time until pose ended
    # Progress still reports both stages' start and end, from the caller's thread.
    assert ("rig", 1, 1) in events and ("pose", 1, 1) in events


def test_pose_error_wins_over_rig_with_unreadable_video(kit: Any, tmp_path: pathlib.Path) -> None:
    from motion.errors import MotionError

    store = open_store(f"file://{tmp_path / 'store'}")
    # Both inputs are bad; the job reports the video's error, as when the stages ran one after the other.
    image = store.put_content_addressed(b"not an image either" * 100, "uploads", ".png", "image/png")
    video = store.put_content_addressed(b"not a video at all" * 100, "uploads", ".mp4", "video/mp4")
    with pytest.raises(MotionError) as info:
        Orchestrator(InProcessStages(store), store).run(image, video, AnimateOptions(width=240, height=360))
    assert getattr(info.value, "rule", "") == "video.corrupt"


def test_render_threads_open_renderers_before_first_range_with_same_video(
        kit: Any, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import services.render.service as service

    made: list[tuple[float, str]] = []
    opened_by: list[str] = []
    closed: list[str] = []
    real = service.Renderer

    class Counting(real):  # type: ignore[misc, valid-type]
        def __init__(self, *a: Any, **k: Any) -> None:
            started = time.monotonic()
            super().__init__(*a, **k)
            made.append((started, threading.current_thread().name))
            opened_by.append(next((f.function for f in inspect.stack()
                                   if f.function in ("prepare_thread_renderer", "render_range")), ""))

        def close(self) -> None:
            closed.append(threading.current_thread().name)
            super().close()

    monkeypatch.setattr(service, "Renderer", Counting)
    videos: dict[bool, bytes] = {}
    for own_threads in (False, True):
        store = open_store(f"file://{tmp_path / f'store-{own_threads}'}")
        image = store.put_content_addressed(pathlib.Path(kit.character_png).read_bytes(), "uploads", ".png",
                                            "image/png")
        video = store.put_content_addressed(pathlib.Path(kit.performer_mp4).read_bytes(), "uploads", ".mp4",
                                            "video/mp4")
        stages = _Recording(store, workers=2, render_threads=own_threads)
        made.clear()
        opened_by.clear()
        closed.clear()
        out = tmp_path / f"out-{own_threads}.mp4"
        try:
            Orchestrator(stages, store).run(image, video, AnimateOptions(width=240, height=360, frames_per_range=8),
                                            output_path=out)
        finally:
            stages.close()
        videos[own_threads] = out.read_bytes()
        # One Renderer per render thread, each closed by the thread that made it, whichever way they run.
        assert len(made) == 2 and len({name for _, name in made}) == 2
        assert sorted(closed) == sorted(name for _, name in made)
        if own_threads:
            # Opened by prepare_render once the rig was ready (in a real run pose is still going then), not by
            # the first range.
            assert opened_by == ["prepare_thread_renderer"] * 2
            assert all(stages.spans["rig"][1] <= t for t, _ in made), (made, stages.spans)
        else:
            assert opened_by == ["render_range"] * 2
    assert videos[True] == videos[False]
