"""Body-part layers of a character: segmentation by bone, filled torso texture, mesh and skin per layer.

The torso layer covers the trunk even where an arm lay across it in the image (that area is inpainted
from the torso alone), so a moving limb uncovers plausible torso, never a hole or a ghost of itself.
Limb layers blend into the torso bone near their root joint, so shoulders and hips stretch instead of
opening; layers overlap by a few pixels at their cuts so seams never show the background.

The torso fill also reaches under each shoulder's arm root (no wedge of background at the armpit) and, in
photos, under arms hanging against the flanks (the convex hull of the torso between shoulder and hip
lines). In a photo on a plain wall, thin slivers of wall the mask enclosed between an arm and the flank
("pockets", see ``background_pockets``) belong to no layer: they no longer stay on the waist as white
wedges or swing out with the arm.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from motion.rig import CharacterRig
from services.render.fill import decontaminate_edges, inpaint_rgb, keep_plausible_fill
from services.render.mesh import Mesh, triangulate_mask
from services.render.outline import cartoon_outline, outline_threshold
from services.render.skin import (
    LIMB_ROOT_BONE,
    Bones,
    Part,
    Skin,
    complete_joints,
    compute_skin,
    segment_distance,
)

OVERLAP_PX = 2
# A layer's mesh spacing is at most this fraction of its shortest bone.
MESH_PER_BONE = 0.3
# A limb claims every pixel within this many of its half-thicknesses of its bones (see label_parts).
LIMB_CLAIM = 0.7
LIMB_CLAIM_OUTSIDE_TRUNK = 1.3
# The torso fill reaches this many arm half-thicknesses round each shoulder joint.
LIMB_ROOT_FILL = 1.2
# Fill within this many arm half-thicknesses of a shoulder joint keeps the shirt's own colours.
SHOULDER_FILL_REACH = 2.0
# Photos: a mask pixel within this Lab distance of the (hole-filled) background behind it is background.
POCKET_DELTA = 12.0
# Pockets smaller than this (pixels) or shorter than this fraction of the height are left alone: specks
# the texture's edge cleaning handles, a watch face.
POCKET_MIN_PX = 12
POCKET_MIN_LENGTH = 0.05
# ...and thinner than this fraction of the character's height (half-width), and at least this many times
# longer than wide: a gap between sleeve and flank, not a white garment or an eye.
POCKET_MAX_RADIUS = 0.015
POCKET_ELONGATION = 4.0
POCKET_EDGE_PX = 2
_ROOT_JOINT = {Part.LEFT_ARM: "left_shoulder", Part.RIGHT_ARM: "right_shoulder",
               Part.LEFT_LEG: "left_hip", Part.RIGHT_LEG: "right_hip"}


@dataclass
class Layer:
    part: Part
    mask: np.ndarray  # (H, W) bool, the pixels this layer draws
    texture_premul: np.ndarray  # (H, W, 4) uint8, premultiplied alpha
    mesh: Mesh
    skin: Skin


@dataclass
class RigModel:
    """Everything the rasteriser needs from a rig, built once per rig."""

    width: int
    height: int
    joints: dict[str, np.ndarray]
    bones: Bones
    layers: list[Layer]
    part_labels: np.ndarray  # (H, W) int8: Part per character pixel, -1 outside


def _part_radius(bones: Bones, joints: dict[str, np.ndarray], height_px: float) -> dict[Part, float]:
    """Rough half-thickness of each part, to compare distances to thick and thin bones fairly."""
    def length(a: str, b: str, default: float) -> float:
        if a in joints and b in joints:
            return float(np.hypot(*(joints[b] - joints[a])))
        return default

    shoulder_w = length("left_shoulder", "right_shoulder", 0.22 * height_px)
    hip_w = length("left_hip", "right_hip", 0.18 * height_px)
    return {
        Part.TORSO: max(0.5 * max(shoulder_w, hip_w), 4.0),
        Part.LEFT_ARM: max(0.25 * length("left_shoulder", "left_elbow", 0.16 * height_px), 3.0),
        Part.RIGHT_ARM: max(0.25 * length("right_shoulder", "right_elbow", 0.16 * height_px), 3.0),
        Part.LEFT_LEG: max(0.28 * length("left_hip", "left_knee", 0.22 * height_px), 3.0),
        Part.RIGHT_LEG: max(0.28 * length("right_hip", "right_knee", 0.22 * height_px), 3.0),
    }


# Line drawings: a limb's half-thickness measured in the mask may exceed the proportional guess by this factor.
MAX_MEASURED_RADIUS = 2.5


def _measured_radius(mask: np.ndarray, bones: Bones, radius: dict[Part, float]) -> dict[Part, float]:
    """Limb half-thicknesses measured in the mask (distance to its edge along the middle of each limb
    bone): a child's drawing has fat limbs far thicker than body proportions predict, and the part of a
    fat leg beyond the proportional radius was left on the torso layer (a static 'panel' with the leg's
    outer outline when the leg moved)."""
    dist = cv2.distanceTransform((mask > 0).astype(np.uint8), cv2.DIST_L2, 5)
    h, w = mask.shape[:2]
    out = dict(radius)
    for part in (Part.LEFT_ARM, Part.RIGHT_ARM, Part.LEFT_LEG, Part.RIGHT_LEG):
        samples = []
        for i, spec in enumerate(bones.specs):
            if spec.part != part or spec.open_end:
                continue
            t = np.linspace(0.25, 0.75, 9)[:, None]
            pts = bones.rest_parent[i] + t * (bones.rest_child[i] - bones.rest_parent[i])
            x = np.clip(np.round(pts[:, 0]).astype(int), 0, w - 1)
            y = np.clip(np.round(pts[:, 1]).astype(int), 0, h - 1)
            samples.append(dist[y, x])
        if samples:
            # Not the maximum: where the limb touches the body the distance measures the body instead.
            measured = float(np.percentile(np.concatenate(samples), 60))
            out[part] = float(np.clip(measured, radius[part], MAX_MEASURED_RADIUS * radius[part]))
    return out


# label_parts compares each pixel only with the bones that can be its nearest: bounds per tile of this side.
LABEL_TILE_PX = 32


def _label_tiles(shape: tuple[int, ...], xs: np.ndarray, ys: np.ndarray, bones: Bones,
                 radius: dict[Part, float]) -> tuple[np.ndarray, np.ndarray]:
    """(tile index of each pixel, (B, tiles) bool: the bone may be nearest, all bones or limbs only).

    A bone whose scaled distance from a tile is surely larger than the smallest scaled distance some other
    bone surely keeps over the whole tile (limb bones: some other limb bone) can be neither the nearest bone
    nor the nearest limb of any pixel in it. Skipping it changes no label: the minimum is exact and its
    first bone (ties) the same. One pixel of slack on each bound covers rounding.
    """
    tile = LABEL_TILE_PX
    n_x = (shape[1] + tile - 1) // tile
    n_y = (shape[0] + tile - 1) // tile
    tile_of = (ys // tile) * n_x + xs // tile
    cy, cx = np.mgrid[0:n_y, 0:n_x]
    centres = np.stack([cx.ravel(), cy.ravel()], axis=1).astype(np.float64) * tile + (tile - 1) / 2.0
    half_diag = (tile - 1) / np.sqrt(2.0) + 1.0
    lower = np.empty((len(bones.specs), len(centres)))
    upper = np.empty_like(lower)
    limb = np.array([spec.part != Part.TORSO for spec in bones.specs], dtype=bool)
    for b, spec in enumerate(bones.specs):
        d = segment_distance(centres, bones.rest_parent[b], bones.rest_child[b])
        lower[b] = np.maximum(d - half_diag, 0.0) / radius[spec.part]
        upper[b] = (d + half_diag) / radius[spec.part]
    bound = upper.min(axis=0)
    limb_bound = upper[limb].min(axis=0) if limb.any() else bound
    needed = np.where(limb[:, None], lower <= limb_bound, lower <= bound)
    return tile_of, needed


def label_parts(mask: np.ndarray, bones: Bones, radius: dict[Part, float],
                trunk: np.ndarray | None = None, head: tuple[np.ndarray, float] | None = None) -> np.ndarray:
    """Assigns every mask pixel to the part of its nearest bone (distance scaled by the part's thickness).

    Inside the trunk polygon a limb only claims pixels within its own thickness of its bone: the flank of
    a torso beside a hanging arm stays torso instead of swinging away with the arm.
    """
    labels = np.full(mask.shape, -1, dtype=np.int8)
    ys, xs = np.nonzero(mask)
    if not len(ys) or not bones.specs:
        labels[mask > 0] = int(Part.TORSO)
        return labels
    pts = np.stack([xs, ys], axis=1).astype(np.float64)
    best = np.full(len(pts), np.inf)
    best_part = np.zeros(len(pts), dtype=np.int8)
    best_limb = np.full(len(pts), np.inf)
    limb_part = np.zeros(len(pts), dtype=np.int8)
    tile_of, needed = _label_tiles(mask.shape, xs, ys, bones, radius)
    for b, spec in enumerate(bones.specs):
        idx = np.flatnonzero(needed[b][tile_of])
        d = segment_distance(pts[idx], bones.rest_parent[b], bones.rest_child[b]) / radius[spec.part]
        closer = d < best[idx]
        best[idx[closer]] = d[closer]
        best_part[idx[closer]] = int(spec.part)
        if spec.part != Part.TORSO:
            closer = d < best_limb[idx]
            best_limb[idx[closer]] = d[closer]
            limb_part[idx[closer]] = int(spec.part)
    # Within its own thickness a limb always wins: an arm raised against the head or crossing the
    # chest must move with the arm, however close the torso's bones are.
    in_trunk = np.zeros(len(pts), dtype=bool)
    if trunk is not None:
        poly = np.zeros(mask.shape, np.uint8)
        cv2.fillConvexPoly(poly, np.round(trunk).astype(np.int32), 1)
        in_trunk = poly[ys, xs] > 0
    # Outside the trunk a limb claims its whole sleeve: the inner edge of an arm hanging against the flank
    # is nearer the (wide) torso in scaled distance, and left behind it hung as a dark sliver when the arm
    # was raised.
    claim = (best_limb <= LIMB_CLAIM) | (~in_trunk & (best_limb <= LIMB_CLAIM_OUTSIDE_TRUNK))
    if head is not None:
        # Hands are often drawn against the head: near the face only the limb's core claims pixels.
        centre, head_r = head
        near_head = np.hypot(xs - centre[0], ys - centre[1]) < head_r
        claim &= ~near_head | (best_limb <= 0.5 * LIMB_CLAIM)
    best_part[claim] = limb_part[claim]
    best[claim] = best_limb[claim]
    if trunk is not None:
        best_part[in_trunk & (best > 1.0)] = int(Part.TORSO)
    labels[ys, xs] = best_part
    # Small islands (hair strands, a sleeve corner) belong to whatever surrounds them; median filtering
    # removes them without moving the boundaries between parts much. (Over the mask's box and the filter's
    # 2 px reach: the result is only kept on mask pixels.)
    h, w = mask.shape
    win = (slice(max(0, int(ys[0]) - 2), min(h, int(ys[-1]) + 3)),
           slice(max(0, int(xs.min()) - 2), min(w, int(xs.max()) + 3)))
    shifted = (labels[win] + 1).astype(np.uint8)
    smooth = cv2.medianBlur(shifted, 5).astype(np.int8) - 1
    out = np.full(mask.shape, -1, dtype=np.int8)
    out[win] = np.where(mask[win] > 0, np.where(smooth >= 0, smooth, labels[win]), -1)
    return out


def background_pockets(rig: CharacterRig, labels: np.ndarray, bones: Bones,
                       height_px: float) -> tuple[np.ndarray, np.ndarray]:
    """(pocket, labels) for a photo: the background its mask enclosed between two body parts, and labels
    with the pixels a limb could only reach across such a pocket given back to the torso.

    An arm hanging close to the body leaves a sliver of wall between sleeve and flank that the mask's
    closing (and hole filling) takes in, and the sleeve's claim takes the shirt flank beyond it too. When
    the arm rose, the sliver stayed as a white wedge at the waist and the flank swung out with the arm. A
    pocket is a thin, elongated patch of mask pixels with the colour of the background behind them (a
    white shirt is wide, eye whites and a watch face are small and round).
    """
    h, w = labels.shape
    lab = cv2.cvtColor(np.ascontiguousarray(rig.texture_rgba[..., :3]), cv2.COLOR_RGB2LAB).astype(np.float32)
    bg = cv2.cvtColor(np.ascontiguousarray(rig.background_rgb), cv2.COLOR_RGB2LAB).astype(np.float32)
    inside = labels >= 0
    cand = (inside & (np.linalg.norm(lab - bg, axis=2) < POCKET_DELTA)).astype(np.uint8)
    # Background-coloured pixels that reach the outline are the mask's own rim, not an enclosed pocket.
    outside = cv2.dilate((~inside).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    pocket = np.zeros((h, w), dtype=bool)
    n, comp, stats, _ = cv2.connectedComponentsWithStats(cand, connectivity=8)
    if n <= 1:
        return pocket, labels
    dist = cv2.distanceTransform(cand, cv2.DIST_L2, 3)
    max_radius = POCKET_MAX_RADIUS * height_px
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        if area < POCKET_MIN_PX or np.hypot(bw, bh) < POCKET_MIN_LENGTH * height_px:
            continue
        own = comp[y:y + bh, x:x + bw] == i
        if outside[y:y + bh, x:x + bw][own].any():
            continue
        radius = float(dist[y:y + bh, x:x + bw][own].max())
        if radius > max_radius or np.hypot(bw, bh) < POCKET_ELONGATION * 2.0 * radius:
            continue
        pocket[y:y + bh, x:x + bw] |= own
    if not pocket.any():
        return pocket, labels
    # With the anti-aliased pixels along its edges (half wall, half sleeve), which would stay as a light
    # streak on the flank.
    pocket = (cv2.dilate(pocket.astype(np.uint8), cv2.getStructuringElement(
        cv2.MORPH_ELLIPSE, (2 * POCKET_EDGE_PX + 1, 2 * POCKET_EDGE_PX + 1))) > 0) & inside
    out = np.where(pocket, -1, labels).astype(np.int8)
    # Limb pixels whose straight path to their limb's bones crosses a pocket lie beyond the gap: the
    # torso's flank, not the sleeve.
    ys, xs = np.nonzero((out > int(Part.TORSO)) & (cv2.dilate(pocket.astype(np.uint8),
                                                              np.ones((3, 3), np.uint8)) == 0))
    if len(ys):
        pts = np.stack([xs, ys], axis=1).astype(np.float64)
        part = out[ys, xs]
        nearest = pts.copy()
        best = np.full(len(pts), np.inf)
        for b, spec in enumerate(bones.specs):
            if spec.part == Part.TORSO:
                continue
            a0, a1 = bones.rest_parent[b], bones.rest_child[b]
            ab = a1 - a0
            t = np.clip(((pts - a0) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
            closest = a0 + t[:, None] * ab
            d = np.hypot(*(pts - closest).T)
            better = (part == int(spec.part)) & (d < best)
            best[better] = d[better]
            nearest[better] = closest[better]
        crossed = np.zeros(len(pts), dtype=bool)
        for f in np.linspace(0.1, 0.9, 9):
            q = np.round(pts + f * (nearest - pts)).astype(np.int64)
            qx, qy = np.clip(q[:, 0], 0, w - 1), np.clip(q[:, 1], 0, h - 1)
            crossed |= pocket[qy, qx]
        out[ys[crossed], xs[crossed]] = int(Part.TORSO)
    return pocket, out


# Forearm colour reclaim (photos): pixels beyond this fraction of the arm's radius from the forearm bone are
# compared with the forearm's core (nearer than CORE) and with the torso/legs beside it, in bins along the
# bone; a pixel whose colour is within RATIO of the neighbours' distance to them goes back to the torso.
RECLAIM_CORE = 0.35
RECLAIM_BAND = 0.5
RECLAIM_NEIGHBOUR_REACH = 2.0
RECLAIM_BINS = 6
RECLAIM_RATIO = 0.6
RECLAIM_MIN_CONTRAST = 20.0  # Lab: core and neighbours this different, or nothing is decided by colour
RECLAIM_MIN_PX = 12
RECLAIM_CORE_PERCENTILE = 75.0
RECLAIM_DOMINANT_CONTRAST = 30.0  # Lab: the neighbours' typical colour this far from the core's, or no test
RECLAIM_SPREAD = 1.5


def _centroids(colours: np.ndarray, k: int = 3, rounds: int = 8) -> np.ndarray:
    """A few representative colours (k-means in Lab, started from lightness quantiles: deterministic)."""
    order = np.argsort(colours[:, 0], kind="stable")
    centres = colours[order[((np.arange(k) + 0.5) * len(order) / k).astype(np.int64)]].copy()
    for _ in range(rounds):
        nearest = np.argmin(np.linalg.norm(colours[:, None, :] - centres[None], axis=2), axis=1)
        for j in range(k):
            if np.any(nearest == j):
                centres[j] = colours[nearest == j].mean(axis=0)
    return centres


def reclaim_forearm_flank(texture_rgb: np.ndarray, labels: np.ndarray, bones: Bones,
                          radius: dict[Part, float]) -> np.ndarray:
    """Labels with the shirt flank an arm's claim took beside a bare forearm given back to the torso.

    A forearm hanging against the body claims the pixels within its reach, and the shirt's flank between the
    skin and the torso's bones is within it: when the arm swung out, that strip hung from the forearm as a
    dark scrap. Where the forearm's core (skin, a sleeve) differs in colour from the torso and legs beside
    it, band pixels coloured like those neighbours go back to the torso. Compared bin by bin along the bone,
    so a rolled-up cuff of the shirt's fabric at the elbow stays with the arm. (Hands are left as they are:
    a hand in a pocket has no colour of its own to compare with, and cutting the pocket out of it left holes.)
    """
    out = labels.copy()
    body = (labels == int(Part.TORSO)) | (labels == int(Part.LEFT_LEG)) | (labels == int(Part.RIGHT_LEG))
    h, w = labels.shape
    for b, spec in enumerate(bones.specs):
        if not spec.name.endswith("_forearm"):
            continue
        r = radius[spec.part]
        a0, a1 = bones.rest_parent[b], bones.rest_child[b]
        reach = RECLAIM_NEIGHBOUR_REACH * r
        x0, x1 = max(0, int(min(a0[0], a1[0]) - reach)), min(w, int(max(a0[0], a1[0]) + reach) + 1)
        y0, y1 = max(0, int(min(a0[1], a1[1]) - reach)), min(h, int(max(a0[1], a1[1]) + reach) + 1)
        if x1 <= x0 or y1 <= y0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        pts = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float64)
        ab = a1 - a0
        t = (((pts - a0) @ ab) / max(float(ab @ ab), 1e-12)).reshape(yy.shape)  # 0..1 from elbow to wrist
        d = segment_distance(pts, a0, a1).reshape(yy.shape)
        other = np.full(yy.shape, np.inf)  # distance to the arm's other bones (upper arm, hand)
        for c, spec_c in enumerate(bones.specs):
            if spec_c.part == spec.part and c != b:
                other = np.minimum(other, segment_distance(pts, bones.rest_parent[c], bones.rest_child[c])
                                   .reshape(yy.shape))
        own = out[y0:y1, x0:x1] == int(spec.part)
        mine = own & (t >= 0.0) & (t <= 1.0) & (d <= other)
        core = mine & (d <= RECLAIM_CORE * r)
        band = mine & (d > RECLAIM_BAND * r)
        beside = body[y0:y1, x0:x1] & (t >= 0.0) & (t <= 1.0) & (d <= reach)
        bins = np.minimum((np.clip(t, 0.0, 1.0) * RECLAIM_BINS).astype(np.int64), RECLAIM_BINS - 1)
        # Lab of the forearm's window only (per pixel: the same values as converting the whole image).
        colours = cv2.cvtColor(np.ascontiguousarray(texture_rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2LAB).astype(np.float32)
        give = np.zeros(yy.shape, dtype=bool)
        for k in range(RECLAIM_BINS):
            cand, ref, nb = band & (bins == k), core & (bins == k), beside & (bins == k)
            if ref.sum() < RECLAIM_MIN_PX or nb.sum() < RECLAIM_MIN_PX or not cand.any():
                continue
            c_ref = np.median(colours[ref], axis=0)
            if float(np.linalg.norm(np.median(colours[nb], axis=0) - c_ref)) < RECLAIM_DOMINANT_CONTRAST:
                continue  # a sleeve of the torso's own fabric: only its shadows would differ
            # Neighbour colours like the arm's own say nothing.
            n_ref = _centroids(colours[nb])
            n_ref = n_ref[np.linalg.norm(n_ref - c_ref, axis=1) >= RECLAIM_MIN_CONTRAST]
            if not len(n_ref):
                continue
            px = colours[cand]
            to_n = np.linalg.norm(px[:, None, :] - n_ref[None], axis=2).min(axis=1)
            to_c = np.linalg.norm(px - c_ref, axis=1)
            # A pixel must also be unlike the core itself (beyond its usual spread: folds, shading, hair).
            spread = float(np.percentile(np.linalg.norm(colours[ref] - c_ref, axis=1), RECLAIM_CORE_PERCENTILE))
            give[cand] = (to_n < RECLAIM_RATIO * to_c) & (to_c > max(RECLAIM_SPREAD * spread, RECLAIM_MIN_CONTRAST))
        # Only what is attached to the torso or legs: a dark patch inside the arm (a watch strap, a shadow)
        # is the arm's.
        give_u8 = cv2.morphologyEx(give.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        _, comp = cv2.connectedComponents(give_u8, connectivity=8)
        touch = cv2.dilate(body[y0:y1, x0:x1].astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        keep = np.unique(comp[(give_u8 > 0) & touch])
        keep = keep[keep > 0]
        if not len(keep):
            continue
        win = out[y0:y1, x0:x1]
        win[np.isin(comp, keep)] = int(Part.TORSO)
        # Flank pixels the colour test left between reclaimed ones are now islands cut off from the arm:
        # they follow the torso too, instead of flying with the arm as specks.
        n, arm = cv2.connectedComponents((win == int(spec.part)).astype(np.uint8), connectivity=8)
        if n > 2:
            held = np.unique(arm[core & (arm > 0)])
            win[(arm > 0) & ~np.isin(arm, held) & mine] = int(Part.TORSO)
    return out


# The trunk band reaches this fraction of the spine below the hip line (a shirt's hem, hands in pockets).
TRUNK_HULL_BELOW_HIPS = 0.15


def _trunk_hull(torso: np.ndarray, joints: dict[str, np.ndarray]) -> np.ndarray:
    """The convex hull of the torso's own pixels between the shoulder line and just below the hip line.

    The torso's silhouette runs on under an arm hanging against it (the flank from armpit to hem); the
    joint quad alone stops at the hip joints, well inside the body, so a moving arm uncovered a notch of
    background at the waist.
    """
    h, w = torso.shape
    if "hip_center" not in joints or "shoulder_center" not in joints:
        return np.zeros((h, w), dtype=bool)
    base, top = joints["hip_center"], joints["shoulder_center"]
    axis = top - base
    length2 = float(axis @ axis)
    if length2 < 1.0:
        return np.zeros((h, w), dtype=bool)
    ys, xs = np.nonzero(torso)
    t = ((np.stack([xs, ys], axis=1) - base) @ axis) / length2
    keep = (t >= -TRUNK_HULL_BELOW_HIPS) & (t <= 1.0)
    out = np.zeros((h, w), np.uint8)
    if int(keep.sum()) < 3:
        return out > 0
    hull = cv2.convexHull(np.stack([xs[keep], ys[keep]], axis=1).astype(np.int32))
    cv2.fillConvexPoly(out, hull, 1)
    # Only within the band: above the shoulders the hull would take in arms raised beside the head.
    # (Tested over the hull's box only: outside it there is nothing to keep.)
    x0, y0, bw, bh = cv2.boundingRect(hull)
    yy, xx = np.mgrid[y0:y0 + bh, x0:x0 + bw]
    tt = ((xx - base[0]) * axis[0] + (yy - base[1]) * axis[1]) / length2
    result = np.zeros((h, w), dtype=bool)
    result[y0:y0 + bh, x0:x0 + bw] = (out[y0:y0 + bh, x0:x0 + bw] > 0) & (tt >= -TRUNK_HULL_BELOW_HIPS) & (tt <= 1.0)
    return result


def _trunk_polygon(joints: dict[str, np.ndarray], grow: float, hip_out_px: float = 0.0) -> np.ndarray | None:
    """The shoulder-hip quad grown about its centre; ``hip_out_px`` moves the hip corners outward along
    the hip line (hip joints sit about a thigh's half-width inside the body's flank)."""
    names = ("left_shoulder", "right_shoulder", "right_hip", "left_hip")
    if not all(n in joints for n in names):
        return None
    quad = np.array([joints[n] for n in names], dtype=np.float64)
    if hip_out_px > 0:
        hip = quad[2] - quad[3]
        n = float(np.hypot(*hip))
        if n > 1e-6:
            quad[2] += hip / n * hip_out_px
            quad[3] -= hip / n * hip_out_px
    centre = quad.mean(axis=0)
    return np.asarray(centre + (quad - centre) * grow)


def _premultiply(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    out = np.zeros(rgb.shape[:2] + (4,), dtype=np.uint8)
    # A layer covers a small part of the image and is zero (premultiplied) wherever its alpha is: only the
    # alpha's box is computed.
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if not len(rows):
        return out
    win = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
    a = alpha[win].astype(np.float32) / 255.0
    out[win][..., :3] = np.clip(rgb[win].astype(np.float32) * a[..., None] + 0.5, 0, 255).astype(np.uint8)
    out[win][..., 3] = alpha[win]
    return out


def build_rig_model(rig: CharacterRig, spacing_px: float | None = None) -> RigModel:
    """Segments, fills, triangulates and skins the character's layers."""
    h, w = rig.mask.shape[:2]
    joints = complete_joints(rig.joints)
    bones = Bones.for_joints(joints)
    height_px = float(rig.height_px) if rig.height_px > 0 else float(h)
    spacing = spacing_px if spacing_px else max(4.0, height_px / 45.0)
    mask = rig.mask > 0
    radius = _part_radius(bones, joints, height_px)
    line_art = outline_threshold(rig.texture_rgba, rig.mask, has_face=rig.face is not None) is not None
    outlined = None if line_art else cartoon_outline(rig.texture_rgba, rig.mask)
    if line_art:
        radius = _measured_radius(rig.mask, bones, radius)
    head = None
    if "nose" in joints and "shoulder_center" in joints:
        head = (joints["nose"], 0.8 * float(np.hypot(*(joints["nose"] - joints["shoulder_center"]))))
    # The trunk reaches the flank at the hips: a shirt's hem beside a hanging hand is torso, not a flap of
    # the arm's sleeve.
    # (Photos: a drawing's trunk is outlined where it is drawn, and its fat legs are measured instead.)
    hip_out = 0.0 if line_art else 0.5 * (radius[Part.LEFT_LEG] + radius[Part.RIGHT_LEG])
    labels = label_parts(mask, bones, radius, _trunk_polygon(joints, 1.0, hip_out), head)
    tex = decontaminate_edges(rig.texture_rgba)
    alpha_src = tex[..., 3]
    torso_pocket = np.zeros((h, w), dtype=bool)
    if not line_art and rig.mask_source == "threshold":
        # A photo on a plain wall: shirt flank beside a bare forearm goes back to the torso. (Not on busy
        # photos or illustrations: folds of a same-fabric sleeve, glow and hair passed the colour test there.)
        labels = reclaim_forearm_flank(rig.texture_rgba[..., :3], labels, bones, radius)
        # Only on a plain wall is the hole-filled background a reliable colour to compare with.
        pocket, labels = background_pockets(rig, labels, bones, height_px)
        if pocket.any():
            # Background caught between parts belongs to no layer; the torso fill covers the pockets that
            # border the torso (the shirt continues under the arm).
            alpha_src = np.where(pocket, 0, alpha_src).astype(np.uint8)
            near_torso = cv2.dilate((labels == int(Part.TORSO)).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
            _, comp = cv2.connectedComponents(pocket.astype(np.uint8), connectivity=8)
            touching = np.unique(comp[near_torso & pocket])
            torso_pocket = np.isin(comp, touching[touching > 0])
    present_parts = sorted({int(p) for p in np.unique(labels) if p >= 0})

    layers: list[Layer] = []
    for p in present_parts:
        part = Part(p)
        own = labels == p
        if part == Part.TORSO:
            region = own.copy()
            # Illustrations' glowing sleeves beside the chest fade out (see WING_FADE_START).
            wing = None if line_art else _torso_wing_fade(mask, joints, radius, _trunk_polygon(joints, 1.0, hip_out))
            trunk = _trunk_polygon(joints, 1.12)
            covered = np.zeros_like(own)
            if trunk is not None:
                poly = np.zeros((h, w), np.uint8)
                cv2.fillConvexPoly(poly, np.round(trunk).astype(np.int32), 1)
                covered = (poly > 0) & mask & ~own
            # Under each arm's root the torso goes on: an arm swinging away from the trunk uncovers it, and
            # without fill there the armpit showed a wedge of background.
            for limb, root in _ROOT_JOINT.items():
                # (Arms only: a leg's root is under the belt or hem, and fill there smeared it when the
                # legs spread.)
                if root in joints and limb in (Part.LEFT_ARM, Part.RIGHT_ARM):
                    covered |= _disc(joints[root], LIMB_ROOT_FILL * radius[limb], (h, w)) & (labels == int(limb))
            if not line_art:
                # A photo's torso continues under the arms; a drawing's is drawn (outlined) where it ends.
                # (Not from faded sleeves: their hull would fill them back in, opaque.)
                body = own if wing is None else own & (wing >= 0.5)
                covered |= torso_pocket | (_trunk_hull(body | torso_pocket, joints) & mask & ~own)
            region |= covered
            # Colours come from the torso's solid pixels: its anti-aliased rim is half background.
            known = own & (alpha_src >= 250)
            if not known.any():
                known = own
            rgb = inpaint_rgb(tex[..., :3], covered, known=known) if np.any(covered) else tex[..., :3]
            # Beside the shoulders, where a raised or crossing arm uncovers the fill in full, the smoothing
            # averaged a patterned shirt (stripes) into a pale tint that read as a translucent ghost of the
            # sleeve: there the fill keeps the shirt's own colours (see keep_plausible_fill).
            shoulder_fill = np.zeros_like(covered)
            for limb, root in _ROOT_JOINT.items():
                if root in joints and limb in (Part.LEFT_ARM, Part.RIGHT_ARM):
                    shoulder_fill |= _disc(joints[root], SHOULDER_FILL_REACH * radius[limb], (h, w))
            shoulder_fill &= covered
            if np.any(shoulder_fill):
                rgb = keep_plausible_fill(tex[..., :3], rgb, shoulder_fill, known)
            alpha = np.where(covered, 255, alpha_src).astype(np.uint8)
            if outlined is not None and np.any(covered):
                # A cartoon's fill under the arms is outlined where it ends, like the rest of its silhouette
                # (hidden under the arm at rest; the torso's new edge once the arm has moved away).
                colour, width = outlined
                depth = cv2.distanceTransform(region.astype(np.uint8), cv2.DIST_L2, 3)
                stroke = covered & (depth <= width)
                rgb = np.array(rgb, copy=True)
                rgb[stroke] = colour
            if wing is not None:
                region &= wing > 0
                alpha = np.clip(alpha.astype(np.float32) * wing + 0.5, 0, 255).astype(np.uint8)
        else:
            # Only the limb's own pixels: torso pixels carried by a limb would swing with it as flaps.
            region = own.copy()
            rgb = tex[..., :3]
            alpha = alpha_src
            fold = None
            if not line_art and part in (Part.LEFT_ARM, Part.RIGHT_ARM):
                fold = _elbow_fold_cut(region, bones, part, radius[part])
            if fold is not None:
                region &= fold > 0
                alpha = np.clip(alpha.astype(np.float32) * fold + 0.5, 0, 255).astype(np.uint8)
        pieces: list[tuple[np.ndarray, np.ndarray | None]] = [(region, None)]
        if not line_art and part in (Part.LEFT_ARM, Part.RIGHT_ARM):
            pieces = _split_folded_arm(region, bones, part)
        for piece, piece_bones in pieces:
            layer = _make_layer(part, piece, rgb, alpha, labels, bones, radius[part], spacing, piece_bones)
            if layer is not None:
                layers.append(layer)
    return RigModel(w, h, joints, bones, layers, labels)


def _disc(centre: np.ndarray, radius_px: float, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: pixels within ``radius_px`` of ``centre`` (distances computed over the disc's box only)."""
    h, w = shape
    out = np.zeros((h, w), dtype=bool)
    x0, x1 = max(0, int(np.floor(centre[0] - radius_px)) - 1), min(w, int(np.ceil(centre[0] + radius_px)) + 2)
    y0, y1 = max(0, int(np.floor(centre[1] - radius_px)) - 1), min(h, int(np.ceil(centre[1] + radius_px)) + 2)
    if x1 > x0 and y1 > y0:
        yy, xx = np.mgrid[y0:y1, x0:x1]
        out[y0:y1, x0:x1] = np.hypot(xx - centre[0], yy - centre[1]) <= radius_px
    return out


def _make_layer(part: Part, region: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, labels: np.ndarray,
                bones: Bones, radius_px: float, spacing: float, only_bones: np.ndarray | None = None
                ) -> Layer | None:
    """Triangulates and skins one layer's pixels; None for a sliver. ``only_bones`` (B,) bool: the part's
    bones this layer may follow (the torso root bone keeps its pull at a limb's root)."""
    if int(region.sum()) < 16:
        return None
    # Where a layer ends inside the body it reaches OVERLAP_PX past its cut, fully opaque: adjacent
    # layers then overlap instead of each fading out, which would let the background shine through
    # the seam. The silhouette keeps the texture's own (anti-aliased) alpha.
    grown = cv2.dilate(region.astype(np.uint8), cv2.getStructuringElement(
        cv2.MORPH_ELLIPSE, (2 * OVERLAP_PX + 1, 2 * OVERLAP_PX + 1))) > 0
    layer_alpha = np.where(grown, alpha, 0).astype(np.uint8)
    # Short bones (hands, feet, a drawing's stubby neck) need vertices close enough together that the
    # bend at their joint stays near the joint instead of spreading over the whole bone.
    lengths = [float(np.hypot(*(bones.rest_child[i] - bones.rest_parent[i])))
               for i, sp in enumerate(bones.specs) if sp.part == part]
    layer_spacing = min(spacing, max(3.0, MESH_PER_BONE * min(lengths))) if lengths else spacing
    try:
        mesh = triangulate_mask(grown, layer_spacing)
    except Exception:  # noqa: BLE001 - a sliver layer is dropped rather than failing the whole rig
        return None
    seed, allowed = _allowed_bones(mesh.vertices, labels, bones, part, radius_px)
    if only_bones is not None:
        own = np.array([sp.part == part for sp in bones.specs], dtype=bool)
        drop = own & ~only_bones
        seed[:, drop] = False
        allowed[:, drop] = 0.0
    skin = compute_skin(mesh.vertices, mesh.triangles, bones, allowed, scale_px=radius_px, seed=seed)
    return Layer(part, region, _premultiply(rgb, layer_alpha), mesh, skin)


# An elbow drawn folded tighter than this (inner angle, degrees) splits its arm layer in two at the fold:
# forearm and hand, then the upper arm (in that order: the renderer rigs the hand on the part's first
# layer), each following only its own bones. Skin blended across such a fold turned through the blend of
# two rotations more than 120 degrees apart when the arm straightened: vertices near the elbow were flung
# out and their triangles stretched into a big paddle of sleeve. Two overlapping pieces just part there.
ARM_SPLIT_DEG = 75.0


def _split_folded_arm(region: np.ndarray, bones: Bones, part: Part
                      ) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """[(pixels, bones)] of an arm layer: the whole arm, or forearm+hand and upper arm at a folded elbow."""
    side = "left" if part == Part.LEFT_ARM else "right"
    a, b = bones.index(f"{side}_upper_arm"), bones.index(f"{side}_forearm")
    if a < 0 or b < 0:
        return [(region, None)]
    elbow = bones.rest_child[a]
    to_a, to_b = bones.rest_parent[a] - elbow, bones.rest_child[b] - elbow
    cos = float(to_a @ to_b) / max(float(np.hypot(*to_a) * np.hypot(*to_b)), 1e-9)
    if np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))) >= ARM_SPLIT_DEG:
        return [(region, None)]
    ys, xs = np.nonzero(region)
    pts = np.stack([xs, ys], axis=1).astype(np.float64)
    d_upper = segment_distance(pts, bones.rest_parent[a], bones.rest_child[a])
    d_lower = np.full(len(pts), np.inf)
    for i, spec in enumerate(bones.specs):
        if spec.part == part and i != a:
            d_lower = np.minimum(d_lower, segment_distance(pts, bones.rest_parent[i], bones.rest_child[i]))
    upper = np.zeros_like(region)
    upper[ys[d_upper < d_lower], xs[d_upper < d_lower]] = True
    lower = region & ~upper
    if int(upper.sum()) < 16 or int(lower.sum()) < 16:
        return [(region, None)]
    upper_bone = np.zeros(len(bones.specs), dtype=bool)
    upper_bone[a] = True
    lower_bones = np.array([sp.part == part for sp in bones.specs], dtype=bool) & ~upper_bone
    return [(lower, lower_bones), (upper, upper_bone)]


# An elbow drawn folded (inner angle under ELBOW_FOLDED_DEG): what the mask holds inside the fold, farther
# than ELBOW_FOLD_CUT arm half-thicknesses (fading over the next 0.2) from both the upper arm and the
# forearm, is not arm (the sky seen between them, a raised arm's glowing sleeve). Kept, it joined forearm
# and upper arm into one solid blob that spread over the whole opening angle when the arm straightened.
ELBOW_FOLD_CUT = 0.6
ELBOW_FOLDED_DEG = 120.0


def _elbow_fold_cut(region: np.ndarray, bones: Bones, part: Part, radius_px: float) -> np.ndarray | None:
    """(H, W) float32 alpha factor of an arm layer (0 inside a folded elbow, see ELBOW_FOLD_CUT), or None
    when the elbow is not folded."""
    side = "left" if part == Part.LEFT_ARM else "right"
    a, b = bones.index(f"{side}_upper_arm"), bones.index(f"{side}_forearm")
    ys, xs = np.nonzero(region)
    if a < 0 or b < 0 or not len(ys):
        return None
    elbow = bones.rest_child[a]
    to_a, to_b = bones.rest_parent[a] - elbow, bones.rest_child[b] - elbow
    ang_a, ang_b = np.arctan2(to_a[1], to_a[0]), np.arctan2(to_b[1], to_b[0])
    beta = (ang_b - ang_a) % (2 * np.pi)
    if np.degrees(min(beta, 2 * np.pi - beta)) >= ELBOW_FOLDED_DEG:
        return None
    pts = np.stack([xs, ys], axis=1).astype(np.float64)
    phi = (np.arctan2(pts[:, 1] - elbow[1], pts[:, 0] - elbow[0]) - ang_a) % (2 * np.pi)
    # Inside the fold: between the two bones' directions, on the side of the smaller angle.
    inside = (phi < beta) if beta <= np.pi else (phi > beta)
    r = max(radius_px, 1e-6)
    both = np.minimum(segment_distance(pts, bones.rest_parent[a], bones.rest_child[a]),
                      segment_distance(pts, bones.rest_parent[b], bones.rest_child[b])) / r
    keep = np.where(inside, _smoothstep((ELBOW_FOLD_CUT + 0.2 - both) / 0.2), 1.0)
    out = np.zeros(region.shape, np.float32)
    out[ys, xs] = keep.astype(np.float32)
    return out


def _smoothstep(x: np.ndarray) -> np.ndarray:
    u = np.clip(x, 0.0, 1.0)
    return np.asarray(u * u * (3.0 - 2.0 * u))


# Torso pixels beside the chest, outside the shoulder-hip quad, fade out between these multiples of the
# arms' half-thickness from the quad. They are what hangs from arms raised in the image (an illustration's
# wide glowing sleeves) and what the segmentation took between sleeve and flank; the torso's bones carry
# them far past the shoulders, where the shoulder bone's stretch and turn threw them about as big pink
# blobs once the arms came down. A torso, a shirt or hair on the shoulders lies within the quad's edge.
WING_FADE_START = 0.6
WING_FADE_END = 1.4
# ...only between these fractions of the spine (hip line 0, shoulder line 1): the skirt flares below; above,
# a sleeve reaches the shoulder line, while the head and hair (within WING_HEAD_REACH neck lengths of the
# nose) are never faded.
WING_SPINE_RANGE = ((0.25, 0.4), (1.0, 1.25))
WING_HEAD_REACH = 1.2
# ...nor within this many arm half-thicknesses of a shoulder joint (fading over 0.5 more).
WING_SHOULDER_KEEP = 1.3


def _torso_wing_fade(mask: np.ndarray, joints: dict[str, np.ndarray], radius: dict[Part, float],
                     quad: np.ndarray | None) -> np.ndarray | None:
    """(H, W) float32 alpha factor of the torso layer (see WING_FADE_START) over the ``mask``, or None when
    nothing fades. ``quad``: the trunk polygon the parts were labelled with (hip corners out at the flanks)."""
    if quad is None or "hip_center" not in joints or "shoulder_center" not in joints:
        return None
    h, w = mask.shape
    poly = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(poly, np.round(quad).astype(np.int32), 1)
    arm_r = 0.5 * (radius[Part.LEFT_ARM] + radius[Part.RIGHT_ARM])
    cand = mask & (poly == 0)
    if not cand.any():
        return None
    dist = cv2.distanceTransform((poly == 0).astype(np.uint8), cv2.DIST_L2, 5)
    base, top = joints["hip_center"], joints["shoulder_center"]
    axis = top - base
    length2 = max(float(axis @ axis), 1e-6)
    ys, xs = np.nonzero(cand)
    t = ((np.stack([xs, ys], axis=1) - base) @ axis) / length2

    def ramp(x: np.ndarray, a: float, b: float) -> np.ndarray:
        return _smoothstep((x - a) / (b - a))

    (lo0, lo1), (hi0, hi1) = WING_SPINE_RANGE
    band = ramp(t, lo0, lo1) * (1.0 - ramp(t, hi0, hi1))
    lateral = ramp(dist[ys, xs] / max(arm_r, 1e-6), WING_FADE_START, WING_FADE_END)
    # Not the shoulder's own round (a photo's deltoid and sleeve head bulge past the joint quad).
    shoulder = np.full(len(xs), np.inf)
    for name in ("left_shoulder", "right_shoulder"):
        if name in joints:
            shoulder = np.minimum(shoulder, np.hypot(xs - joints[name][0], ys - joints[name][1]))
    drop = band * lateral * ramp(shoulder / max(arm_r, 1e-6), WING_SHOULDER_KEEP, WING_SHOULDER_KEEP + 0.5)
    if "nose" in joints:
        neck = float(np.hypot(*(joints["nose"] - joints["shoulder_center"])))
        drop[np.hypot(xs - joints["nose"][0], ys - joints["nose"][1]) < WING_HEAD_REACH * neck] = 0.0
    if not np.any(drop > 0):
        return None
    out = np.ones((h, w), np.float32)
    out[ys, xs] = (1.0 - drop).astype(np.float32)
    return out


def _allowed_bones(vertices: np.ndarray, labels: np.ndarray, bones: Bones, part: Part,
                   radius_px: float) -> tuple[np.ndarray, np.ndarray]:
    """(seed, allowed) bone masks per vertex: limbs start from their own bones (the torso overlap from
    the root bone) and smoothing may blend the root bone into the limb's base."""
    n_b = len(bones.specs)
    allowed = np.zeros((len(vertices), n_b), dtype=bool)
    own = np.array([s.part == part for s in bones.specs], dtype=bool)
    allowed[:, own] = True
    if part != Part.TORSO:
        root = bones.index(LIMB_ROOT_BONE[part])
        if root < 0:
            root = bones.index("spine")
        if root >= 0:
            # Vertices in the torso overlap region hang from the torso bone.
            h, w = labels.shape
            x = np.clip(np.round(vertices[:, 0]).astype(int), 0, w - 1)
            y = np.clip(np.round(vertices[:, 1]).astype(int), 0, h - 1)
            in_torso = labels[y, x] == int(Part.TORSO)
            seed = allowed.copy()
            # The overlap stays with the torso; smoothing then blends it into the limb's first bone.
            seed[in_torso] = False
            seed[in_torso, root] = True
            # Only around the root joint may the torso bone pull on the limb (the shoulder/hip skin).
            first = int(own.argmax())  # BONE_SPECS lists a limb's upper bone first; its parent is the root
            rel = vertices - bones.rest_parent[first]
            d = np.hypot(*rel.T) / radius_px
            axis = bones.rest_child[first] - bones.rest_parent[first]
            along = rel @ (axis / max(float(np.hypot(*axis)), 1e-9)) / radius_px
            # A smooth fade (1 near the joint, 0 past 1.5 limb radii) so the shoulder skin has no kink; only
            # on the trunk's side of the joint: skin alongside the upper arm (a sleeve hanging against the
            # flank) must go with the arm, or raising it stretches that skin into a dark wedge.
            fade = np.clip((1.5 - d) / 0.9, 0.0, 1.0) * np.clip((0.4 - along) / 0.8, 0.0, 1.0)
            allowed_f = allowed.astype(np.float64)
            allowed_f[:, root] = fade * fade * (3 - 2 * fade)
            return seed, allowed_f
    if not np.any(own):
        allowed[:] = True
    return allowed.copy(), allowed.astype(np.float64)
