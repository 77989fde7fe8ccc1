"""The sample kit: determinism, spec compliance, ground-truth consistency and drawing sanity."""

from __future__ import annotations

import hashlib
import json
import pathlib

import numpy as np
import pytest

from motion.cli import main as motionctl
from motion.media import iter_frames, read_image, validate_image, validate_video
from motion.samples import (
    DanceParams,
    Palette,
    PinholeCamera,
    load_ground_truth,
    render_background,
    write_empty_video,
    write_performer_video,
    write_samples,
)
from motion.samples.kit import PerformerOptions
from motion.skeleton import LIMB_JOINTS, N_BODY, BodyLandmark, landmark_name

B = BodyLandmark
CLIP_S = 3.0
SMALL = (360, 640)


def _digest(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def kit_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A 3 s kit at the default 720x1280 size, written through the CLI."""
    out = tmp_path_factory.mktemp("kit")
    rc = motionctl(["samples", str(out), "--seed", "5", "--duration-s", str(CLIP_S), "--quiet"])
    assert rc == 0
    return out


def _file_digests(out: pathlib.Path) -> dict[str, str]:
    names = ("character.png", "character.joints.json", "performer.mp4", "performer.joints.json")
    return {n: _digest(out / n) for n in names}


def test_write_samples_same_bytes_with_same_seed(tmp_path: pathlib.Path) -> None:
    a = write_samples(tmp_path / "a", seed=11, duration_s=CLIP_S, size=SMALL)
    b = write_samples(tmp_path / "b", seed=11, duration_s=CLIP_S, size=SMALL)
    assert _file_digests(a.outdir) == _file_digests(b.outdir)


def test_write_samples_different_bytes_with_different_seed(tmp_path: pathlib.Path) -> None:
    a = write_samples(tmp_path / "a", seed=1, duration_s=1.0, size=SMALL, audio=False)
    b = write_samples(tmp_path / "b", seed=2, duration_s=1.0, size=SMALL, audio=False)
    da, db = _file_digests(a.outdir), _file_digests(b.outdir)
    for name in da:
        assert da[name] != db[name], name


def test_performer_video_meets_spec_with_cli_defaults(kit_dir: pathlib.Path) -> None:
    info = validate_video(kit_dir / "performer.mp4")
    assert (info.width, info.height) == (720, 1280)
    assert info.codec == "h264"
    assert info.fps == pytest.approx(30.0)
    assert info.frame_count == 90
    assert info.duration_s == pytest.approx(CLIP_S, abs=0.05)
    assert info.has_audio and info.audio_codec == "aac"


def test_character_png_is_rgba_figure_with_spec_size(kit_dir: pathlib.Path) -> None:
    info = validate_image(kit_dir / "character.png")
    assert info.has_alpha and info.format == "png"
    assert min(info.width, info.height) >= 300
    assert 2 / 5 <= info.width / info.height <= 5 / 2
    rgba = read_image(kit_dir / "character.png")
    alpha = rgba[..., 3]
    # Transparent around the figure, opaque inside it, covering a plausible share of the image.
    assert alpha[0, 0] == 0 and alpha[-1, -1] == 0 and alpha[0, -1] == 0
    coverage = float((alpha > 127).mean())
    assert 0.08 < coverage < 0.6
    opaque = rgba[alpha == 255][:, :3]
    # Clothes and skin in several colours, not a flat silhouette.
    assert len(np.unique(opaque // 32, axis=0)) >= 8


def test_character_joints_lie_on_figure_with_left_on_image_right(kit_dir: pathlib.Path) -> None:
    doc = json.loads((kit_dir / "character.joints.json").read_text())
    assert doc["format"] == "motion-control/character-joints" and doc["version"] == 1
    assert set(doc["joints"]) == {landmark_name(i) for i in range(N_BODY)}
    alpha = read_image(kit_dir / "character.png")[..., 3]
    assert alpha.shape == (doc["height"], doc["width"])
    for name, (x, y) in doc["joints"].items():
        assert alpha[int(round(y)), int(round(x))] > 0, name
    j = doc["joints"]
    for part in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle", "eye", "ear"):
        assert j[f"left_{part}"][0] > j[f"right_{part}"][0], part
    # Upright: head above shoulders above hips above knees above ankles.
    ys = [j["nose"][1], j["left_shoulder"][1], j["left_hip"][1], j["left_knee"][1], j["left_ankle"][1]]
    assert ys == sorted(ys)


def test_ground_truth_matches_video_with_cli_defaults(kit_dir: pathlib.Path) -> None:
    gt = load_ground_truth(kit_dir / "performer.joints.json")
    assert len(gt) == 90 and gt.fps == 30.0 and (gt.width, gt.height) == (720, 1280)
    assert gt.meta["landmark_names"][B.LEFT_HIP] == "left_hip"
    assert set(gt.meta["landmark_definitions"]) == set(gt.meta["landmark_names"])
    # The whole body stays in the frame, with a margin.
    assert np.all(gt.points_px[..., 0] > 5) and np.all(gt.points_px[..., 0] < 715)
    assert np.all(gt.points_px[..., 1] > 5) and np.all(gt.points_px[..., 1] < 1275)
    # Pixels are the pinhole projection of the camera-space points.
    cam = gt.meta["camera"]
    proj = np.stack([cam["cx_px"] + cam["focal_px"] * gt.camera_m[..., 0] / gt.camera_m[..., 2],
                     cam["cy_px"] + cam["focal_px"] * gt.camera_m[..., 1] / gt.camera_m[..., 2]], axis=-1)
    np.testing.assert_allclose(proj, gt.points_px, atol=0.02)
    # Most limb joints are visible in most frames; some are hidden (turns, crossings).
    limb_vis = gt.visible[:, list(LIMB_JOINTS)]
    assert 0.7 < float(limb_vis.mean()) < 1.0


def test_ground_truth_bone_lengths_constant_with_cli_defaults(kit_dir: pathlib.Path) -> None:
    gt = load_ground_truth(kit_dir / "performer.joints.json")
    for key, length in gt.meta["bone_lengths_m"].items():
        a, b = (gt.meta["landmark_names"].index(n) for n in key.split("-"))
        d = np.linalg.norm(gt.camera_m[:, a] - gt.camera_m[:, b], axis=-1)
        np.testing.assert_allclose(d, length, atol=2e-4, err_msg=key)


def test_ground_truth_motion_has_turn_crossing_and_steps_with_cli_defaults(kit_dir: pathlib.Path) -> None:
    gt = load_ground_truth(kit_dir / "performer.joints.json")
    yaw = gt.body_yaw_deg
    assert yaw.max() - yaw.min() >= 350.0  # a full turn
    assert np.all(np.abs(np.diff(yaw)) < 30.0)  # smooth at 30 fps
    c = gt.camera_m
    # Arm crossing: a wrist on the far side of the body's midline (measured along the shoulder axis).
    sh_axis = c[:, B.LEFT_SHOULDER] - c[:, B.RIGHT_SHOULDER]
    sh_axis /= np.linalg.norm(sh_axis, axis=-1, keepdims=True)
    mid = (c[:, B.LEFT_SHOULDER] + c[:, B.RIGHT_SHOULDER]) / 2
    lw = np.einsum("ij,ij->i", c[:, B.LEFT_WRIST] - mid, sh_axis)
    rw = np.einsum("ij,ij->i", c[:, B.RIGHT_WRIST] - mid, sh_axis)
    assert (lw < -0.05).any() and (rw > 0.05).any()
    # Steps: ankles lift (camera y is down) and plant; the hips travel sideways.
    for ankle in (B.LEFT_ANKLE, B.RIGHT_ANKLE):
        assert np.ptp(c[:, ankle, 1]) > 0.07
    assert gt.foot_contact.all(axis=1).any() and (~gt.foot_contact).any()
    hips = (c[:, B.LEFT_HIP] + c[:, B.RIGHT_HIP]) / 2
    assert np.ptp(hips[:, 0]) > 0.1


def test_video_frames_show_figure_at_ground_truth_points(kit_dir: pathlib.Path) -> None:
    gt = load_ground_truth(kit_dir / "performer.joints.json")
    cam = PinholeCamera(**{k: gt.meta["camera"][k] for k in ("width_px", "height_px", "focal_px", "height_m",
                                                            "distance_m")})
    background = render_background(cam, Palette.from_seed(5)).astype(np.int16)
    checked = 0
    for frame in iter_frames(kit_dir / "performer.mp4"):
        if frame.index % 15:
            continue
        diff = np.abs(frame.rgb.astype(np.int16) - background).max(axis=-1)
        figure = diff > 40
        share = float(figure.mean())
        assert 0.03 < share < 0.4, (frame.index, share)
        pts = gt.points_px[frame.index]
        ys, xs = np.nonzero(figure)
        # The drawn figure spans the ground-truth skeleton.
        assert xs.min() - 10 <= pts[:, 0].min() and pts[:, 0].max() <= xs.max() + 10
        assert ys.min() - 10 <= pts[:, 1].min() and pts[:, 1].max() <= ys.max() + 10
        vis = [j for j in LIMB_JOINTS if gt.visible[frame.index, j]]
        on_figure = [figure[int(pts[j, 1]), int(pts[j, 0])] for j in vis]
        assert np.mean(on_figure) >= 0.9, frame.index
        checked += 1
    assert checked == 6


def test_write_empty_video_has_no_figure_with_defaults(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "empty.mp4"
    n = write_empty_video(path, duration_s=3.0, size=(640, 480))
    info = validate_video(path)  # a valid reference video, just without a person
    assert n == 90 and info.frame_count == 90 and (info.width, info.height) == (640, 480)
    background = render_background(PinholeCamera.framing(640, 480), Palette.from_seed(0)).astype(np.int16)
    frames = list(iter_frames(path))
    assert len(frames) == 90
    for f in frames[::30]:
        diff = np.abs(f.rgb.astype(np.int16) - background).max(axis=-1)
        # Only a soft moving light: no figure-sized region of strong change.
        assert float((diff > 40).mean()) < 0.01


def test_write_performer_video_rejects_odd_size_with_bad_option(tmp_path: pathlib.Path) -> None:
    from motion.errors import InputError

    with pytest.raises(InputError) as exc:
        write_performer_video(tmp_path / "p.mp4", options=PerformerOptions(width=361, height=640, duration_s=1.0))
    assert exc.value.rule == "samples.size_px"
    assert not (tmp_path / "p.mp4").exists()


def test_cli_samples_exits_2_with_malformed_size(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = motionctl(["samples", str(tmp_path / "k"), "--size", "big", "--duration-s", "1"])
    assert rc == 2
    assert "samples.size_px" in capsys.readouterr().err


def test_dance_params_differ_with_different_seed() -> None:
    a, b = DanceParams.from_seed(1), DanceParams.from_seed(2)
    assert a != b
    assert DanceParams.from_seed(1) == a
