"""Body-part layers of a character: segmentation by bone, filled torso texture, mesh and skin per layer.

The torso layer covers the trunk even where an arm lay across it in the image (that area is inpainted
from the torso alone), so a moving limb uncovers plausible torso, never a hole or a ghost of itself.
Limb layers blend into the torso bone near their root joint, so shoulders and hips stretch instead of
opening; layers overlap by a few pixels at their cuts so seams never show the background.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from motion.rig import CharacterRig
from services.render.fill import decontaminate_edges, inpaint_rgb
from services.render.mesh import Mesh, triangulate_mask
from services.render.outline import outline_threshold
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
    for b, spec in enumerate(bones.specs):
        d = segment_distance(pts, bones.rest_parent[b], bones.rest_child[b]) / radius[spec.part]
        closer = d < best
        best[closer] = d[closer]
        best_part[closer] = int(spec.part)
        if spec.part != Part.TORSO:
            closer = d < best_limb
            best_limb[closer] = d[closer]
            limb_part[closer] = int(spec.part)
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
        near_head = np.hypot(*(pts - centre).T) < head_r
        claim &= ~near_head | (best_limb <= 0.5 * LIMB_CLAIM)
    best_part[claim] = limb_part[claim]
    best[claim] = best_limb[claim]
    if trunk is not None:
        best_part[in_trunk & (best > 1.0)] = int(Part.TORSO)
    labels[ys, xs] = best_part
    # Small islands (hair strands, a sleeve corner) belong to whatever surrounds them; median filtering
    # removes them without moving the boundaries between parts much.
    shifted = (labels + 1).astype(np.uint8)
    smooth = cv2.medianBlur(shifted, 5).astype(np.int8) - 1
    return np.where(mask > 0, np.where(smooth >= 0, smooth, labels), -1).astype(np.int8)


def _trunk_polygon(joints: dict[str, np.ndarray], grow: float) -> np.ndarray | None:
    names = ("left_shoulder", "right_shoulder", "right_hip", "left_hip")
    if not all(n in joints for n in names):
        return None
    quad = np.array([joints[n] for n in names], dtype=np.float64)
    centre = quad.mean(axis=0)
    return np.asarray(centre + (quad - centre) * grow)


def _premultiply(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float32) / 255.0
    out = np.empty(rgb.shape[:2] + (4,), dtype=np.uint8)
    out[..., :3] = np.clip(rgb.astype(np.float32) * a[..., None] + 0.5, 0, 255).astype(np.uint8)
    out[..., 3] = alpha
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
    if outline_threshold(rig.texture_rgba, rig.mask, has_face=rig.face is not None) is not None:
        radius = _measured_radius(rig.mask, bones, radius)
    head = None
    if "nose" in joints and "shoulder_center" in joints:
        head = (joints["nose"], 0.8 * float(np.hypot(*(joints["nose"] - joints["shoulder_center"]))))
    labels = label_parts(mask, bones, radius, _trunk_polygon(joints, 1.0), head)
    tex = decontaminate_edges(rig.texture_rgba)
    alpha_src = tex[..., 3]
    present_parts = sorted({int(p) for p in np.unique(labels) if p >= 0})

    layers: list[Layer] = []
    for p in present_parts:
        part = Part(p)
        own = labels == p
        if part == Part.TORSO:
            region = own.copy()
            trunk = _trunk_polygon(joints, 1.12)
            covered = np.zeros_like(own)
            if trunk is not None:
                poly = np.zeros((h, w), np.uint8)
                cv2.fillConvexPoly(poly, np.round(trunk).astype(np.int32), 1)
                covered = (poly > 0) & mask & ~own
                region |= covered
            rgb = inpaint_rgb(tex[..., :3], covered, known=own) if np.any(covered) else tex[..., :3]
            alpha = np.where(covered, 255, alpha_src).astype(np.uint8)
        else:
            # Only the limb's own pixels: torso pixels carried by a limb would swing with it as flaps.
            region = own.copy()
            rgb = tex[..., :3]
            alpha = alpha_src
        if int(region.sum()) < 16:
            continue
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
            continue
        seed, allowed = _allowed_bones(mesh.vertices, labels, bones, part, radius[part])
        skin = compute_skin(mesh.vertices, mesh.triangles, bones, allowed, scale_px=radius[part], seed=seed)
        layers.append(Layer(part, region, _premultiply(rgb, layer_alpha), mesh, skin))
    return RigModel(w, h, joints, bones, layers, labels)


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
