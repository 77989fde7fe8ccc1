"""Photos on a plain wall: background caught between arm and flank, cast shadows and light skin in the mask.

The synthetic character is a photo-like cut-out (flat dark clothes on a white wall) whose threshold mask
took in the sliver of wall between a hanging arm and the flank; the real photos come from ../shared/data.
"""

from __future__ import annotations

import hashlib
import pathlib

import cv2
import numpy as np
import pytest

from motion.rig import CharacterRig, add_derived_joints, build_bones
from services.render.character import analyse_character
from services.render.character.mask import compute_mask, refine_photo_mask
from services.render.layers import build_rig_model
from services.render.skin import Part

W_PX, H_PX = 200, 300
SHIRT_RGB = (70, 50, 45)
SKIN_RGB = (200, 150, 120)
JOINTS = {
    "nose": (100, 40), "left_eye": (106, 34), "right_eye": (94, 34),
    "left_shoulder": (130, 80), "right_shoulder": (70, 80),
    "left_elbow": (145, 130), "right_elbow": (57, 130),
    "left_wrist": (150, 175), "right_wrist": (57, 178),
    "left_hip": (118, 170), "right_hip": (82, 170),
    "left_knee": (120, 230), "right_knee": (80, 230),
    "left_ankle": (120, 285), "right_ankle": (80, 285),
}
# The wall between the right arm (image left, x 50..63) and the flank (x >= 68), closed off at the armpit
# and at the hand as a threshold mask closes it.
GAP_X = (64, 67)
GAP_Y = (100, 160)


def _photo_rig(mask_source: str = "threshold") -> CharacterRig:
    rgb = np.full((H_PX, W_PX, 3), 255, np.uint8)
    mask = np.zeros((H_PX, W_PX), np.uint8)
    cv2.rectangle(rgb, (68, 78), (132, 175), SHIRT_RGB, -1)
    cv2.circle(rgb, (100, 42), 20, SKIN_RGB, -1)
    cv2.rectangle(rgb, (92, 60), (108, 80), SKIN_RGB, -1)
    cv2.rectangle(rgb, (50, 72), (132, 88), SHIRT_RGB, -1)  # the shoulders, sleeve joining the shirt
    cv2.rectangle(rgb, (50, 78), (63, 165), SHIRT_RGB, -1)  # right sleeve and forearm, hanging
    cv2.rectangle(rgb, (50, 160), (70, 180), SKIN_RGB, -1)  # the hand, touching the hip
    cv2.line(rgb, (132, 80), (150, 175), SHIRT_RGB, 14)  # left arm, away from the body
    cv2.rectangle(rgb, (78, 175), (122, 290), (60, 70, 120), -1)  # trousers
    mask[np.any(rgb != 255, axis=2)] = 255
    mask[89:160, GAP_X[0]:GAP_X[1] + 1] = 255  # the enclosed sliver of wall
    cv2.rectangle(rgb, (55, 120), (58, 123), (255, 255, 255), -1)  # a small white patch on the sleeve
    return rig_on_white_wall(rgb, mask, mask_source)


def rig_on_white_wall(rgb: np.ndarray, mask: np.ndarray, mask_source: str = "threshold") -> CharacterRig:
    """A rig of the test figure (JOINTS) drawn as ``rgb`` with ``mask``, photographed on a white wall."""
    texture = np.dstack([rgb, mask])
    joints = add_derived_joints(JOINTS)
    return CharacterRig(image_sha256=hashlib.sha256(texture.tobytes()).hexdigest(), width=W_PX, height=H_PX,
                        joints=joints, bones=build_bones(joints), mask=mask, texture_rgba=texture,
                        background_rgb=np.full((H_PX, W_PX, 3), 255, np.uint8), height_px=270.0,
                        mask_source=mask_source)


def _layer(model, part: Part):  # type: ignore[no-untyped-def]
    return next(layer for layer in model.layers if layer.part == part)


def test_build_rig_model_moves_wall_sliver_to_torso_fill_with_arm_beside_flank() -> None:
    model = build_rig_model(_photo_rig())
    ys, xs = slice(*GAP_Y), slice(GAP_X[0] + 1, GAP_X[1])
    assert (model.part_labels[ys, xs] == -1).all()  # no layer owns the wall
    arm = _layer(model, Part.RIGHT_ARM)
    assert int(arm.texture_premul[ys, xs, 3].max()) == 0  # it does not swing out with the arm
    torso = _layer(model, Part.TORSO)
    # The torso fill covers it with shirt, so a raised arm uncovers shirt, not a white wedge.
    assert int(torso.texture_premul[ys, xs, 3].min()) == 255
    fill = torso.texture_premul[ys, xs, :3].reshape(-1, 3).astype(np.float64).mean(axis=0)
    assert float(np.abs(fill - np.array(SHIRT_RGB)).max()) < 40.0
    # The small white patch on the sleeve is the sleeve's own (a watch face, a print): it stays.
    assert int(model.part_labels[121, 56]) == int(Part.RIGHT_ARM)


def test_build_rig_model_keeps_sliver_with_layers_of_drawn_mask() -> None:
    # A mask given with the character (override) is the user's word: nothing is taken out of it.
    model = build_rig_model(_photo_rig(mask_source="override"))
    assert (model.part_labels[slice(*GAP_Y), slice(GAP_X[0] + 1, GAP_X[1])] >= 0).all()


def _read(path: pathlib.Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)


def test_refine_photo_mask_drops_shadow_and_adds_light_arm_with_real_photo(shared_data: pathlib.Path) -> None:
    image = _read(shared_data / "characters" / "unianimate__WOMEN-Blouses_Shirts-id_00004955-01_4_full.jpg")
    rgb = np.ascontiguousarray(image[..., :3])
    thr = compute_mask(image).mask > 0
    out = refine_photo_mask(rgb, thr.astype(np.uint8) * 255) > 0
    body_x = float(np.nonzero(thr)[1].mean())
    removed, added = thr & ~out, out & ~thr
    # The cast shadow on the wall left of her (about a tenth of the threshold mask) goes...
    assert removed.sum() > 0.08 * thr.sum()
    assert float(np.nonzero(removed)[1].mean()) < body_x - 60
    # ...and the forearm as light as the wall, right of her, comes in.
    assert added.sum() > 1500
    assert float(np.nonzero(added)[1].mean()) > body_x + 60


def test_refine_photo_mask_keeps_mask_with_clean_studio_photo(shared_data: pathlib.Path) -> None:
    image = _read(shared_data / "characters" / "musev__man.jpg")
    thr = compute_mask(image).mask
    out = refine_photo_mask(np.ascontiguousarray(image[..., :3]), thr)
    assert int((out != thr).sum()) < 0.001 * int((thr > 0).sum())


def test_analyse_character_keeps_threshold_mask_with_line_drawing(shared_data: pathlib.Path) -> None:
    # Person segmentation would cut into a child's drawing; line art keeps its threshold mask exactly.
    d = shared_data / "drawings"
    rig = analyse_character(d / "char3_texture.png", joints_override=d / "char3_char_cfg.yaml")
    assert np.array_equal(rig.mask, compute_mask(_read(d / "char3_texture.png")).mask)


@pytest.mark.parametrize("name", ["musev__man.jpg"])
def test_build_rig_model_finds_wall_slivers_with_real_photo(shared_data: pathlib.Path, name: str) -> None:
    # The studio photo's arms hang close to the flanks: both slivers of wall between them are found.
    rig = analyse_character(shared_data / "characters" / name)
    model = build_rig_model(rig)
    pocket = (model.part_labels < 0) & (rig.mask > 0)
    n, _, stats, _ = cv2.connectedComponentsWithStats(pocket.astype(np.uint8), connectivity=8)
    assert n - 1 >= 2
    assert int(stats[1:, cv2.CC_STAT_AREA].sum()) > 200


def test_refine_photo_mask_is_identical_with_repeated_calls(shared_data: pathlib.Path) -> None:
    # GrabCut's k-means draws on OpenCV's global RNG: whatever used it before must not change the mask.
    image = _read(shared_data / "characters" / "unianimate__WOMEN-Blouses_Shirts-id_00004955-01_4_full.jpg")
    rgb = np.ascontiguousarray(image[..., :3])
    thr = compute_mask(image).mask
    first = refine_photo_mask(rgb, thr)
    samples = np.linspace(0.0, 1.0, 300, dtype=np.float32).reshape(100, 3)
    cv2.kmeans(samples, 3, None, (cv2.TERM_CRITERIA_MAX_ITER, 5, 1.0), 2, cv2.KMEANS_PP_CENTERS)
    assert np.array_equal(refine_photo_mask(rgb, thr), first)
