"""The pose pipeline's speed work keeps its results: vectorised heatmap refinement, ROI tracking that skips
hand_recrop / the face detector, one executor per part, the pose model without its unused segmentation
branch, RGBA crops, and the end-to-end benchmark's clip."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from services.pose import geometry as g
from services.pose.pipeline import PoseExtractor, PoseOptions
from tests.pose.conftest import read_frames


def _refine_loop(landmarks: np.ndarray, heatmap: np.ndarray, kernel_size: int = 7,
                 min_confidence: float = 0.5) -> np.ndarray:
    """RefineLandmarksFromHeatmap written plainly, one landmark and one clipped window at a time."""
    hm_h, hm_w, n = heatmap.shape
    out = landmarks.astype(np.float32).copy()
    off = (kernel_size - 1) // 2
    for i in range(min(n, len(landmarks))):
        cc, cr = int(landmarks[i, 0] * hm_w), int(landmarks[i, 1] * hm_h)
        if not (0 <= cc < hm_w and 0 <= cr < hm_h):
            continue
        r0, r1, c0, c1 = max(0, cr - off), min(hm_h, cr + off + 1), max(0, cc - off), min(hm_w, cc + off + 1)
        conf = 1.0 / (1.0 + np.exp(-heatmap[r0:r1, c0:c1, i].astype(np.float64)))
        if conf.max() < min_confidence:
            continue
        rows, cols = np.mgrid[r0:r1, c0:c1]
        out[i, 0] = (cols * conf).sum() / conf.sum() / hm_w
        out[i, 1] = (rows * conf).sum() / conf.sum() / hm_h
    return out


def test_refine_from_heatmap_matches_per_landmark_loop_with_border_and_outside_points() -> None:
    rng = np.random.default_rng(7)
    hm = (rng.normal(size=(64, 64, 39)) * 3.0).astype(np.float32)
    lms = rng.uniform(-0.1, 1.1, size=(39, 5)).astype(np.float32)  # some outside, some in border windows
    lms[0, :2] = (0.0, 0.0)  # window clipped at the top-left corner
    lms[1, :2] = (0.999, 0.999)  # clipped at the bottom-right corner
    hm[:, :, 2] = -20.0  # a landmark whose window is never confident keeps its value
    out = g.refine_from_heatmap(lms, hm)
    np.testing.assert_allclose(out, _refine_loop(lms, hm), atol=1e-6)
    np.testing.assert_array_equal(out[2], lms[2])
    assert not np.allclose(out[:, :2], lms[:, :2])  # the refinement did move points


def _run(frames: list[np.ndarray], fps: float, track_rois: bool) -> tuple[list, dict[str, int]]:
    with PoseExtractor(PoseOptions(track_rois=track_rois)) as ex:
        out = [f for f, _ in ex.process_frames((i, i / fps, rgb) for i, rgb in enumerate(frames))]
        return out, dict(ex.stats)


def test_track_rois_skips_recrop_and_face_detector_with_real_clip(short_clip: pathlib.Path) -> None:
    frames, fps = read_frames(short_clip, 12)
    full, full_stats = _run(frames, fps, track_rois=False)
    fast, fast_stats = _run(frames, fps, track_rois=True)
    n = len(frames)
    assert full_stats["hand_recrop_runs"] == 2 * n and full_stats["face_detector_runs"] == n
    # The performer moves little in this clip: after the first frame the tracked ROIs are kept.
    assert fast_stats["hand_recrop_runs"] <= n // 2
    assert fast_stats["face_detector_runs"] <= n // 2
    assert fast_stats["hand_landmark_runs"] <= full_stats["hand_landmark_runs"]
    for a, b in zip(full, fast, strict=True):
        assert a.body is not None and b.body is not None
        np.testing.assert_allclose(a.body, b.body, atol=1e-4)  # the body path is untouched
        height = float(np.ptp(a.body[:, 1]))
        for ha, hb in ((a.left_hand, b.left_hand), (a.right_hand, b.right_hand)):
            assert (ha is None) == (hb is None)
            if ha is not None and hb is not None:
                # The ROI differs slightly, the landmarks barely: within 1.5 % of the person's height.
                assert np.abs(ha.landmarks[:, :2] - hb.landmarks[:, :2]).max() < 0.015 * height
        assert (a.face is None) == (b.face is None)
        if a.face is not None and b.face is not None:
            assert np.abs(a.face.landmarks[:, :2] - b.face.landmarks[:, :2]).mean() < 0.01 * height


def test_parts_disabled_run_no_part_models_with_body_only_options(short_clip: pathlib.Path) -> None:
    frames, fps = read_frames(short_clip, 4)
    with PoseExtractor(PoseOptions(hands=False, face=False)) as ex:
        out = [f for f, _ in ex.process_frames((i, i / fps, rgb) for i, rgb in enumerate(frames))]
        stats = dict(ex.stats)
    assert all(f.present and f.left_hand is None and f.right_hand is None and f.face is None for f in out)
    assert stats["hand_landmark_runs"] == stats["face_landmark_runs"] == 0


def test_make_clip_gives_30_fps_clip_of_requested_length_with_real_video(
        shared_data: pathlib.Path, tmp_path: pathlib.Path) -> None:
    from bench.bench_e2e import make_clip
    from motion.media import probe_video

    clip = make_clip(shared_data / "videos" / "musepose__ubc_91BjuE6irxS.mp4", tmp_path / "clip.mp4", 1.0)
    info = probe_video(clip)
    assert abs(info.fps - 30.0) < 0.01
    assert info.frame_count == 30
    assert info.width % 2 == 0 and info.height % 2 == 0


def test_input_scaling_is_bit_identical_with_two_pass_conversion() -> None:
    from services.pose.pipeline import _signed, _unit, _unit_div

    crop = np.random.default_rng(3).integers(0, 256, size=(64, 48, 3), dtype=np.uint8)
    crop[0, 0] = (0, 128, 255)
    np.testing.assert_array_equal(_unit(crop), crop.astype(np.float32) * (1.0 / 255.0))
    np.testing.assert_array_equal(_unit_div(crop), crop.astype(np.float32) / 255.0)
    np.testing.assert_array_equal(_signed(crop), crop.astype(np.float32) * (2.0 / 255.0) - 1.0)
    assert _signed(crop).dtype == np.float32 and float(_signed(crop)[0, 0, 2]) == 1.0


def test_pruned_pose_model_keeps_used_outputs_bit_identical_with_real_crop(
        pose_models: dict[str, pathlib.Path], short_clip: pathlib.Path) -> None:
    from services.pose.pipeline import POSE_LM_SEGMENTATION, _unit
    from services.pose.runtime import LiteRTRuntime

    frames, _ = read_frames(short_clip, 1)
    h, w = frames[0].shape[:2]
    x = _unit(g.Rect(w / 2, h / 2, h, h, 0.1).crop(frames[0], 256, 256))[None]
    rt = LiteRTRuntime(num_threads=1)
    full = rt.load(pose_models["pose_landmark_full"])
    pruned = rt.load(pose_models["pose_landmark_full"], unused_outputs=(POSE_LM_SEGMENTATION,))
    assert pruned.output_names == [n for n in full.output_names if n != POSE_LM_SEGMENTATION]
    assert len(pruned._interpreter._get_ops_details()) < len(full._interpreter._get_ops_details())  # type: ignore[attr-defined]
    want = dict(zip(full.output_names, full.run(x), strict=True))
    for name, got in zip(pruned.output_names, pruned.run(x), strict=True):
        np.testing.assert_array_equal(got, want[name])


def test_prune_tflite_outputs_raises_model_error_with_unknown_output_or_non_tflite_bytes(
        pose_models: dict[str, pathlib.Path]) -> None:
    from motion.errors import ModelError
    from services.pose.runtime import prune_tflite_outputs

    data = pose_models["hand_recrop"].read_bytes()
    with pytest.raises(ModelError) as err:
        prune_tflite_outputs(data, ("no_such_output",))
    assert err.value.details["rule"] == "pose.model_outputs" and err.value.details["actual"] == ["no_such_output"]
    with pytest.raises(ModelError) as err:
        prune_tflite_outputs(b"\0" * 64, ("Identity",))
    assert err.value.details["rule"] == "pose.model_format"


def test_rgba_crop_source_gives_bit_identical_model_inputs_with_rotated_rois(short_clip: pathlib.Path) -> None:
    from services.pose.pipeline import _crop_source, _signed, _unit, _unit_div

    frames, _ = read_frames(short_clip, 1)
    rgb = frames[0]
    src = _crop_source(rgb)
    assert src.shape == rgb.shape[:2] + (4,) and np.array_equal(src[:, :, :3], rgb)
    rng = np.random.default_rng(5)
    h, w = rgb.shape[:2]
    for _ in range(40):  # inside, across the border and partly outside the frame
        r = g.Rect(rng.uniform(-50, w + 50), rng.uniform(-50, h + 50), rng.uniform(20, 2 * h), rng.uniform(20, 2 * h),
                   rng.uniform(-3.0, 3.0))
        for side, border_zero in ((256, False), (224, False), (192, False), (128, True)):
            a, b = r.crop(rgb, side, side, border_zero), r.crop(src, side, side, border_zero)
            for conv in (_unit, _unit_div, _signed):
                np.testing.assert_array_equal(conv(a), conv(b))
    boxed_rgb, lb_rgb = g.letterbox_image(rgb, 224)
    boxed_src, lb_src = g.letterbox_image(src, 224)
    assert lb_rgb == lb_src and np.array_equal(_signed(boxed_rgb), _signed(boxed_src))
    big = np.zeros((2160, 1080, 3), np.uint8)  # above RGBA_CROP_MAX_PIXELS: the conversion would cost more
    assert _crop_source(big).shape == big.shape
