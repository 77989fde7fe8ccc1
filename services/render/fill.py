"""Inpainting of what a moving limb uncovers (and of holes in backgrounds)."""

from __future__ import annotations

import cv2
import numpy as np


def inpaint_rgb(rgb: np.ndarray, hole: np.ndarray, known: np.ndarray | None = None,
                work_side_px: int = 384) -> np.ndarray:
    """Fills ``hole`` pixels of ``rgb`` from their surroundings; other pixels are returned unchanged.

    Works at a reduced size (Telea inpainting is O(hole area x radius^2)) and then blurs the filled area
    lightly, so large uncovered regions read as smooth skin/cloth rather than streaks. ``known`` limits
    the source pixels (e.g. the torso only, so the arm's own colours never leak back as a ghost).
    """
    hole_b = hole > 0
    if not np.any(hole_b):
        return rgb.copy()
    h, w = hole.shape
    scale = min(1.0, work_side_px / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    unknown = hole_b if known is None else (hole_b | ~(known > 0))
    # Downscale only known colours (normalised): averaging in unknown pixels (e.g. the white or black
    # outside of a cut-out) would bleed them into the fill.
    weight = (~unknown).astype(np.float32)
    num = cv2.resize(rgb.astype(np.float32) * weight[..., None], size, interpolation=cv2.INTER_AREA)
    den = cv2.resize(weight, size, interpolation=cv2.INTER_AREA)
    small = np.clip(num / np.maximum(den, 1e-6)[..., None], 0, 255).astype(np.uint8)
    small_hole = np.where(den < 0.5, 255, 0).astype(np.uint8)
    radius = max(3, round(6 * scale * max(h, w) / 384))
    filled = cv2.inpaint(np.ascontiguousarray(small), small_hole, radius, cv2.INPAINT_TELEA)
    filled = cv2.GaussianBlur(filled, (0, 0), 1.5)
    up = cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR)
    out = rgb.copy()
    out[hole_b] = up[hole_b]
    return out


def decontaminate_edges(texture_rgba: np.ndarray, band_px: int = 2) -> np.ndarray:
    """Replaces the colours of the outermost ``band_px`` of the cut-out with colours pulled from inside
    and softens the alpha edge inward by one pixel.

    Threshold and segmentation masks keep a rim of anti-aliased background pixels (a white or grey halo
    once the character moves over another background, or is scaled up); inside colours never halo.
    """
    out = texture_rgba.copy()
    sigma = float(band_px + 1)
    # Only pixels with alpha change, and each reads the blurs within their kernels' reach (4 sigma for
    # float images): work in the alpha's box grown by that, where the blurs see what they see in the whole
    # image.
    rows = np.flatnonzero(texture_rgba[..., 3].any(axis=1))
    cols = np.flatnonzero(texture_rgba[..., 3].any(axis=0))
    if not len(rows):
        return out
    h, w = texture_rgba.shape[:2]
    grow_px = int(np.ceil(4 * sigma)) + band_px + 2
    win = (slice(max(0, int(rows[0]) - grow_px), min(h, int(rows[-1]) + grow_px + 1)),
           slice(max(0, int(cols[0]) - grow_px), min(w, int(cols[-1]) + grow_px + 1)))
    tex = texture_rgba[win]
    alpha = tex[..., 3]
    solid = (alpha > 127).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band_px + 1, 2 * band_px + 1))
    interior = cv2.erode(solid, kernel)
    band = (alpha > 0) & (interior == 0)
    if not np.any(band) or not np.any(interior):
        return out
    weight = interior.astype(np.float32)
    num = cv2.GaussianBlur(tex[..., :3].astype(np.float32) * weight[..., None], (0, 0), sigma)
    den = cv2.GaussianBlur(weight, (0, 0), sigma)
    pulled = np.clip(num / np.maximum(den, 1e-6)[..., None], 0, 255).astype(np.uint8)
    out_w = out[win]
    reach = band & (den > 1e-3)
    out_w[..., :3][reach] = pulled[reach]
    # One pixel in, softly: the rim of the mask is where the background colour lives.
    edge = cv2.GaussianBlur(cv2.erode(solid, np.ones((3, 3), np.uint8)).astype(np.float32), (0, 0), 0.8)
    out_w[..., 3] = np.minimum(alpha, np.clip(edge * 255.0 + 0.5, 0, 255)).astype(np.uint8)
    return out


# A filled pixel keeps its smooth (inpainted) colour only within this Lab distance of the nearest real
# colour of its source; farther, the smoothing has averaged a pattern (a striped shirt's stripes into a
# pale tint that reads as a translucent ghost of the garment) and the nearest real colour is taken instead.
FILL_PLAUSIBLE_DELTA = 12.0
# Thin dark strokes (outlines, seams: narrower than FILL_STROKE_PX, darker than their surroundings by more
# than FILL_STROKE_DELTA luma) are never a fill's source colour.
FILL_STROKE_PX = 5
FILL_STROKE_DELTA = 30


def keep_plausible_fill(rgb: np.ndarray, filled: np.ndarray, hole: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``filled`` with each ``hole`` pixel whose colour is no colour of the ``known`` source near it (see
    FILL_PLAUSIBLE_DELTA) replaced by the colour of the nearest known pixel that is not a thin dark stroke.
    ``rgb``: the source image; other pixels of ``filled`` are returned unchanged."""
    hole_b = hole > 0
    if not np.any(hole_b):
        return filled
    ys, xs = np.nonzero(hole_b | (known > 0))
    # Work in the box of hole and source (nearest pixels lie within it), grown by the stroke kernel.
    pad = FILL_STROKE_PX
    h, w = hole.shape
    y0, y1 = max(0, int(ys.min()) - pad), min(h, int(ys.max()) + pad + 1)
    x0, x1 = max(0, int(xs.min()) - pad), min(w, int(xs.max()) + pad + 1)
    src = rgb[y0:y1, x0:x1]
    known_w = known[y0:y1, x0:x1] > 0
    hole_w = hole_b[y0:y1, x0:x1]
    # Unknown pixels count as light: an outline along the source's own edge is then a thin dark stroke too
    # (a dark garment's edge only moves the source a few pixels inward).
    luma = np.where(known_w, cv2.cvtColor(np.ascontiguousarray(src), cv2.COLOR_RGB2GRAY), 255).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (FILL_STROKE_PX, FILL_STROKE_PX))
    dark = (cv2.morphologyEx(luma, cv2.MORPH_BLACKHAT, kernel) > FILL_STROKE_DELTA).astype(np.uint8)
    # With the stroke's anti-aliased fringe: half-dark pixels streak the fill as dark bars too.
    stroke: np.ndarray = cv2.dilate(dark, np.ones((3, 3), np.uint8)) > 0
    source: np.ndarray = known_w & ~stroke
    if not source.any():
        source = known_w
    if not source.any():
        return filled
    # Index of the nearest source pixel for every pixel (labels of the zero pixels, one per pixel).
    _, lab = cv2.distanceTransformWithLabels((~source).astype(np.uint8), cv2.DIST_L2, 5,
                                             labelType=cv2.DIST_LABEL_PIXEL)
    sy, sx = np.nonzero(source)
    order = np.zeros(int(lab.max()) + 1, np.int64)
    order[lab[sy, sx]] = np.arange(len(sy))
    hy, hx = np.nonzero(hole_w)
    nearest_i = order[lab[hy, hx]]
    nearest = src[sy[nearest_i], sx[nearest_i]]
    smooth = filled[y0:y1, x0:x1][hy, hx]
    lab_n = cv2.cvtColor(nearest[None].astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)[0]
    lab_s = cv2.cvtColor(smooth[None].astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)[0]
    far = np.linalg.norm(lab_n - lab_s, axis=1) > FILL_PLAUSIBLE_DELTA
    out = filled.copy()
    out[hy[far] + y0, hx[far] + x0] = nearest[far]
    return out
