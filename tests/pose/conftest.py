"""Fixtures of the pose tests: verified models (skip with the reason when they cannot be fetched) and
small real clips cut from ../shared/data/videos."""

from __future__ import annotations

import pathlib
from fractions import Fraction

import av
import numpy as np
import pytest

from motion.errors import ModelError


@pytest.fixture(scope="session")
def pose_models() -> dict[str, pathlib.Path]:
    from services.pose.models import ensure_models, fetch_models

    try:
        return ensure_models()
    except ModelError:
        pass
    try:
        return fetch_models().files
    except ModelError as exc:
        pytest.skip(f"pose models unavailable and cannot be fetched (offline?): {exc.message}")


def write_clip(path: pathlib.Path, frames: list[np.ndarray], fps: float) -> pathlib.Path:
    """Encodes RGB frames to an H.264 MP4 with PyAV."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=Fraction(round(fps * 1000), 1000))
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"preset": "ultrafast", "crf": "18"}
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def read_frames(path: pathlib.Path, n: int, step: int = 1) -> tuple[list[np.ndarray], float]:
    out: list[np.ndarray] = []
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        fps = float(s.average_rate or 30)
        for i, fr in enumerate(c.decode(s)):
            if i % step == 0:
                out.append(fr.to_ndarray(format="rgb24"))
            if len(out) >= n:
                break
    return out, fps


@pytest.fixture(scope="session")
def dance_video(shared_data: pathlib.Path) -> pathlib.Path:
    # 540x414 real video with one performer, full body in frame.
    return shared_data / "videos" / "musepose__ubc_91BjuE6irxS.mp4"


@pytest.fixture(scope="session")
def short_clip(dance_video: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The first 24 frames of the real dance video (keeps model tests fast on 2 cores)."""
    frames, fps = read_frames(dance_video, 24)
    return write_clip(tmp_path_factory.mktemp("clips") / "short.mp4", frames, fps)
