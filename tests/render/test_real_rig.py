"""Exact rig check and skinning properties on REAL rigs (AnimatedDrawings drawings with their joint files).

The target poses are synthetic but realistic (a head tilt, shoulders tilted against the hips, an arm
raised, a knee bent): no pose model is needed, so the test stays fast.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from motion.skeleton import BodyLandmark, SkeletonFrame
from services.render.character import analyse_character
from services.render.check import bone_angle_errors_deg
from services.render.layers import RigModel, build_rig_model
from services.render.mesh import triangulate_mask
from services.render.skin import TRUNK_BONES, Bones, Part, bone_transforms, complete_joints, compute_skin


def _rotate(p: np.ndarray, centre: np.ndarray, deg: float) -> np.ndarray:
    a = np.radians(deg)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.asarray(centre + (p - centre) @ r.T)


def _turn(j: dict[str, np.ndarray], names: tuple[str, ...], centre: np.ndarray, deg: float) -> None:
    for n in names:
        if n in j:
            j[n] = _rotate(j[n], centre, deg)


def _posed_frames(model: RigModel) -> list[SkeletonFrame]:
    """A few target poses: rigid moves of the rest joints about their parents."""
    rest = {lm.name.lower(): np.asarray(model.joints[lm.name.lower()], dtype=np.float64)
            for lm in BodyLandmark if lm.name.lower() in model.joints}
    frames = []
    for k, (head, shoulders, arm, knee) in enumerate(((25, 8, -60, 30), (-20, -10, 80, -25), (10, 15, 120, 45))):
        j = {n: v.copy() for n, v in rest.items()}

        sc = (j["left_shoulder"] + j["right_shoulder"]) / 2
        # The shoulder line tilts against the hips, the head against the shoulders, an arm and a knee bend.
        _turn(j, ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
              "left_index", "right_index", "left_pinky", "right_pinky", "left_thumb", "right_thumb"), sc, shoulders)
        _turn(j, ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "mouth_left", "mouth_right",
              "left_eye_inner", "left_eye_outer", "right_eye_inner", "right_eye_outer"), sc, head)
        _turn(j, ("left_elbow", "left_wrist", "left_index", "left_pinky", "left_thumb"), j["left_shoulder"].copy(), arm)
        _turn(j, ("right_ankle", "right_heel", "right_foot_index"), j["right_knee"].copy(), knee)
        body = np.zeros((33, 5), np.float32)
        for lm in BodyLandmark:
            if lm.name.lower() in j:
                body[int(lm), :2] = j[lm.name.lower()]
                body[int(lm), 3:] = 1.0
        frames.append(SkeletonFrame(index=k, timestamp_s=k / 30.0, present=True, body=body))
    return frames


def _drawing_model(shared_data: pathlib.Path, name: str) -> RigModel:
    d = shared_data / "drawings"
    rig = analyse_character(d / f"{name}_texture.png", joints_override=d / f"{name}_char_cfg.yaml")
    return build_rig_model(rig)


@pytest.fixture(scope="module")
def drawing_model(shared_data: pathlib.Path) -> RigModel:
    return _drawing_model(shared_data, "char1")


@pytest.mark.parametrize("name", ["char1", "char3"])
def test_deformed_bones_follow_target_within_half_degree_mean_with_real_drawing(shared_data: pathlib.Path,
                                                                                  name: str) -> None:
    # Measured: char1 0.25, char3 0.14 deg (before geodesic skinning + trunk map + narrow joint bands:
    # 0.75 and 0.74; on retargeted real motion char1 1.47 -> 0.42, the musev photo 1.95 -> 0.53).
    model = _drawing_model(shared_data, name)
    errors = [e for f in _posed_frames(model) for e in bone_angle_errors_deg(model, f).values()]
    assert len(errors) >= 20
    assert float(np.mean(errors)) <= 0.5, f"mean bone-angle error {np.mean(errors):.2f} deg"
    assert float(np.max(errors)) <= 3.0


def test_trunk_bones_are_exact_with_shoulders_tilted_against_hips(drawing_model: RigModel) -> None:
    # The piecewise-affine trunk map carries the spine and hip line exactly (rigid trunk bones could not).
    for f in _posed_frames(drawing_model):
        errors = bone_angle_errors_deg(drawing_model, f)
        assert errors["spine"] < 0.5 and errors["hips"] < 0.5, errors


def test_bone_transforms_build_trunk_map_with_all_four_corners(drawing_model: RigModel) -> None:
    f = _posed_frames(drawing_model)[0]
    from services.render.skin import frame_joints

    tf = bone_transforms(drawing_model.bones, frame_joints(f))
    assert tf.trunk is not None and tf.trunk_bones is not None
    assert {s.name for s, t in zip(drawing_model.bones.specs, tf.trunk_bones, strict=True) if t} == set(TRUNK_BONES)
    # Each sector maps its two rest corners onto the target corners.
    target = frame_joints(f)
    names = ("left_shoulder", "right_shoulder", "right_hip", "left_hip")
    for k in range(4):
        for n in (names[k], names[(k + 1) % 4]):
            got = tf.trunk.linear[k] @ drawing_model.joints[n] + tf.trunk.offset[k]
            np.testing.assert_allclose(got, target[n], atol=1e-6)


def test_folded_limb_skin_stays_with_own_bone_with_geodesic_weights() -> None:
    # A "U"-shaped limb folded at the elbow: the upper strip (rows 12-28) and the lower one (rows 36-52)
    # are joined only at the bend on the right; the gap between them is background. Euclidean weights would let the upper bone pull the lower
    # strip (it lies within 2 limb widths); over the mesh the only path is round the bend.
    mask = np.zeros((70, 140), np.uint8)
    mask[12:29, 10:130] = 255
    mask[36:53, 10:130] = 255
    mask[12:53, 112:130] = 255
    joints = complete_joints({"left_shoulder": (15.0, 20.0), "left_elbow": (121.0, 32.0),
                              "left_wrist": (15.0, 44.0)})
    bones = Bones.for_joints(joints)
    assert [s.name for s in bones.specs] == ["left_upper_arm", "left_forearm"]
    mesh = triangulate_mask(mask, 5.0)
    allowed = np.ones((len(mesh.vertices), 2))
    skin = compute_skin(mesh.vertices, mesh.triangles, bones, allowed, scale_px=9.0)
    v = mesh.vertices
    # Between the bones' ends (past the wrist, with no hand bone, either bone may own the tip).
    lower = (v[:, 1] > 38) & (v[:, 0] > 25) & (v[:, 0] < 90)
    upper = (v[:, 1] < 27) & (v[:, 0] > 25) & (v[:, 0] < 90)
    assert lower.sum() > 10 and upper.sum() > 10
    forearm = bones.index("left_forearm")
    w_forearm = np.where(skin.bone_index == forearm, skin.weight, 0.0).sum(axis=1)
    assert float(w_forearm[lower].min()) > 0.99
    assert float(w_forearm[upper].max()) < 0.01
    assert Part.LEFT_ARM == bones.specs[0].part


def test_deform_all_layers_at_once_equals_per_layer_with_real_drawing(drawing_model: RigModel) -> None:
    from services.render.skin import Skin, deform, frame_joints

    tf = bone_transforms(drawing_model.bones, frame_joints(_posed_frames(drawing_model)[1]))
    layers = drawing_model.layers
    each = np.concatenate([deform(layer.mesh.vertices, layer.skin, tf) for layer in layers])
    rest = np.concatenate([layer.mesh.vertices for layer in layers])
    together = deform(rest, Skin.concatenate([layer.skin for layer in layers]), tf)
    np.testing.assert_allclose(together, each, atol=1e-9)
    assert float(np.abs(together - rest).max()) > 5.0  # the pose really moves the mesh
