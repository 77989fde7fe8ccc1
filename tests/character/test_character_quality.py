"""Character analysis quality: joints made for a crop, masks cut to the skeleton's reach."""

from __future__ import annotations

import pathlib
import shutil

import cv2
import numpy as np
import pytest
import yaml

from motion.errors import InputError
from services.render.character import analyse_character
from services.render.character.joints import AD_TO_BLAZEPOSE
from services.render.character.mask import skeleton_envelope


def _bbox(mask: np.ndarray) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)


def test_analyse_raises_joints_size_mismatch_with_texture_joints_on_original(shared_data: pathlib.Path,
                                                                             tmp_path: pathlib.Path) -> None:
    # char4_char_cfg.yaml is in the 216x475 texture crop's pixels; alone, it cannot be placed on the
    # 3024x4032 photo it was cut from.
    cfg = shutil.copy(shared_data / "drawings" / "char4_char_cfg.yaml", tmp_path / "char_cfg.yaml")
    with pytest.raises(InputError) as exc:
        analyse_character(shared_data / "drawings" / "char4_original_img.png", joints_override=cfg)
    assert exc.value.rule == "character.joints_size_mismatch"
    assert exc.value.actual == "216x475"


def test_analyse_places_crop_joints_with_original_photo_and_sibling_texture(shared_data: pathlib.Path) -> None:
    d = shared_data / "drawings"
    rig = analyse_character(d / "char4_original_img.png", joints_override=d / "char4_char_cfg.yaml")
    assert (rig.width, rig.height) == (3024, 4032)
    # Joints relative to the figure's bounding box match the AnimatedDrawings joints relative to its mask.
    ref_img = cv2.imread(str(d / "char4_mask.png"), cv2.IMREAD_GRAYSCALE)
    assert ref_img is not None
    ref_mask = np.asarray(ref_img) > 0
    doc = yaml.safe_load((d / "char4_char_cfg.yaml").read_text())
    ref = {AD_TO_BLAZEPOSE[e["name"]]: np.array(e["loc"], float) for e in doc["skeleton"]
           if e["name"] in AD_TO_BLAZEPOSE}
    rx, ry, rw, rh = _bbox(ref_mask)
    gx, gy, gw, gh = _bbox(rig.mask > 0)
    assert abs(np.log((gw / gh) / (rw / rh))) < 0.25  # the same figure (not the page, not the desk)
    for name, (x, y) in ref.items():
        want = np.array([(x - rx) / rw, (y - ry) / rh])
        got = np.array([(rig.joints[name][0] - gx) / gw, (rig.joints[name][1] - gy) / gh])
        assert np.all(np.abs(got - want) < 0.08), (name, got, want)


def test_skeleton_envelope_drops_floor_with_feet_on_ground_slab() -> None:
    h, w = 400, 300
    mask = np.zeros((h, w), np.uint8)
    cv2.rectangle(mask, (120, 60), (180, 250), 255, -1)  # trunk
    cv2.circle(mask, (150, 40), 25, 255, -1)  # head
    cv2.rectangle(mask, (125, 250), (140, 350), 255, -1)  # legs
    cv2.rectangle(mask, (160, 250), (175, 350), 255, -1)
    cv2.rectangle(mask, (0, 340), (w - 1, h - 1), 255, -1)  # the floor segmentation added
    joints = {"nose": (150.0, 40.0), "left_shoulder": (175.0, 70.0), "right_shoulder": (125.0, 70.0),
              "left_hip": (168.0, 240.0), "right_hip": (132.0, 240.0), "left_knee": (168.0, 295.0),
              "right_knee": (132.0, 295.0), "left_ankle": (168.0, 345.0), "right_ankle": (132.0, 345.0),
              "left_elbow": (185.0, 150.0), "right_elbow": (115.0, 150.0), "left_wrist": (185.0, 230.0),
              "right_wrist": (115.0, 230.0)}
    out = skeleton_envelope(mask, joints, height_px=float(h - 15))
    assert not out[:, :60].any() and not out[:, 240:].any()  # floor beside the body
    assert not out[375:].any()  # floor below the feet
    body = mask.copy()
    body[340:] = 0
    assert (out[body > 0] > 0).mean() > 0.97  # the body itself is kept


def test_clean_texture_drops_wall_rim_with_generous_segmentation_mask() -> None:
    """A mask 3 px wider than the figure (typical of segmentation) must not turn the wall into a halo."""
    from services.render.character.mask import clean_texture

    rgb = np.full((120, 120, 3), 250, np.uint8)  # light wall
    figure = np.zeros((120, 120), np.uint8)
    cv2.rectangle(figure, (40, 20), (80, 100), 255, -1)
    rgb[figure > 0] = (60, 80, 110)  # denim
    mask = cv2.dilate(figure, np.ones((7, 7), np.uint8))
    background = np.full_like(rgb, 250)
    tex = clean_texture(rgb, mask, None, background)
    rim = (mask > 0) & (cv2.dilate(figure, np.ones((3, 3), np.uint8)) == 0)
    assert rim.any()
    assert float(tex[..., 3][rim].mean()) < 40.0, "the wall caught by the mask stays (partly) opaque"
    inner = cv2.erode(figure, np.ones((5, 5), np.uint8)) > 0
    assert int(tex[..., 3][inner].min()) == 255
