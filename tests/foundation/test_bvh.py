"""BVH export/import: exact round trip through forward kinematics, and the reader on real BVH files."""

from __future__ import annotations

import math
import pathlib

import numpy as np
import pytest

from motion import bvh
from motion.errors import InputError
from motion.skeleton import SkeletonFrame, SkeletonSequence

# A real performer sequence (pose pipeline output, 3D world landmarks) kept as a small golden file.
SEQ_JSON = pathlib.Path(__file__).parents[1] / "retarget" / "data" / "ubc_turn_skeleton.json"
# Round-trip tolerance: FK positions vs the source joints rebuilt with the T-pose bone lengths.
TOLERANCE_CM = 0.01


@pytest.fixture(scope="module")
def seq() -> SkeletonSequence:
    return SkeletonSequence.load_json(SEQ_JSON)


def _max_error_cm(seq: SkeletonSequence, motion: bvh.BvhMotion) -> float:
    pos, ends = motion.positions(), motion.end_site_positions()
    err = 0.0
    for f, frame in enumerate(seq.frames):
        if not frame.present:
            continue
        ref = bvh.reference_positions_cm(seq, f)
        for i, j in enumerate(motion.joints):
            err = max(err, float(np.linalg.norm(pos[f, i] - ref[j.name])))
        for name, p in ends.items():
            err = max(err, float(np.linalg.norm(p[f] - ref[name + "/End"])))
    return err


def test_export_round_trips_joint_positions_with_real_sequence(seq: SkeletonSequence,
                                                               tmp_path: pathlib.Path) -> None:
    out = tmp_path / "motion.bvh"
    bvh.export_bvh(seq, out)
    motion = bvh.read_bvh(out)
    assert [j.name for j in motion.joints] == list(bvh.JOINT_NAMES)
    assert motion.frames.shape == (len(seq.frames), 3 + 3 * len(bvh.JOINT_NAMES))
    assert math.isclose(motion.fps, seq.fps, rel_tol=1e-6)
    assert _max_error_cm(seq, motion) < TOLERANCE_CM
    # Offsets are the sequence's median bone lengths in centimetres: a forearm is 15..40 cm.
    forearm = float(np.linalg.norm(motion.joints[motion.index("LeftHand")].offset))
    assert 15.0 < forearm < 40.0


def test_export_moves_the_arm_with_the_source_with_bent_elbow(seq: SkeletonSequence) -> None:
    # Raise the left wrist by 20 cm in one frame: the exported rotations must follow (the check can fail).
    frames = [SkeletonFrame(**{**f.__dict__}) for f in seq.frames]
    src = frames[5].world
    assert src is not None
    moved = src.copy()
    moved[15, 1] -= 0.20  # MediaPipe world y points down
    frames[5] = SkeletonFrame(**{**frames[5].__dict__, "world": moved})
    edited = SkeletonSequence(**{**seq.__dict__, "frames": frames})
    a = bvh.parse_bvh(bvh.export_bvh(seq)).positions()[5]
    b_motion = bvh.parse_bvh(bvh.export_bvh(edited))
    b = b_motion.positions()[5]
    hand = b_motion.index("LeftHand")
    assert b[hand][1] - a[hand][1] > 5.0  # up in BVH (Y up), allowing for the rest-length rescale
    assert _max_error_cm(edited, b_motion) < TOLERANCE_CM


def test_export_holds_last_pose_with_missing_frames(seq: SkeletonSequence) -> None:
    frames = list(seq.frames)
    frames[3] = SkeletonFrame.missing(3, frames[3].timestamp_s)
    edited = SkeletonSequence(**{**seq.__dict__, "frames": frames})
    motion = bvh.parse_bvh(bvh.export_bvh(edited))
    assert motion.frames.shape[0] == len(frames)
    np.testing.assert_allclose(motion.frames[3], motion.frames[2])


def test_euler_zxy_inverts_rotation_with_random_angles() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        z, x, y = rng.uniform(-170, 170), rng.uniform(-85, 85), rng.uniform(-170, 170)
        r = bvh._axis_rotation("Z", math.radians(z)) @ bvh._axis_rotation("X", math.radians(x)) \
            @ bvh._axis_rotation("Y", math.radians(y))
        np.testing.assert_allclose(bvh.euler_zxy_deg(r), (z, x, y), atol=1e-6)


def test_parse_rejects_truncated_motion_with_short_file(seq: SkeletonSequence) -> None:
    text = bvh.export_bvh(seq)
    with pytest.raises(InputError) as e:
        bvh.parse_bvh(text[: len(text) - 200])
    assert e.value.rule in ("bvh.frames", "bvh.syntax")


def test_export_rejects_sequence_with_no_world_points(seq: SkeletonSequence) -> None:
    frames = [SkeletonFrame.missing(i, f.timestamp_s) for i, f in enumerate(seq.frames)]
    with pytest.raises(InputError) as e:
        bvh.export_bvh(SkeletonSequence(**{**seq.__dict__, "frames": frames}))
    assert e.value.rule == "bvh.no_frames"


@pytest.mark.parametrize("name", ["bvh_dab.bvh", "bvh_wave_hello.bvh"])
def test_reader_gives_rigid_plausible_body_with_real_bvh(shared_data: pathlib.Path, name: str) -> None:
    motion = bvh.read_bvh(shared_data / "motions" / name)
    pos = motion.positions()
    assert pos.shape[0] > 100 and pos.shape[1] == len(motion.joints)

    def length(a: str, b: str) -> np.ndarray:
        return np.linalg.norm(pos[:, motion.index(a)] - pos[:, motion.index(b)], axis=1)

    # FK keeps every bone rigid over the whole clip (the offsets are fixed; only rotations move).
    for a, b in [("LeftArm", "LeftForeArm"), ("LeftForeArm", "LeftHand"), ("RightUpLeg", "RightLeg"),
                 ("LeftLeg", "LeftFoot"), ("Neck", "Head")]:
        lengths = length(a, b)
        assert lengths.max() - lengths.min() < 1e-6 * max(1.0, float(lengths.max()))
    thigh, shin = length("LeftUpLeg", "LeftLeg")[0], length("LeftLeg", "LeftFoot")[0]
    upper, fore = length("LeftArm", "LeftForeArm")[0], length("LeftForeArm", "LeftHand")[0]
    assert 0.6 < shin / thigh < 1.4 and 0.6 < fore / upper < 1.4
    assert np.isclose(thigh, length("RightUpLeg", "RightLeg")[0], rtol=1e-3)  # left/right symmetric
    # The whole body spans 3..6 thigh lengths (a human proportion), whatever the file's up axis and unit.
    extent = float((pos[0].max(axis=0) - pos[0].min(axis=0)).max())
    assert 3.0 < extent / thigh < 6.0
