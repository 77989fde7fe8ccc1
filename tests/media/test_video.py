"""Reference video rules, probing and decoding, on real clips encoded with PyAV in tmp dirs."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from motion.errors import InputError
from motion.media import VideoWriter, iter_frames, probe_video, validate_video
from tests.media.conftest import listing, pattern_frame, write_png, write_video


def _rule(path: pathlib.Path) -> InputError:
    before = listing(path.parent)
    with pytest.raises(InputError) as info:
        validate_video(path)
    assert listing(path.parent) == before
    return info.value


def _gray(level: int) -> np.ndarray:
    return np.full((352, 352, 3), level, np.uint8)


def test_validate_video_accepts_clip_with_3s_352px(tmp_path: pathlib.Path) -> None:
    info = validate_video(write_video(tmp_path / "ok.mp4", frames=31))
    assert (info.width, info.height, info.frame_count, info.codec) == (352, 352, 31, "h264")
    assert info.fps == pytest.approx(10.0) and info.duration_s == pytest.approx(3.1, abs=0.01)
    assert (info.container, info.has_audio, info.rotation_deg) == ("mp4", False, 0)


def test_validate_video_rejects_short_clip_with_2s(tmp_path: pathlib.Path) -> None:
    err = _rule(write_video(tmp_path / "short.mp4", frames=20))
    assert err.rule == "video.min_duration_s" and err.limit == 3.0 and err.actual == pytest.approx(2.0, abs=0.01)


def test_validate_video_rejects_long_clip_with_32s(tmp_path: pathlib.Path) -> None:
    err = _rule(write_video(tmp_path / "long.mp4", fps=2, frames=64))
    assert err.rule == "video.max_duration_s" and err.limit == 30.0 and err.actual == pytest.approx(32.0, abs=0.01)


def test_validate_video_rejects_size_before_decoding_with_sparse_60mb_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "huge.mp4"
    with path.open("wb") as fh:  # sparse: no disk used; garbage content proves size is checked first
        fh.truncate(60 * 1024 * 1024)
    err = _rule(path)
    assert (err.rule, err.limit, err.actual) == ("video.max_bytes", 50 * 1024 * 1024, 60 * 1024 * 1024)


def test_validate_video_rejects_narrow_frame_with_320px_side(tmp_path: pathlib.Path) -> None:
    err = _rule(write_video(tmp_path / "narrow.mp4", width=320, height=400, frames=31))
    assert (err.rule, err.actual) == ("video.side_px", 320)


def test_validate_video_rejects_audio_only_with_aac_mp4(tmp_path: pathlib.Path) -> None:
    import av

    path = tmp_path / "audio.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=48000)
        stream.layout = "stereo"
        from tests.media.conftest import _write_tone

        _write_tone(out, stream, 3.5)
    err = _rule(path)
    assert (err.rule, err.actual) == ("video.no_video_stream", 0)


def test_validate_video_rejects_garbage_with_random_bytes_mp4(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "garbage.mp4"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 200_000, dtype=np.uint8).tobytes())
    assert _rule(path).rule == "video.corrupt"


@pytest.mark.parametrize("faststart", [False, True])
def test_validate_video_rejects_truncated_with_half_mp4(tmp_path: pathlib.Path, faststart: bool) -> None:
    src = tmp_path / "full.bin"
    if faststart:  # index first: opens, but the packets it lists are missing
        with VideoWriter(tmp_path / "full.mp4", 352, 352, 10) as w:
            for i in range(40):
                w.write(pattern_frame(352, 352, i))
        (tmp_path / "full.mp4").rename(src)
    else:  # index last: the container cannot be opened at all
        write_video(src, frames=40, fmt="mp4")
    data = src.read_bytes()
    src.unlink()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])
    err = _rule(path)
    assert err.rule == "video.corrupt"
    if faststart:
        assert err.limit == 40 and 0 < err.actual < 40


def test_validate_video_rejects_mismatch_with_matroska_named_mp4(tmp_path: pathlib.Path) -> None:
    path = write_video(tmp_path / "clip.mp4", frames=31, fmt="matroska")
    err = _rule(path)
    assert err.rule == "video.extension_mismatch" and err.actual == "matroska"


def test_validate_video_rejects_mismatch_with_png_named_mp4(tmp_path: pathlib.Path) -> None:
    path = write_png(tmp_path / "x.png", pattern_frame(400, 400, 0)).rename(tmp_path / "x.mp4")
    assert _rule(path).rule in ("video.extension_mismatch", "video.corrupt")


def test_validate_video_rejects_extension_with_avi_name(tmp_path: pathlib.Path) -> None:
    path = write_video(tmp_path / "clip.avi", frames=31, fmt="avi")
    assert (_rule(path).rule, _rule(path).actual) == ("video.format", ".avi")


def test_iter_frames_decodes_mov_with_quicktime_container(tmp_path: pathlib.Path) -> None:
    path = write_video(tmp_path / "clip.mov", frames=31)
    info = validate_video(path)
    assert info.container == "mov"
    frames = list(iter_frames(path))
    assert [f.index for f in frames] == list(range(31))
    assert frames[30].timestamp_s == pytest.approx(3.0)
    expected = pattern_frame(352, 352, 7).astype(int)
    assert np.abs(frames[7].rgb.astype(int) - expected).mean() < 4


def test_iter_frames_applies_rotation_with_display_matrix(tmp_path: pathlib.Path) -> None:
    # Stored landscape 640x352 with a 90 degree counter-clockwise display rotation (a phone clip).
    path = write_video(tmp_path / "rot.mp4", width=640, height=352, frames=31, rotation_ccw_deg=90)
    info = validate_video(path)
    assert (info.width, info.height, info.rotation_deg) == (352, 640, 90)
    first = next(iter(iter_frames(path)))
    assert first.rgb.shape == (640, 352, 3)
    # The stored top-left red marker is shown bottom-left after a counter-clockwise quarter turn.
    assert first.rgb[640 - 10, 10, 0] > 200 and first.rgb[640 - 10, 10, 1] < 80
    assert first.rgb[10, 10, 0] < 200


def test_iter_frames_resamples_vfr_with_irregular_timestamps(tmp_path: pathlib.Path) -> None:
    times = [0.0, 0.1, 0.15, 0.4, 0.45, 0.5, 0.9, 1.2, 1.25, 1.3, 3.0, 3.1]
    levels = [20 * (i + 1) for i in range(len(times))]
    path = write_video(tmp_path / "vfr.mp4", timestamps_s=times, image_for=lambda i: _gray(levels[i]))
    frames = list(iter_frames(path, fps=10))
    # Output frame k shows the source frame on screen at k/10 s.
    expected = []
    for k in range(len(frames)):
        t = k / 10
        i = max(j for j, ts in enumerate(times) if ts <= t + 0.025)
        expected.append(levels[i])
    got = [int(round(float(f.rgb.mean()))) for f in frames]
    assert np.abs(np.array(got) - np.array(expected)).max() <= 3
    assert len(frames) in (31, 32)  # up to 3.1 s plus the last frame's display time
    assert [f.timestamp_s for f in frames[:3]] == pytest.approx([0.0, 0.1, 0.2])


def test_iter_frames_downsamples_with_lower_fps(tmp_path: pathlib.Path) -> None:
    path = write_video(tmp_path / "c.mp4", frames=31, image_for=lambda i: _gray(5 + 8 * i))
    frames = list(iter_frames(path, fps=5))
    assert len(frames) == 16
    got = [int(round(float(f.rgb.mean()))) for f in frames]
    assert np.abs(np.array(got) - np.array([5 + 8 * 2 * k for k in range(16)])).max() <= 3


def test_iter_frames_seeks_and_stops_with_start_frame_and_max_duration(tmp_path: pathlib.Path) -> None:
    path = write_video(tmp_path / "c.mp4", frames=31, image_for=lambda i: _gray(5 + 8 * i))
    frames = list(iter_frames(path, start_frame=12, max_duration_s=2.0))
    assert [f.index for f in frames] == list(range(12, 20))
    got = [int(round(float(f.rgb.mean()))) for f in frames]
    assert np.abs(np.array(got) - np.array([5 + 8 * i for i in range(12, 20)])).max() <= 3


def test_probe_video_reads_real_clip_with_shared_data(shared_data: pathlib.Path) -> None:
    path = shared_data / "videos" / "animate_x__dance_1.mp4"
    info = validate_video(path)
    assert (info.width, info.height, info.frame_count) == (512, 758, 194)
    assert info.fps == pytest.approx(24.0) and info.has_audio and info.audio_codec == "aac"
    assert probe_video(path) == info
    count = 0
    for frame in iter_frames(path, max_duration_s=1.0):
        assert frame.rgb.shape == (758, 512, 3)
        count += 1
    assert count == 24


def test_iter_frames_holds_one_frame_with_long_stream(tmp_path: pathlib.Path) -> None:
    import tracemalloc

    path = write_video(tmp_path / "c.mp4", frames=80)
    frame_bytes = 352 * 352 * 3
    tracemalloc.start()
    try:
        count = 0
        for frame in iter_frames(path):
            count += int(frame.rgb.shape[0] == 352)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 80
    assert peak < 8 * frame_bytes, peak  # 80 frames would be 80x; a handful in flight is the bound


def test_iter_frames_caps_rate_at_60_with_90fps_clip(tmp_path: pathlib.Path) -> None:
    path = write_video(tmp_path / "fast.mp4", fps=90, frames=27, image_for=lambda i: _gray(10 + 8 * i))
    frames = list(iter_frames(path))
    assert len(frames) == 18 and frames[1].timestamp_s == pytest.approx(1 / 60)
    got = [int(round(float(f.rgb.mean()))) for f in frames]
    # Frame k at k/60 s shows source frame floor(1.5 k) (the latest at or before it).
    assert np.abs(np.array(got) - np.array([10 + 8 * int(1.5 * k + 1e-9) for k in range(18)])).max() <= 3
