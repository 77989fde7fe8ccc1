"""Outline-preserving compositing for line drawings (a child's drawing: dark strokes around paper fills).

Limbs are separate layers drawn over each other and over the torso. In a drawing the paper-coloured inside
of the upper layer then hides the lower layer's strokes (two fat legs coming together lose their inner
outlines). After all layers are drawn, the outline pass draws the strokes of the limbs in front of the
torso once more ("darkest wins" for stroke pixels): every limb keeps its own outline where limbs overlap.

Only for line art: photos have large dark areas (trousers, hair) that must stay under what covers them.
"""

from __future__ import annotations

import cv2
import numpy as np

# Texels darker than this (luma 0..1) are strokes; the pass fades them in over OUTLINE_SOFT.
OUTLINE_SOFT = 0.08
# Line art: strokes cover this fraction of the character's pixels...
MIN_DARK_FRACTION, MAX_DARK_FRACTION = 0.02, 0.45
# ...and the fills are flat (luma spread of the non-stroke pixels; measured: the AnimatedDrawings samples
# 0.06-0.14, photos 0.22).
MAX_FILL_STD = 0.15
# ...and the silhouette is drawn: most of the mask's edge lies within EDGE_REACH (of the image's long side)
# of a stroke (measured: drawings 0.71-1.0, photos and flat-colour cut-outs ~0.44).
MIN_EDGE_STROKE = 0.65
EDGE_REACH = 0.022


def _luma(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(rgb[..., :3].astype(np.float32) @ np.array([0.2126, 0.7152, 0.0722], np.float32) / 255.0)


def _strokes(texture_rgba: np.ndarray, inside: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """(luma, stroke threshold, stroke pixels): strokes sit well below the fill (paper) brightness."""
    luma = _luma(texture_rgba)
    threshold = min(0.72 * float(np.median(luma[inside])), 0.5)
    return luma, threshold, inside & (luma < threshold)


def _edge_reach_px(shape: tuple[int, ...]) -> int:
    """EDGE_REACH of the image's long side in pixels (odd, at least 5): a kernel size."""
    return max(5, int(round(EDGE_REACH * max(shape[:2])))) | 1


def outline_threshold(texture_rgba: np.ndarray, mask: np.ndarray, has_face: bool = False) -> float | None:
    """The stroke luma threshold when the character is line art (dark strokes on flat lighter fills),
    else None. A character the face mesh was detected on (``has_face``) is a photo."""
    if has_face:
        return None
    inside = (mask > 0) & (texture_rgba[..., 3] > 127)
    n = int(inside.sum())
    if n < 100:
        return None
    luma, threshold, dark = _strokes(texture_rgba, inside)
    frac = float(dark.sum()) / n
    if not (MIN_DARK_FRACTION <= frac <= MAX_DARK_FRACTION):
        return None
    if float(luma[inside & ~dark].std()) > MAX_FILL_STD:
        return None
    # Strokes may sit a few pixels inside the cut-out's edge (a paper margin): look that far inward.
    size = _edge_reach_px(mask.shape)
    near_stroke = cv2.dilate(dark.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))) > 0
    solid = (mask > 0).astype(np.uint8)
    edge = (solid > 0) & ~(cv2.erode(solid, np.ones((3, 3), np.uint8)) > 0)
    if not edge.any() or float(near_stroke[edge].mean()) < MIN_EDGE_STROKE:
        return None
    return threshold


# A cut-out cartoon (a mascot, a clip-art figure): a dark stroke along most of its silhouette (this fraction of
# a band half EDGE_REACH deep) and almost none a little further in (CARTOON_RING_MAX_DARK of a ring 1.5-3
# EDGE_REACH deep); measured: the sample kit's character 0.46 / 0.04, photos and illustrations at most
# 0.46 / 0.09-0.59 (dark clothes reach inward, glow has no stroke).
CARTOON_BAND_MIN_DARK = 0.4
CARTOON_RING_MAX_DARK = 0.06


def cartoon_outline(texture_rgba: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float] | None:
    """(stroke colour RGB, stroke width in pixels) when the character is drawn with a dark outline around its
    silhouette and lighter fills inside, else None.

    Such a character's fill under a raised arm (the shoulder, the flank) is a new edge of its silhouette once
    the arm has moved away; drawn without the outline every other edge has, it read as a pale pad.
    """
    inside = mask > 0
    if int(inside.sum()) < 100:
        return None
    _, _, dark = _strokes(texture_rgba, inside)
    size = _edge_reach_px(mask.shape)
    depth = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 3)
    band = inside & (depth <= size / 2)
    ring = inside & (depth > 1.5 * size) & (depth <= 3.0 * size)
    if not band.any() or not ring.any():
        return None
    if float(dark[band].mean()) < CARTOON_BAND_MIN_DARK or float(dark[ring].mean()) > CARTOON_RING_MAX_DARK:
        return None
    # The stroke's width: from the silhouette's edge inward to the first lighter (fill) pixel.
    to_fill = cv2.distanceTransform((~(inside & ~dark)).astype(np.uint8), cv2.DIST_L2, 3)
    edge = inside & (depth <= 1.0)
    width = float(np.median(to_fill[edge & dark])) if (edge & dark).any() else 0.0
    if width < 1.0:
        return None
    colour = np.median(texture_rgba[..., :3][dark & band], axis=0).astype(np.uint8)
    return colour, width
