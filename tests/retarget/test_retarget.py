"""Retargeting on synthetic performers (known geometry) and on real pose data from ../shared/data."""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np
import pytest

from motion.errors import InputError
from motion.rig import CharacterRig
from motion.skeleton import BODY_BONES, SPACE_CHARACTER, BodyLandmark, SkeletonFrame, SkeletonSequence
from services.render.character import analyse_character
from services.retarget.retarget import RetargetOptions, body_yaw_deg, retarget, retarget_with_report
from tests.retarget.synthetic import make_sequence

B = BodyLandmark
DATA = pathlib.Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def rig(shared_data: pathlib.Path) -> CharacterRig:
    return analyse_character(shared_data / "drawings" / "char1_texture.png",
                             shared_data / "drawings" / "char1_char_cfg.yaml")


def _end(points: np.ndarray, joint: int) -> np.ndarray:
    if joint == -1:
        return (points[B.LEFT_HIP] + points[B.RIGHT_HIP]) / 2
    if joint == -2:
        return (points[B.LEFT_SHOULDER] + points[B.RIGHT_SHOULDER]) / 2
    return points[joint]


def _bone_errors(seq: SkeletonSequence, rig: CharacterRig) -> tuple[float, float]:
    """Max |2D length - L * cos(out-of-plane angle)| and max (2D length - L) over all frames and bones."""
    worst_fore, worst_over = 0.0, -math.inf
    for f in seq.frames:
        assert f.body is not None and f.world is not None
        for name, parent, child in BODY_BONES:
            bone = rig.bone(name)
            assert bone is not None
            d2 = np.linalg.norm(_end(f.body[:, :2], child) - _end(f.body[:, :2], parent))
            end3 = _end(f.world[:, :3], child)
            if name == "neck":  # the neck's direction is taken towards the ears' midpoint (head yaw safe)
                end3 = (f.world[B.LEFT_EAR, :3] + f.world[B.RIGHT_EAR, :3]) / 2.0
            d3 = end3 - _end(f.world[:, :3], parent)
            cos_out = float(np.linalg.norm(d3[:2]) / max(np.linalg.norm(d3), 1e-9))
            worst_fore = max(worst_fore, abs(d2 - bone.length_px * cos_out))
            worst_over = max(worst_over, d2 - bone.length_px)
    return worst_fore, worst_over


@pytest.mark.parametrize("orientation", ["video", "image"])
def test_retarget_keeps_character_bone_lengths_with_synthetic_motion(rig: CharacterRig, orientation: str) -> None:
    seq = make_sequence(90, walk=True, yaw_deg=lambda t: 40 * math.sin(t), jitter_px=1.0)
    out = retarget(seq, rig, RetargetOptions(orientation=orientation))
    assert out.space == SPACE_CHARACTER and (out.width, out.height) == (rig.width, rig.height)
    assert len(out.frames) == 90 and all(f.present for f in out.frames)
    fore, over = _bone_errors(out, rig)
    assert fore <= 1.0, f"a bone is {fore:.2f} px off its foreshortened character length"
    assert over <= 1.0
    # The arms swing out of the image plane, so foreshortening really shows.
    forearm = rig.bone("left_forearm")
    assert forearm is not None
    lengths = [np.linalg.norm(f.body[B.LEFT_WRIST, :2] - f.body[B.LEFT_ELBOW, :2]) for f in out.frames]
    assert min(lengths) < 0.97 * forearm.length_px


def test_image_orientation_canonicalises_yaw_with_turning_performer(rig: CharacterRig) -> None:
    seq = make_sequence(60, yaw_deg=lambda t: 170 * t / 2.0, arm_swing=False)  # 0 -> 170 degrees in 2 s
    out = retarget(seq, rig, RetargetOptions(orientation="image"))
    rest_width = rig.joints["left_shoulder"][0] - rig.joints["right_shoulder"][0]
    for f in out.frames:
        assert f.body is not None
        assert abs(f.body_yaw_deg) < 5.0 and not f.mirrored
        width = f.body[B.LEFT_SHOULDER, 0] - f.body[B.RIGHT_SHOULDER, 0]
        assert width == pytest.approx(rest_width, rel=0.05)  # still facing front, full shoulder width


def test_video_orientation_mirrors_with_performer_facing_away(rig: CharacterRig) -> None:
    yaw = lambda t: 180.0 * min(t, 2.0) / 2.0  # noqa: E731 - turns away over 2 s, then stays
    seq = make_sequence(90, yaw_deg=yaw, arm_swing=False)
    out = retarget(seq, rig, RetargetOptions(orientation="video"))
    yaws = np.array([f.body_yaw_deg for f in out.frames])
    mirrored = np.array([f.mirrored for f in out.frames])
    expected = np.array([yaw(f.timestamp_s) for f in seq.frames])
    assert np.abs(((yaws - expected + 180) % 360) - 180).max() < 2.0
    assert not mirrored[expected < 80].any() and mirrored[expected > 100].all()
    # Side-on at 90 degrees a flat character keeps half its drawn shoulder width (min_width_fraction), on
    # its own side while not yet mirrored; facing away, the anatomical left is on the image's left.
    side = int(np.argmin(np.abs(expected - 90)))
    widths = np.array([f.body[B.LEFT_SHOULDER, 0] - f.body[B.RIGHT_SHOULDER, 0] for f in out.frames])
    drawn = rig.joints["left_shoulder"][0] - rig.joints["right_shoulder"][0]
    assert widths[side] == pytest.approx(0.5 * drawn, rel=0.05)
    # Never narrower than the minimum, and on the side the mirrored flag says (no sliver, no jump across).
    signed = np.where(mirrored, -widths, widths)
    assert signed.min() >= 0.5 * drawn * 0.95
    assert widths[-1] < -0.9 * widths[0]
    pure = retarget(seq, rig, RetargetOptions(orientation="video", min_width_fraction=0.0))
    pure_width = pure.frames[side].body[B.LEFT_SHOULDER, 0] - pure.frames[side].body[B.RIGHT_SHOULDER, 0]
    assert abs(pure_width) < 0.1 * widths[0]  # pure projection: the shoulders overlap side-on


def test_pin_feet_reduces_skate_fivefold_with_jittery_planted_feet(rig: CharacterRig) -> None:
    seq = make_sequence(120, walk=True, arm_swing=False, jitter_px=2.0, seed=7)
    res = retarget_with_report(seq, rig, RetargetOptions(pin_feet=True))
    assert res.contact_frames > 40
    assert res.foot_skate_before_px > 1.0
    assert res.foot_skate_after_px * 5 <= res.foot_skate_before_px, (res.foot_skate_before_px, res.foot_skate_after_px)
    flags = sum(f.left_foot_contact + f.right_foot_contact for f in res.sequence.frames)
    assert flags == res.contact_frames
    unpinned = retarget_with_report(seq, rig, RetargetOptions(pin_feet=False))
    assert unpinned.foot_skate_after_px == pytest.approx(unpinned.foot_skate_before_px)
    # Pinning keeps every bone's length.
    fore, _ = _bone_errors(res.sequence, rig)
    assert fore <= 1.0


@pytest.mark.parametrize(("orientation", "fps", "seconds", "kept"), [
    ("image", 10.0, 12.0, 100), ("video", 10.0, 12.0, 120), ("video", 5.0, 31.0, 150)])
def test_retarget_trims_to_mode_limit_with_long_sequence(rig: CharacterRig, orientation: str, fps: float,
                                                          seconds: float, kept: int) -> None:
    n = int(round(seconds * fps))
    res = retarget_with_report(make_sequence(n, fps=fps, arm_swing=False), rig,
                               RetargetOptions(orientation=orientation))
    assert len(res.sequence.frames) == kept
    assert res.sequence.trimmed_s == pytest.approx((n - kept) / fps)
    assert any(w.startswith("retarget.trimmed") for w in res.sequence.warnings) == (kept < n)


def test_loop_blends_end_into_start_with_loop_option(rig: CharacterRig) -> None:
    seq = make_sequence(75, arm_swing=True)  # the arms end mid-swing, far from where they start
    plain = retarget(seq, rig, RetargetOptions(loop=False))
    looped = retarget(seq, rig, RetargetOptions(loop=True, loop_blend_s=0.5))

    def wrap_jump(s: SkeletonSequence) -> float:
        return float(np.abs(s.frames[-1].body[:, :2] - s.frames[0].body[:, :2]).max())

    steps = [float(np.abs(b.body[:, :2] - a.body[:, :2]).max()) for a, b in zip(looped.frames, looped.frames[1:],
                                                                                strict=False)]
    assert len(looped.frames) == 75 - 15
    assert wrap_jump(plain) > 3 * max(steps)
    assert wrap_jump(looped) <= 1.5 * max(steps)
    fore, _ = _bone_errors(looped, rig)
    assert fore <= 1.0
    assert any("cross-fades" in w for w in looped.warnings)


def test_retarget_carries_fingers_and_face_with_hands_and_face(rig: CharacterRig) -> None:
    seq = make_sequence(10, hands=True, face=True)
    out = retarget(seq, rig, RetargetOptions())
    f, src = out.frames[5], seq.frames[5]
    assert f.left_hand is not None and f.right_hand is not None and f.face is not None
    assert src.left_hand is not None and src.face is not None and f.body is not None
    assert f.left_hand.landmarks.shape == (21, 5) and f.left_hand.handedness == "left"
    assert np.allclose(f.left_hand.landmarks[0, :2], f.body[B.LEFT_WRIST, :2], atol=1e-3)
    # Scaled to the character's hand: wrist -> index knuckle of the rig, else 0.4 x its forearm (a drawing
    # with no hand joints); the synthetic hand lies in the image plane, so its 2D size is its full size.
    forearm = rig.bone("left_forearm")
    assert forearm is not None
    if "left_index" in rig.joints:
        char_hand = float(np.linalg.norm(np.subtract(rig.joints["left_index"], rig.joints["left_wrist"])))
    else:
        char_hand = 0.4 * forearm.length_px
    size = np.linalg.norm(f.left_hand.landmarks[9, :2] - f.left_hand.landmarks[0, :2])
    assert size == pytest.approx(char_hand, rel=0.05)
    assert f.face.expression == src.face.expression
    assert f.face.landmarks.shape == (468, 5)
    assert np.allclose(f.face.landmarks[:, :2].mean(axis=0), f.body[B.NOSE, :2], atol=1.0)


def test_retarget_fills_missing_frames_with_gaps(rig: CharacterRig) -> None:
    seq = make_sequence(30)
    for i in (0, 10, 11, 12, 29):
        seq.frames[i] = SkeletonFrame.missing(i, i / seq.fps)
    out = retarget_with_report(seq, rig, RetargetOptions())
    assert out.filled_frames == 5 and all(f.present for f in out.sequence.frames)
    body = np.stack([f.body[:, :2] for f in out.sequence.frames])
    assert np.isfinite(body).all()
    assert np.allclose(body[0], body[1]) and np.allclose(body[29], body[28])


def test_retarget_raises_with_bad_input(rig: CharacterRig) -> None:
    empty = make_sequence(5)
    empty.frames = [SkeletonFrame.missing(i, i / 30) for i in range(5)]
    with pytest.raises(InputError) as exc:
        retarget(empty, rig, RetargetOptions())
    assert exc.value.rule == "pose.no_person"
    with pytest.raises(InputError) as exc:
        retarget(make_sequence(5), rig, RetargetOptions(orientation="sideways"))
    assert exc.value.rule == "retarget.orientation" and exc.value.actual == "sideways"
    bad_fps = make_sequence(5)
    bad_fps.fps = 0.0
    with pytest.raises(InputError) as exc:
        retarget(bad_fps, rig, RetargetOptions())
    assert exc.value.rule == "skeleton.fps"


def test_retarget_keeps_character_in_frame_with_large_sideways_motion(rig: CharacterRig) -> None:
    seq = make_sequence(60, arm_swing=False)
    for i, f in enumerate(seq.frames):
        assert f.body is not None
        f.body[:, 0] += 15.0 * i  # drifts 900 px to the right
    out = retarget(seq, rig, RetargetOptions())
    xs = np.stack([f.body[:, 0] for f in out.frames])
    rest_max_x = max(x for x, _ in rig.joints.values())
    assert xs.max() <= max(rig.width - 1, rest_max_x) + 1e-3
    # It did move right before hitting the edge.
    assert xs[-1].mean() > xs[0].mean() + 20


def test_retarget_animates_cropped_character_with_warning(shared_data: pathlib.Path, tmp_path: pathlib.Path) -> None:
    from tests.character.test_character import _ad_joints, _write_joints

    joints = _ad_joints(shared_data, "char3")
    for k in ("left_knee", "left_ankle", "right_knee", "right_ankle"):
        del joints[k]
    cropped = analyse_character(shared_data / "drawings" / "char3_texture.png",
                                _write_joints(tmp_path / "j.json", joints, 564, 547))
    out = retarget_with_report(make_sequence(20, walk=True), cropped, RetargetOptions())
    assert any("estimated_bones" in w for w in out.sequence.warnings)
    assert any("character.cropped" in w for w in out.sequence.warnings)
    assert all(np.isfinite(f.body).all() for f in out.sequence.frames)


def test_retarget_follows_turn_both_orientations_with_real_ubc_excerpt(rig: CharacterRig) -> None:
    """Real pose data (tests/retarget/data: the turn in musepose__ubc_91-3003CN5S.mp4, from services.pose)."""
    seq = SkeletonSequence.load_json(DATA / "ubc_turn_skeleton.json")
    perf_yaw = body_yaw_deg(np.stack([f.world[:, :3] for f in seq.frames]))
    assert np.abs(perf_yaw).max() > 150  # the model really turns away
    video = retarget_with_report(seq, rig, RetargetOptions(orientation="video"))
    image = retarget_with_report(seq, rig, RetargetOptions(orientation="image"))
    v_yaw = np.array([f.body_yaw_deg for f in video.sequence.frames])
    assert np.allclose(v_yaw, perf_yaw, atol=0.5)
    v_mirror = np.array([f.mirrored for f in video.sequence.frames])
    assert v_mirror[np.abs(perf_yaw) > 110].all() and not v_mirror[np.abs(perf_yaw) < 70].any()
    assert not any(f.mirrored for f in image.sequence.frames)
    assert max(abs(f.body_yaw_deg) for f in image.sequence.frames) < 20
    for res in (video, image):
        fore, over = _bone_errors(res.sequence, rig)
        assert fore <= 1.0 and over <= 1.0


def test_cli_retarget_writes_sequence_with_character_and_joints(shared_data: pathlib.Path,
                                                               tmp_path: pathlib.Path) -> None:
    from motion.cli import main

    seq_path = tmp_path / "perf.json"
    make_sequence(45, walk=True).save_json(seq_path)
    out = tmp_path / "out.json"
    rc = main(["retarget", "--skeleton", str(seq_path), "--character",
               str(shared_data / "drawings" / "char2_texture.png"), "--joints",
               str(shared_data / "drawings" / "char2_char_cfg.yaml"), "--orientation", "image", "--loop",
               "-o", str(out), "--quiet"])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["space"] == SPACE_CHARACTER and (doc["width"], doc["height"]) == (333, 392)
    assert len(doc["frames"]) == 45 - 11  # loop: 11 frames (25 %) cross-faded away
    rc = main(["retarget", "--skeleton", str(tmp_path / "nope.json"), "--character",
               str(shared_data / "drawings" / "char2_texture.png"), "-o", str(out), "--quiet"])
    assert rc == 2


def _pose_available() -> bool:
    try:
        from services.pose.models import ensure_models
        from services.pose.pipeline import PoseExtractor  # noqa: F401

        ensure_models()
    except Exception:  # noqa: BLE001 - any failure means "not available here"
        return False
    return True


@pytest.mark.skipif(not _pose_available(), reason="pose pipeline or models not available")
def test_retarget_both_orientations_with_live_pose_on_turning_model(shared_data: pathlib.Path,
                                                                     rig: CharacterRig) -> None:
    """The first 4 s of musepose__ubc_91-3003CN5S.mp4 through services.pose, then onto a drawing."""
    from services.pose.pipeline import PoseExtractor, PoseOptions

    with PoseExtractor(PoseOptions(hands=False, face=False, max_duration_s=4.0)) as ex:
        seq = ex.process_video(shared_data / "videos" / "musepose__ubc_91-3003CN5S.mp4")
    perf_yaw = body_yaw_deg(np.stack([f.world[:, :3] for f in seq.frames if f.world is not None]))
    assert np.abs(perf_yaw).max() > 45  # she turns both ways in these 4 s
    for orientation in ("video", "image"):
        res = retarget_with_report(seq, rig, RetargetOptions(orientation=orientation))
        yaws = np.abs([f.body_yaw_deg for f in res.sequence.frames])
        if orientation == "video":
            assert yaws.max() > 45
        else:
            assert yaws.max() < 20
        fore, over = _bone_errors(res.sequence, rig)
        assert fore <= 1.0 and over <= 1.0
        assert res.contact_frames > 0
        assert res.foot_skate_after_px * 5 <= res.foot_skate_before_px, (orientation, res.foot_skate_before_px,
                                                                         res.foot_skate_after_px)


def test_image_orientation_keeps_profile_with_character_facing_left(rig: CharacterRig) -> None:
    import dataclasses

    profile = dataclasses.replace(rig, facing="left")
    seq = make_sequence(30, yaw_deg=lambda t: 60 * t, arm_swing=False)
    image = retarget(seq, profile, RetargetOptions(orientation="image"))
    video = retarget(seq, profile, RetargetOptions(orientation="video"))
    spine = profile.bone("spine")
    assert spine is not None
    for fi, fv, src in zip(image.frames, video.frames, seq.frames, strict=True):
        assert fi.body is not None and fv.body is not None
        # Drawn facing left: whatever the performer's yaw, the image mode shows a profile (shoulders overlap).
        assert abs(fi.body[B.LEFT_SHOULDER, 0] - fi.body[B.RIGHT_SHOULDER, 0]) < 0.1 * spine.length_px
        assert abs(fi.body_yaw_deg) < 5
        assert fv.body_yaw_deg == pytest.approx(60 * src.timestamp_s, abs=1.0)


def test_root_motion_scales_by_height_ratio_with_moving_performer(rig: CharacterRig) -> None:
    seq = make_sequence(40, arm_swing=False)
    for i, f in enumerate(seq.frames):
        assert f.body is not None
        f.body[:, 0] += 2.0 * i  # 78 px to the right in video pixels
        f.body[:, 1] -= 1.0 * i  # and 39 px up (a slow rise)
    res = retarget_with_report(seq, rig, RetargetOptions(pin_feet=False, keep_in_frame=False))
    hips = [(f.body[B.LEFT_HIP, :2] + f.body[B.RIGHT_HIP, :2]) / 2 for f in res.sequence.frames]
    src = [(f.body[B.LEFT_HIP, :2] + f.body[B.RIGHT_HIP, :2]) / 2 for f in seq.frames]
    moved, moved_src = hips[-1] - hips[0], src[-1] - src[0]
    assert np.allclose(moved, moved_src * res.height_ratio, atol=0.5)
    assert np.allclose(hips[0], rig.joints["hip_center"], atol=0.5)  # starts where the character stands
    # Ratio = character (spine + neck + thigh + shin) / the performer's, both in pixels.
    lengths = {b.name: b.length_px for b in rig.bones}
    char = lengths["spine"] + lengths["neck"] + (lengths["left_thigh"] + lengths["right_thigh"]) / 2 + (
        lengths["left_shin"] + lengths["right_shin"]) / 2
    p = seq.frames[0].body[:, :2]

    def d(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.linalg.norm(a - b))

    hip_c, sh_c = (p[B.LEFT_HIP] + p[B.RIGHT_HIP]) / 2, (p[B.LEFT_SHOULDER] + p[B.RIGHT_SHOULDER]) / 2
    perf = d(sh_c, hip_c) + d(p[B.NOSE], sh_c) + (d(p[B.LEFT_KNEE], p[B.LEFT_HIP]) + d(p[B.RIGHT_KNEE], p[B.RIGHT_HIP])
                                                  ) / 2 + (d(p[B.LEFT_ANKLE], p[B.LEFT_KNEE])
                                                           + d(p[B.RIGHT_ANKLE], p[B.RIGHT_KNEE])) / 2
    assert res.height_ratio == pytest.approx(char / perf, rel=1e-3)
