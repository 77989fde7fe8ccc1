"""The torso fill beside the shoulders: the shirt's own colours, solid (never a pale ghost of the sleeve)."""

from __future__ import annotations

import pathlib

import cv2
import numpy as np
import pytest

from motion.samples.kit import write_character
from services.render.character import analyse_character
from services.render.fill import keep_plausible_fill
from services.render.layers import SHOULDER_FILL_REACH, RigModel, build_rig_model
from services.render.skin import Part

# Lab distance within which a filled texel counts as a colour the shirt has.
PLAUSIBLE_DELTA = 12.0


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, RigModel]:
    """The sample kit's character (a striped shirt with rounded sleeve heads): rig and model."""
    d: pathlib.Path = tmp_path_factory.mktemp("kit")
    write_character(d / "character.png", d / "character.joints.json", seed=0)
    rig = analyse_character(d / "character.png", d / "character.joints.json")
    return rig, build_rig_model(rig)


def _near_shoulders(model: RigModel, reach: float) -> np.ndarray:
    yy, xx = np.mgrid[:model.height, :model.width]
    arm_r = 0.25 * float(np.hypot(*(model.joints["left_shoulder"] - model.joints["left_elbow"])))
    near = np.zeros((model.height, model.width), dtype=bool)
    for name in ("left_shoulder", "right_shoulder"):
        near |= np.hypot(xx - model.joints[name][0], yy - model.joints[name][1]) < reach * arm_r
    return near


def _lab(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(cv2.cvtColor(rgb.reshape(1, -1, 3).astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)[0])


def test_build_rig_model_fills_shoulders_with_shirt_colours_with_striped_sample_character(
        sample: tuple[object, RigModel]) -> None:
    rig, model = sample
    torso = next(layer for layer in model.layers if layer.part == Part.TORSO)
    texture = rig.texture_rgba  # type: ignore[attr-defined]
    near = _near_shoulders(model, SHOULDER_FILL_REACH)
    # The fill: torso-layer texels over what the image shows as sleeve (labelled arm) beside the shoulders.
    fill = near & torso.mask & (model.part_labels != int(Part.TORSO)) & (torso.texture_premul[..., 3] == 255)
    assert int(fill.sum()) > 500
    # The shirt's flat colours: its solid pixels away from any colour edge (stripe borders, outlines).
    grad = cv2.morphologyEx(cv2.cvtColor(np.ascontiguousarray(texture[..., :3]), cv2.COLOR_RGB2GRAY),
                            cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    flat = (model.part_labels == int(Part.TORSO)) & (texture[..., 3] == 255) & (grad < 12)
    palette = np.unique(np.round(_lab(texture[..., :3][flat])).astype(np.int16), axis=0).astype(np.float32)
    colours = _lab(torso.texture_premul[..., :3][fill])
    dist = np.min(np.linalg.norm(colours[:, None, :] - palette[None], axis=2), axis=1)
    # A smoothed fill averaged purple and cream stripes into a pale lilac (97% of these texels, ~27 apart
    # from every shirt colour at the 90th percentile) that read as a translucent ghost of the sleeve.
    assert float(np.mean(dist > PLAUSIBLE_DELTA)) < 0.05


def test_build_rig_model_draws_no_half_transparent_torso_beside_shoulders_with_sample_character(
        sample: tuple[object, RigModel]) -> None:
    _, model = sample
    torso = next(layer for layer in model.layers if layer.part == Part.TORSO)
    alpha = torso.texture_premul[..., 3]
    # Inside the drawn silhouette, away from its anti-aliased rim (and the layer's 2 px overlap margin).
    inner = cv2.erode((alpha > 0).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    semi = inner & _near_shoulders(model, 2.5) & (alpha > 25) & (alpha < 230)
    assert int(semi.sum()) == 0


def test_keep_plausible_fill_keeps_smooth_fill_with_plain_source() -> None:
    rgb = np.full((40, 40, 3), (90, 60, 140), np.uint8)
    known = np.zeros((40, 40), dtype=bool)
    known[:, :20] = True
    hole = ~known
    smooth = rgb.copy()
    smooth[hole] = (93, 62, 138)  # what smoothing a plain colour gives: the colour, give or take
    out = keep_plausible_fill(rgb, smooth, hole, known)
    assert np.array_equal(out, smooth)


def test_keep_plausible_fill_continues_stripes_without_outline_with_striped_source() -> None:
    purple, cream, ink = (120, 50, 160), (235, 225, 205), (20, 15, 25)
    rgb = np.zeros((60, 60, 3), np.uint8)
    for y in range(60):
        rgb[y] = purple if (y // 10) % 2 == 0 else cream
    rgb[:, 27:30] = ink  # the shirt's outline at its edge
    known = np.zeros((60, 60), dtype=bool)
    known[:, :30] = True
    hole = np.zeros_like(known)
    hole[:, 30:] = True
    smooth = rgb.copy()
    smooth[hole] = (178, 138, 183)  # the stripes averaged: pale lilac
    out = keep_plausible_fill(rgb, smooth, hole, known)
    # Each filled row continues its own stripe, and the dark outline is nobody's source.
    for y in (5, 15, 25, 34, 45):
        assert tuple(out[y, 45]) == tuple(rgb[y, 10])
    assert not np.any(np.all(out[hole] == ink, axis=1))
