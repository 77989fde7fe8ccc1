"""Illustrations: wide glowing sleeves beside the chest and arms drawn raised with the elbow folded."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from motion.rig import add_derived_joints, build_bones
from services.render import layers as layers_mod
from services.render.layers import RigModel, build_rig_model
from services.render.skin import Part, bone_transforms, deform, segment_distance
from tests.render.synthetic import JOINTS, make_character

# The left arm raised and folded back (inner elbow angle ~50 degrees), like a hand lifted beside the head.
FOLDED = {"left_elbow": (200.0, 100.0), "left_wrist": (160.0, 40.0), "left_index": (152.0, 26.0),
          "left_pinky": (146.0, 32.0)}
GLOW = (235, 200, 235)


def _folded_character(with_wing: bool) -> tuple[object, np.ndarray]:
    """The synthetic character with its left arm folded, the fold filled with glow, and optionally a
    translucent 'sleeve' hanging beside the chest (what segmentation gives for an illustration)."""
    rig = make_character()
    joints = dict(JOINTS)
    joints.update(FOLDED)
    texture = rig.texture_rgba.copy()
    mask = rig.mask.copy()
    # Erase the hanging left arm of the base character; draw the folded one.
    for a, b in (("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist")):
        p, q = (tuple(int(v) for v in JOINTS[n]) for n in (a, b))
        cv2.line(mask, p, q, 0, 24)
    torso = np.array([JOINTS[n] for n in ("left_shoulder", "right_shoulder", "right_hip", "left_hip")], np.int32)
    cv2.fillConvexPoly(mask, torso, 255)
    fold = np.array([joints["left_shoulder"], joints["left_elbow"], joints["left_wrist"]], np.int32)
    cv2.fillConvexPoly(mask, fold, 255)  # the glow between upper arm and forearm
    cv2.fillConvexPoly(texture, fold, (*GLOW, 255))
    for a, b, colour in (("left_shoulder", "left_elbow", (200, 60, 60)), ("left_elbow", "left_wrist", (220, 120, 60))):
        p, q = (tuple(int(v) for v in joints[n]) for n in (a, b))
        cv2.line(mask, p, q, 255, 18)
        cv2.line(texture, p, q, (*colour, 255), 18)
    wing = np.zeros_like(mask)
    if with_wing:
        # A sleeve hanging from the raised arm down the chest's side, far outside the shoulder-hip quad.
        cv2.rectangle(wing, (168, 115), (200, 170), 255, -1)
        mask = np.maximum(mask, wing)
        texture[wing > 0] = (*GLOW, 255)
    texture[..., 3] = np.where(mask > 0, texture[..., 3], 0)
    texture[mask == 0] = 0
    texture[..., 3] = mask
    full = add_derived_joints(joints)
    rig = dataclasses.replace(rig, joints=full, bones=build_bones(full), mask=mask, texture_rgba=texture)
    return rig, wing > 0


@pytest.fixture(scope="module")
def folded_model() -> RigModel:
    rig, _ = _folded_character(with_wing=False)
    return build_rig_model(rig)  # type: ignore[arg-type]


def _straight_arm_target(model: RigModel) -> dict[str, np.ndarray]:
    target = {k: v.copy() for k, v in model.joints.items()}
    sh = target["left_shoulder"]
    target["left_elbow"] = sh + np.array([8.0, 60.0])
    target["left_wrist"] = sh + np.array([14.0, 130.0])
    target["left_hand_tip"] = sh + np.array([16.0, 150.0])
    return target


def _farthest_arm_vertex_px(model: RigModel) -> float:
    """How far any left-arm vertex lands from the straightened arm's bones."""
    target = _straight_arm_target(model)
    tf = bone_transforms(model.bones, target)
    worst = 0.0
    for layer in model.layers:
        if layer.part != Part.LEFT_ARM:
            continue
        moved = deform(layer.mesh.vertices, layer.skin, tf)
        d = np.full(len(moved), np.inf)
        for a, b in (("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"), ("left_wrist", "left_hand_tip")):
            d = np.minimum(d, segment_distance(moved, target[a], target[b]))
        worst = max(worst, float(d.max()))
    return worst


def test_build_rig_model_splits_arm_in_two_with_folded_elbow(folded_model: RigModel) -> None:
    arms = [layer for layer in folded_model.layers if layer.part == Part.LEFT_ARM]
    assert len(arms) == 2
    # Forearm and hand first: the renderer rigs the fingers on a part's first layer.
    assert arms[0].mask[int(FOLDED["left_wrist"][1]), int(FOLDED["left_wrist"][0])]
    assert not arms[1].mask[int(FOLDED["left_wrist"][1]), int(FOLDED["left_wrist"][0])]
    # The straight right arm stays one layer.
    assert sum(layer.part == Part.RIGHT_ARM for layer in folded_model.layers) == 1


def test_deform_keeps_arm_skin_near_bones_with_folded_elbow_straightened(folded_model: RigModel,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # Skin blended across the fold was flung far off the arm when it straightened (a big paddle of sleeve).
    assert _farthest_arm_vertex_px(folded_model) < 40.0
    monkeypatch.setattr(layers_mod, "ARM_SPLIT_DEG", 0.0)
    rig, _ = _folded_character(with_wing=False)
    one_piece = build_rig_model(rig)  # type: ignore[arg-type]
    assert _farthest_arm_vertex_px(one_piece) > _farthest_arm_vertex_px(folded_model) + 10.0


def test_build_rig_model_drops_glow_inside_fold_with_folded_elbow(folded_model: RigModel) -> None:
    # The middle of the fold, far from both bones: glow, not arm.
    sh, el, wr = (np.array(JOINTS["left_shoulder"]), np.array(FOLDED["left_elbow"]), np.array(FOLDED["left_wrist"]))
    x, y = np.round((sh + el + wr) / 3.0 + 0.25 * ((sh + wr) / 2.0 - el)).astype(int)
    alpha = max(int(layer.texture_premul[y, x, 3]) for layer in folded_model.layers if layer.part == Part.LEFT_ARM)
    assert alpha == 0
    # The upper arm itself stays opaque.
    mx, my = np.round((sh + el) / 2.0).astype(int)
    assert max(int(layer.texture_premul[my, mx, 3]) for layer in folded_model.layers) == 255


def test_build_rig_model_fades_sleeve_beside_chest_with_raised_arm(monkeypatch: pytest.MonkeyPatch) -> None:
    rig, wing = _folded_character(with_wing=True)
    model = build_rig_model(rig)  # type: ignore[arg-type]
    torso = next(layer for layer in model.layers if layer.part == Part.TORSO)
    labels = model.part_labels
    far = wing & (labels == int(Part.TORSO))
    assert far.any()
    # What the torso labelled in the hanging sleeve is (mostly) gone ...
    assert float(torso.texture_premul[..., 3][far].mean()) < 0.15 * 255
    # ... and the torso within its shoulder-hip quad is exactly as without the fade.
    monkeypatch.setattr(layers_mod, "_torso_wing_fade", lambda *args: None)
    plain = next(layer for layer in build_rig_model(rig).layers if layer.part == Part.TORSO)  # type: ignore[arg-type]
    assert float(plain.texture_premul[..., 3][far].mean()) > 0.9 * 255
    quad = np.zeros(wing.shape, np.uint8)
    corners = np.array([JOINTS[n] for n in ("left_shoulder", "right_shoulder", "right_hip", "left_hip")], np.int32)
    cv2.fillConvexPoly(quad, corners, 1)
    assert np.array_equal(torso.texture_premul[quad > 0], plain.texture_premul[quad > 0])


def test_build_rig_model_keeps_layers_unchanged_with_straight_arms(monkeypatch: pytest.MonkeyPatch) -> None:
    # The base character (arms hanging, nothing beside the chest) is untouched by the illustration rules
    # (but for a few rounding-level alpha steps where arm and torso meet below the shoulder).
    rig = make_character()
    model = build_rig_model(rig)
    monkeypatch.setattr(layers_mod, "_torso_wing_fade", lambda *args: None)
    monkeypatch.setattr(layers_mod, "_elbow_fold_cut", lambda *args: None)
    monkeypatch.setattr(layers_mod, "ARM_SPLIT_DEG", 0.0)
    plain = build_rig_model(rig)
    assert [layer.part for layer in model.layers] == [layer.part for layer in plain.layers]
    for a, b in zip(model.layers, plain.layers, strict=True):
        diff = np.abs(a.texture_premul.astype(int) - b.texture_premul.astype(int))
        assert int(diff.max()) <= 3 and int((diff > 0).sum()) <= 20
        assert np.array_equal(a.mesh.vertices, b.mesh.vertices)
        assert np.array_equal(a.skin.weight, b.skin.weight)
