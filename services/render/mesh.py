"""Triangle meshes of silhouettes (the `triangle` library), with interior points so limbs bend smoothly."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import triangle

from motion.errors import InputError


@dataclass
class Mesh:
    vertices: np.ndarray  # (V, 2) float64, rest positions in character-image pixels
    triangles: np.ndarray  # (T, 3) int32


def _resample(poly: np.ndarray, spacing_px: float) -> np.ndarray:
    """Inserts points so no contour edge is longer than ``spacing_px`` (triangle keeps them as Steiner seeds)."""
    out = []
    n = len(poly)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        steps = max(1, int(np.ceil(float(np.hypot(*(b - a))) / spacing_px)))
        for k in range(steps):
            out.append(a + (b - a) * (k / steps))
    return np.asarray(out, dtype=np.float64)


def triangulate_mask(mask: np.ndarray, spacing_px: float, margin_px: int = 2) -> Mesh:
    """Quality triangulation of the mask's outer contours.

    The contour is taken ``margin_px`` outside the mask so the texture's own alpha, not the mesh edge,
    draws the silhouette (soft, anti-aliased edges at any deformation).
    """
    grown = cv2.dilate((mask > 0).astype(np.uint8), np.ones((2 * margin_px + 1,) * 2, np.uint8))
    contours, _ = cv2.findContours(grown, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    verts: list[np.ndarray] = []
    segs: list[np.ndarray] = []
    offset = 0
    min_area = max(4.0 * spacing_px * spacing_px, 16.0)
    for c in sorted(contours, key=lambda c: -cv2.contourArea(c)):
        if cv2.contourArea(c) < min_area:
            continue
        simple = cv2.approxPolyDP(c, epsilon=max(0.75, spacing_px * 0.08), closed=True).reshape(-1, 2)
        if len(simple) < 3:
            continue
        pts = _resample(simple.astype(np.float64), spacing_px)
        # Duplicate points make triangle fail; contours never revisit a point except at pinches.
        _, keep = np.unique(np.round(pts, 3), axis=0, return_index=True)
        pts = pts[np.sort(keep)]
        n = len(pts)
        if n < 3:
            continue
        verts.append(pts)
        idx = np.arange(n)
        segs.append(np.stack([idx, (idx + 1) % n], axis=1) + offset)
        offset += n
    if not verts:
        raise InputError("render.empty_mask", "a body-part layer has no pixels to triangulate",
                         limit=f">= {min_area:.0f} px", actual=int((mask > 0).sum()))
    area = max(spacing_px * spacing_px * 0.6, 2.0)
    result = triangle.triangulate({"vertices": np.concatenate(verts), "segments": np.concatenate(segs)},
                                  f"pq30a{area:.2f}")
    v = np.asarray(result["vertices"], dtype=np.float64)
    t = np.asarray(result["triangles"], dtype=np.int32)
    # Keep triangles whose centre lies in the grown mask (drops bridges across pinched concavities).
    centre = v[t].mean(axis=1)
    cx = np.clip(np.round(centre[:, 0]).astype(int), 0, mask.shape[1] - 1)
    cy = np.clip(np.round(centre[:, 1]).astype(int), 0, mask.shape[0] - 1)
    t = t[grown[cy, cx] > 0]
    used = np.unique(t)
    remap = np.full(len(v), -1, dtype=np.int32)
    remap[used] = np.arange(len(used), dtype=np.int32)
    return Mesh(v[used], remap[t])
