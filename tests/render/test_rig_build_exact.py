"""The rig build's shortcuts (bounding boxes, pruned bones, cropped windows) give exactly what the
whole-image computations they replace give: every reference below is the straightforward version."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from services.render import layers
from services.render.character import mask as mask_mod
from services.render.character.mask import clean_texture, skeleton_envelope
from services.render.fill import decontaminate_edges
from services.render.layers import _disc, _part_radius, _premultiply, _trunk_polygon, label_parts
from services.render.skin import Bones, Part, complete_joints, segment_distance
from tests.render.synthetic import JOINTS, make_character


def _reference_segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((points - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    closest = a + t[:, None] * ab
    return np.asarray(np.hypot(*(points - closest).T))


def test_segment_distance_matches_reference_bitwise_with_random_segments() -> None:
    rng = np.random.default_rng(5)
    for _ in range(20):
        pts = rng.random((5000, 2)) * 900.0
        a, b = rng.random(2) * 900.0, rng.random(2) * 900.0
        assert np.array_equal(segment_distance(pts, a, b), _reference_segment_distance(pts, a, b))
        # A point subset gives the same values as the whole set (the shortcuts compute subsets).
        idx = np.flatnonzero(rng.random(len(pts)) < 0.3)
        assert np.array_equal(segment_distance(pts[idx], a, b), segment_distance(pts, a, b)[idx])
    # Degenerate segment: the distance to the point.
    a = np.array([3.0, 4.0])
    assert np.allclose(segment_distance(np.zeros((1, 2)), a, a), [5.0])


def _random_skeleton(rng: np.random.Generator) -> dict[str, np.ndarray]:
    jitter = {k: np.asarray(v, dtype=np.float64) + rng.normal(0.0, 12.0, 2) for k, v in JOINTS.items()}
    return complete_joints({k: (float(v[0]), float(v[1])) for k, v in jitter.items()})


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_label_parts_matches_exhaustive_search_with_random_skeletons(seed: int,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(seed)
    rig = make_character()
    joints = _random_skeleton(rng) if seed else complete_joints(rig.joints)
    mask = cv2.dilate(rig.mask, np.ones((9, 9), np.uint8)) if seed % 2 else rig.mask
    bones = Bones.for_joints(joints)
    radius = _part_radius(bones, joints, 310.0)
    head = (joints["nose"], 0.8 * float(np.hypot(*(joints["nose"] - joints["shoulder_center"]))))
    trunk = _trunk_polygon(joints, 1.0, 10.0)
    fast = label_parts(mask > 0, bones, radius, trunk, head)
    # One tile larger than the image: every bone is compared with every pixel.
    monkeypatch.setattr(layers, "LABEL_TILE_PX", 1 << 20)
    exhaustive = label_parts(mask > 0, bones, radius, trunk, head)
    assert np.array_equal(fast, exhaustive)
    assert {int(p) for p in np.unique(fast)} >= {-1, int(Part.TORSO), int(Part.LEFT_ARM), int(Part.RIGHT_LEG)}


def _reference_clean_texture(rgb: np.ndarray, mask: np.ndarray, background: np.ndarray, edge_px: int = 3,
                             bleed_px: int = 6, background_delta: float = 12.0) -> np.ndarray:
    m = mask > 0
    inner = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * edge_px + 1, 2 * edge_px + 1))) > 0
    band = m & ~inner
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    bg_lab = cv2.cvtColor(background, cv2.COLOR_RGB2LAB).astype(np.float32)
    known = (inner | (band & (np.linalg.norm(lab - bg_lab, axis=2) > background_delta))).astype(np.float32)
    colour = rgb.astype(np.float32) * known[..., None]
    out = rgb.astype(np.float32)
    for _ in range(2 * edge_px + bleed_px):
        num, den = cv2.blur(colour, (3, 3)), cv2.blur(known, (3, 3))
        grow = (den > 1e-6) & (known == 0)
        colour[grow] = num[grow] / den[grow][:, None]
        out[grow] = colour[grow]
        known[grow] = 1.0
    out_u8 = np.clip(out, 0, 255).astype(np.uint8)
    d_fb = np.linalg.norm(cv2.cvtColor(out_u8, cv2.COLOR_RGB2LAB).astype(np.float32) - bg_lab, axis=2)
    est = np.clip(np.linalg.norm(lab - bg_lab, axis=2) / np.maximum(d_fb, 1.0), 0.0, 1.0)
    est[d_fb < background_delta] = 1.0
    cover = np.where(band, np.minimum(m.astype(np.float32), est), m.astype(np.float32))
    alpha = cv2.GaussianBlur(np.clip(cover * 255.0 + 0.5, 0, 255).astype(np.uint8), (3, 3), 0.7)
    return np.dstack([out_u8, alpha])


@pytest.mark.parametrize("shift_px", [0, -60])
def test_clean_texture_matches_whole_image_reference_with_mask_near_border(shift_px: int) -> None:
    rig = make_character()
    # The character's colours over its background, with a light rim of background caught by the mask.
    rgb = np.where(rig.mask[..., None] > 0, rig.texture_rgba[..., :3], rig.background_rgb).astype(np.uint8)
    mask = cv2.dilate(rig.mask, np.ones((5, 5), np.uint8))
    if shift_px:
        # Cut at the image's left edge: the window meets the border there.
        mask = np.roll(mask, shift_px, axis=1)
        mask[:, shift_px:] = 0
    got = clean_texture(rgb, mask, None, rig.background_rgb)
    assert np.array_equal(got, _reference_clean_texture(rgb, mask, rig.background_rgb))
    # A given alpha is kept as it is; the colours are the same.
    alpha = np.where(mask > 0, 200, 0).astype(np.uint8)
    with_alpha = clean_texture(rgb, mask, alpha, rig.background_rgb)
    assert np.array_equal(with_alpha[..., 3], alpha)
    assert np.array_equal(with_alpha[..., :3], got[..., :3])


def test_premultiply_matches_whole_image_formula_with_partial_alpha() -> None:
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (120, 90, 3), dtype=np.uint8)
    alpha = np.zeros((120, 90), np.uint8)
    alpha[30:70, 10:50] = rng.integers(0, 256, (40, 40), dtype=np.uint8)
    a = alpha.astype(np.float32) / 255.0
    ref = np.dstack([np.clip(rgb.astype(np.float32) * a[..., None] + 0.5, 0, 255).astype(np.uint8), alpha])
    assert np.array_equal(_premultiply(rgb, alpha), ref)
    assert not _premultiply(rgb, np.zeros_like(alpha)).any()


def _reference_keep(mask: np.ndarray, joints: dict[str, np.ndarray], height_px: float) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    pts = np.stack([xs, ys], axis=1).astype(np.float64)
    keep = np.zeros(len(pts), dtype=bool)
    for name, part, a, b in mask_mod._bone_segments(joints, extend_soles=True):
        reach = (mask_mod._TRUNK_REACH if part == Part.TORSO else mask_mod._LEG_REACH
                 if part in (Part.LEFT_LEG, Part.RIGHT_LEG) else mask_mod._LIMB_REACH) * height_px
        if name in ("neck", "head"):
            reach = 0.14 * height_px
        keep |= _reference_segment_distance(pts, a, b) <= reach
    feet = [joints[n][1] for n in ("left_heel", "right_heel", "left_foot_index", "right_foot_index",
                                   "left_ankle", "right_ankle") if n in joints]
    feet += [float(b[1]) for name, _, _, b in mask_mod._bone_segments(joints, extend_soles=True)
             if name.endswith("_sole")]
    keep &= pts[:, 1] <= max(feet) + 0.03 * height_px
    out = np.zeros_like(mask)
    out[ys[keep], xs[keep]] = 255
    return out


def _reference_trimap(mask: np.ndarray, segments: list, height_px: float, unsure: tuple[str, ...],
                      work_side_px: int = 512) -> np.ndarray:
    h, w = mask.shape
    s = min(1.0, work_side_px / max(h, w))
    size = (max(1, round(w * s)), max(1, round(h * s)))
    m = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST) > 0
    yy, xx = np.mgrid[0:size[1], 0:size[0]]
    pts = (np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float64) + 0.5) / s - 0.5
    core = np.zeros(len(pts), dtype=bool)
    tight = np.zeros(len(pts), dtype=bool)
    for name, part, a, b in segments:
        d = _reference_segment_distance(pts, a, b)
        reach = (mask_mod._TIGHT_HEAD_REACH if name in ("neck", "head") else mask_mod._TIGHT_TRUNK_REACH
                 if part == Part.TORSO else mask_mod._TIGHT_LEG_REACH if part in (Part.LEFT_LEG, Part.RIGHT_LEG)
                 else mask_mod._TIGHT_LIMB_REACH)
        tight |= d <= reach * height_px
        if name in ("neck", "head"):
            core |= d <= reach * height_px
        if not name.endswith("_sole") or name[: -len("_sole")] in unsure:
            core |= d <= max(1.0 / s, mask_mod._CORE_REACH * height_px)
    gc = np.full(m.shape, cv2.GC_BGD, np.uint8)
    gc[m] = cv2.GC_PR_BGD
    gc[tight.reshape(m.shape) & m] = cv2.GC_PR_FGD
    gc[core.reshape(m.shape) & m] = cv2.GC_FGD
    return gc


@pytest.mark.parametrize("side_px", [360, 900])
def test_skeleton_envelope_matches_exhaustive_distances_with_scaled_character(
        side_px: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = make_character()
    scale = side_px / rig.height
    size = (round(rig.width * scale), side_px)
    # The whole frame as "segmentation": the envelope's cut decides what stays.
    seg = np.zeros((side_px, size[0]), np.uint8)
    seg[5:-5, 5:-5] = 255
    joints = {k: (float(v[0]) * scale, float(v[1]) * scale) for k, v in rig.joints.items()}
    full = complete_joints(joints)
    height_px = 310.0 * scale
    rgb = cv2.resize(np.where(rig.mask[..., None] > 0, rig.texture_rgba[..., :3], rig.background_rgb)
                     .astype(np.uint8), size, interpolation=cv2.INTER_LINEAR)
    kept: list[np.ndarray] = []
    real_grabcut = mask_mod._skeleton_grabcut

    def spy_grabcut(rgb_: np.ndarray, cut: np.ndarray, *args: object, **kwargs: object) -> np.ndarray:
        kept.append(cut.copy())
        return real_grabcut(rgb_, cut, *args, **kwargs)  # type: ignore[arg-type]

    trimaps: list[np.ndarray] = []
    real_cv_grabcut = cv2.grabCut

    def spy_cv(img: np.ndarray, gc: np.ndarray, *args: object) -> object:
        trimaps.append(gc.copy())
        return real_cv_grabcut(img, gc, *args)

    monkeypatch.setattr(mask_mod, "_skeleton_grabcut", spy_grabcut)
    monkeypatch.setattr(mask_mod.cv2, "grabCut", spy_cv)
    out = skeleton_envelope(seg, joints, height_px, rgb=rgb, unsure_ankles=("left",))
    assert out.any()
    assert np.array_equal(kept[0], _reference_keep(seg, full, height_px))
    segments = mask_mod._bone_segments(full, extend_soles=True)
    assert np.array_equal(trimaps[0], _reference_trimap(kept[0], segments, height_px, ("left",)))


def _reference_decontaminate(texture_rgba: np.ndarray, band_px: int = 2) -> np.ndarray:
    alpha = texture_rgba[..., 3]
    solid = (alpha > 127).astype(np.uint8)
    interior = cv2.erode(solid, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band_px + 1, 2 * band_px + 1)))
    band = (alpha > 0) & (interior == 0)
    w = interior.astype(np.float32)
    num = cv2.GaussianBlur(texture_rgba[..., :3].astype(np.float32) * w[..., None], (0, 0), band_px + 1.0)
    den = cv2.GaussianBlur(w, (0, 0), band_px + 1.0)
    pulled = np.clip(num / np.maximum(den, 1e-6)[..., None], 0, 255).astype(np.uint8)
    out = texture_rgba.copy()
    reach = band & (den > 1e-3)
    out[..., :3][reach] = pulled[reach]
    edge = cv2.GaussianBlur(cv2.erode(solid, np.ones((3, 3), np.uint8)).astype(np.float32), (0, 0), 0.8)
    out[..., 3] = np.minimum(alpha, np.clip(edge * 255.0 + 0.5, 0, 255)).astype(np.uint8)
    return out


@pytest.mark.parametrize("shift_px", [0, 100])
def test_decontaminate_edges_matches_whole_image_reference_with_cutout_near_border(shift_px: int) -> None:
    rig = make_character()
    tex = rig.texture_rgba.copy()
    # A soft rim with the background's colour in it, as a threshold mask leaves.
    tex[..., 3] = cv2.GaussianBlur(tex[..., 3], (5, 5), 1.2)
    tex[..., :3] = np.where(tex[..., 3:] > 0, np.where(rig.mask[..., None] > 0, tex[..., :3], 230), 0)
    if shift_px:
        tex = np.roll(tex, shift_px, axis=1)
    got = decontaminate_edges(tex)
    assert np.array_equal(got, _reference_decontaminate(tex))
    assert not np.array_equal(got, tex)


def test_disc_matches_whole_image_distances_with_centres_off_image() -> None:
    yy, xx = np.mgrid[0:50, 0:60]
    for centre, r in (((20.3, 30.7), 7.5), ((-3.0, 10.0), 9.0), ((58.6, 49.2), 12.25), ((200.0, 5.0), 4.0)):
        c = np.array(centre)
        ref = np.hypot(xx - c[0], yy - c[1]) <= r
        assert np.array_equal(_disc(c, r, (50, 60)), ref)
