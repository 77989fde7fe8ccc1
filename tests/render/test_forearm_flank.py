"""A bare forearm hanging against the shirt: the flank its claim took goes back to the torso (photos on a
plain wall), so it no longer swings out with the arm as a dark scrap."""

from __future__ import annotations

import pathlib

import cv2
import numpy as np
import pytest

import services.render.layers as layers
from motion.rig import CharacterRig
from services.render.character import analyse_character
from services.render.layers import build_rig_model
from services.render.skin import Part
from tests.render.test_photo_layers import H_PX, SHIRT_RGB, SKIN_RGB, W_PX, rig_on_white_wall


def _rig(forearm_rgb: tuple[int, int, int], mask_source: str = "threshold") -> CharacterRig:
    """The right arm (image left) hangs against the flank with no gap: sleeve to the elbow, then a forearm
    of ``forearm_rgb`` touching the shirt."""
    rgb = np.full((H_PX, W_PX, 3), 255, np.uint8)
    cv2.rectangle(rgb, (64, 78), (132, 175), SHIRT_RGB, -1)
    cv2.circle(rgb, (100, 42), 20, SKIN_RGB, -1)
    cv2.rectangle(rgb, (92, 60), (108, 80), SKIN_RGB, -1)
    cv2.rectangle(rgb, (50, 72), (132, 88), SHIRT_RGB, -1)
    cv2.rectangle(rgb, (50, 78), (63, 128), SHIRT_RGB, -1)  # sleeve down to the elbow
    cv2.rectangle(rgb, (51, 129), (63, 176), forearm_rgb, -1)  # forearm, touching the shirt at x 64
    cv2.rectangle(rgb, (50, 176), (64, 190), SKIN_RGB, -1)  # hand
    cv2.line(rgb, (132, 80), (150, 175), SHIRT_RGB, 14)
    cv2.rectangle(rgb, (78, 176), (122, 290), (60, 70, 120), -1)
    return rig_on_white_wall(rgb, np.where(np.any(rgb != 255, axis=2), 255, 0).astype(np.uint8), mask_source)


def _shirt_in_forearm(rig: CharacterRig, labels: np.ndarray) -> int:
    """Shirt-coloured pixels beside the forearm (rows of the forearm) labelled as the arm."""
    shirt = np.all(rig.texture_rgba[..., :3] == SHIRT_RGB, axis=2)
    rows = np.zeros_like(shirt)
    rows[135:172] = True
    return int((shirt & rows & (labels == int(Part.RIGHT_ARM))).sum())


def test_build_rig_model_gives_shirt_beside_bare_forearm_to_torso_with_plain_wall_photo(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rig = _rig(SKIN_RGB)
    after = build_rig_model(rig).part_labels
    monkeypatch.setattr(layers, "reclaim_forearm_flank", lambda rgb, labels, bones, radius: labels)
    before = build_rig_model(rig).part_labels
    assert _shirt_in_forearm(rig, before) > 50  # the arm's claim took the flank (what hung as a scrap)
    assert _shirt_in_forearm(rig, after) == 0
    skin = np.all(rig.texture_rgba[..., :3] == SKIN_RGB, axis=2)
    skin[:129] = False  # the forearm and hand, not the face
    assert np.array_equal(after[skin], before[skin])  # the forearm's own pixels stay with the arm
    assert np.array_equal(after[:129], before[:129])  # sleeve and shoulder untouched


def test_build_rig_model_keeps_labels_with_sleeve_of_shirt_fabric_or_busy_photo() -> None:
    # A sleeve of the shirt's own colour cannot be told from the flank: nothing moves.
    rig = _rig(SHIRT_RGB)
    labels = build_rig_model(rig).part_labels
    radius = layers._part_radius(layers.Bones.for_joints(layers.complete_joints(rig.joints)),
                                 layers.complete_joints(rig.joints), 270.0)
    bones = layers.Bones.for_joints(layers.complete_joints(rig.joints))
    assert np.array_equal(layers.reclaim_forearm_flank(rig.texture_rgba[..., :3], labels, bones, radius), labels)
    # Segmentation masks (busy photos, illustrations) keep the claim as it was.
    seg = _rig(SKIN_RGB, mask_source="segmentation")
    assert _shirt_in_forearm(seg, build_rig_model(seg).part_labels) > 50


def test_build_rig_model_frees_both_forearms_of_shirt_with_real_photo(
        shared_data: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # musev__man.jpg: bare forearms against a dark plaid shirt, hands in the pockets.
    rig = analyse_character(shared_data / "characters" / "musev__man.jpg")
    after = build_rig_model(rig).part_labels
    monkeypatch.setattr(layers, "reclaim_forearm_flank", lambda rgb, labels, bones, radius: labels)
    before = build_rig_model(rig).part_labels
    lab = cv2.cvtColor(np.ascontiguousarray(rig.texture_rgba[..., :3]), cv2.COLOR_RGB2LAB)
    dark = lab[..., 0] < 90  # the shirt (L* < 35); the skin is far lighter
    for part in (Part.LEFT_ARM, Part.RIGHT_ARM):
        moved = (before == int(part)) & (after == int(Part.TORSO))
        assert int(moved.sum()) > 40, part
        assert float(dark[moved].mean()) > 0.8, part  # what moved is shirt, not skin
        assert not np.any((before != int(part)) & (after == int(part)))  # nothing joins the arm
