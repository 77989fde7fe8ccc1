"""Child's-drawing artefacts: line-art detection, fat limbs kept whole, strokes kept where limbs overlap."""

from __future__ import annotations

import pathlib

import cv2
import numpy as np
import pytest

from motion.rig import CharacterRig
from motion.skeleton import BodyLandmark, SkeletonFrame, SkeletonSequence
from services.render.character import analyse_character
from services.render.layers import build_rig_model
from services.render.outline import outline_threshold
from services.render.renderer import Renderer, RenderOptions
from services.render.skin import Part
from tests.render.synthetic import make_character


@pytest.fixture(scope="module")
def char1(shared_data: pathlib.Path) -> CharacterRig:
    d = shared_data / "drawings"
    return analyse_character(d / "char1_texture.png", joints_override=d / "char1_char_cfg.yaml")


def _line_drawing() -> tuple[np.ndarray, np.ndarray]:
    """Paper-filled blobs with dark 4 px outlines, drawn in code."""
    mask = np.zeros((300, 200), np.uint8)
    rgba = np.zeros((300, 200, 4), np.uint8)
    for (cx, cy), (ax, ay) in (((100, 80), (40, 50)), ((70, 200), (25, 80)), ((130, 200), (25, 80))):
        cv2.ellipse(mask, (cx, cy), (ax, ay), 0, 0, 360, 255, -1)
        cv2.ellipse(rgba, (cx, cy), (ax, ay), 0, 0, 360, (200, 200, 190, 255), -1)
        cv2.ellipse(rgba, (cx, cy), (ax - 2, ay - 2), 0, 0, 360, (60, 40, 140, 255), 4)
    return rgba, mask


def test_outline_threshold_detects_line_art_with_outlined_drawing() -> None:
    rgba, mask = _line_drawing()
    thr = outline_threshold(rgba, mask)
    assert thr is not None
    stroke = float(np.dot([60, 40, 140], [0.2126, 0.7152, 0.0722])) / 255
    assert stroke < thr < 0.75


def test_outline_threshold_none_with_flat_cutout_or_face() -> None:
    rig = make_character()  # flat colour limbs, no outlines
    assert outline_threshold(rig.texture_rgba, rig.mask) is None
    rgba, mask = _line_drawing()
    assert outline_threshold(rgba, mask, has_face=True) is None


def test_real_drawing_detected_as_line_art_with_char1(char1: CharacterRig) -> None:
    assert outline_threshold(char1.texture_rgba, char1.mask) is not None


def _leg_edges(rig: CharacterRig, side: str) -> list[tuple[int, int]]:
    """The outermost mask pixels on both sides of the thigh's middle, across the bone."""
    hip, knee = np.array(rig.joints[f"{side}_hip"]), np.array(rig.joints[f"{side}_knee"])
    mid = (hip + knee) / 2
    d = (knee - hip) / np.hypot(*(knee - hip))
    n = np.array([-d[1], d[0]])
    out = []
    for sign in (-1, 1):
        last = None
        for r in range(0, 150):
            x, y = np.round(mid + sign * r * n).astype(int)
            if not (0 <= x < rig.width and 0 <= y < rig.height) or rig.mask[y, x] == 0:
                break
            last = (int(x), int(y))
        assert last is not None
        out.append(last)
    return out


def test_fat_legs_layer_owns_outer_outline_with_char1(char1: CharacterRig) -> None:
    model = build_rig_model(char1)
    for side, part in (("left", Part.LEFT_LEG), ("right", Part.RIGHT_LEG)):
        for x, y in _leg_edges(char1, side):
            # A few pixels in from the silhouette: the stroke itself.
            assert int(model.part_labels[y, x]) == int(part), (side, x, y)


def _legs_together(rig: CharacterRig, deg: float) -> SkeletonSequence:
    j = {k: np.asarray(v, np.float64) for k, v in rig.joints.items()}
    mid = (j["left_hip"][0] + j["right_hip"][0]) / 2
    for side in ("left", "right"):
        hip = j[f"{side}_hip"].copy()
        a = np.radians(-deg if j[f"{side}_ankle"][0] < mid else deg)
        r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        for n in ("knee", "ankle", "heel", "foot_index"):
            if f"{side}_{n}" in j:
                j[f"{side}_{n}"] = hip + (j[f"{side}_{n}"] - hip) @ r.T
    body = np.zeros((33, 5), np.float32)
    for lm in BodyLandmark:
        body[int(lm), :2] = j.get(lm.name.lower(), j["nose"])
        body[int(lm), 3:] = 1.0
    frames = [SkeletonFrame(index=0, timestamp_s=0.0, present=True, body=body)]
    return SkeletonSequence(fps=10.0, width=rig.width, height=rig.height, frames=frames, space="character_pixels")


def _dark_px(img: np.ndarray) -> int:
    luma = img[..., :3].astype(np.float32) @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    return int((luma < 100).sum())


def test_overlapping_legs_keep_strokes_with_outline_pass(char1: CharacterRig) -> None:
    seq = _legs_together(char1, 24.0)
    shots = {}
    for outlines in (True, False):
        opts = RenderOptions(background="solid:#ffffff", width=char1.width // 2 * 2, height=char1.height // 2 * 2,
                             outlines=outlines)
        with Renderer(char1, opts) as r:
            shots[outlines] = (r.render_frame(None, None).copy(), r.render_frame(seq, 0).copy())
    # Measured: 60000 dark px at rest, 59097 with the legs together (58491 without the outline pass).
    rest_dark = _dark_px(shots[True][0])
    with_pass, without = _dark_px(shots[True][1]), _dark_px(shots[False][1])
    assert with_pass >= without + 300
    assert with_pass >= 0.97 * rest_dark


def _quad(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def test_outline_pass_keeps_lower_layer_stroke_with_overlapping_layers() -> None:
    from services.render.raster import Rasterizer

    size = 64
    paper = np.zeros((size, size, 4), np.uint8)
    paper[...] = (200, 200, 190, 255)
    stroked = paper.copy()
    stroked[:, 20:24] = (60, 40, 140, 255)  # a vertical stroke on the lower layer
    textures = np.stack([stroked, paper])
    uv = _quad(0, 0, 1, 1)
    pos = np.concatenate([_quad(0, 0, size, size), _quad(0, 0, size, size)])
    uvs = np.concatenate([uv, uv])
    layer_ids = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    tri = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    lower, upper = tri, tri + 4
    with Rasterizer(size, size, textures, uvs, layer_ids, None) as r:
        plain = r.draw(pos, np.concatenate([lower, upper])).copy()
        r.set_outline(0.45, 0.08)
        kept = r.draw(pos, np.concatenate([lower, upper]), outline_indices=lower).copy()
    assert np.abs(plain[32, 21, :3].astype(int) - (200, 200, 190)).max() <= 2  # the upper paper hides it
    assert np.abs(kept[32, 21, :3].astype(int) - (60, 40, 140)).max() <= 2  # the stroke is drawn on top
    assert np.array_equal(kept[:, 30:], plain[:, 30:])  # paper elsewhere is untouched
