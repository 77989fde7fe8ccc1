"""Exact rig check: how closely the deformed mesh follows the target bones.

Points along each bone's rest axis are carried through the skinned mesh (barycentric coordinates in the
layer triangle containing them) and the direction of the deformed axis is compared with the target bone.
"""

from __future__ import annotations

import numpy as np

from motion.skeleton import SkeletonFrame
from services.render.layers import Layer, RigModel
from services.render.skin import bone_transforms, deform, frame_joints


def _barycentric(layer: Layer, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(triangle index, barycentric weights) of each point; index -1 when outside the mesh."""
    v, t = layer.mesh.vertices, layer.mesh.triangles
    a, b, c = v[t[:, 0]], v[t[:, 1]], v[t[:, 2]]
    tri_idx = np.full(len(points), -1, dtype=np.int64)
    bary = np.zeros((len(points), 3))
    det = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
    ok = np.abs(det) > 1e-12
    for i, p in enumerate(points):
        l1 = ((b[:, 1] - c[:, 1]) * (p[0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (p[1] - c[:, 1])) / np.where(ok, det, 1)
        l2 = ((c[:, 1] - a[:, 1]) * (p[0] - c[:, 0]) + (a[:, 0] - c[:, 0]) * (p[1] - c[:, 1])) / np.where(ok, det, 1)
        l3 = 1 - l1 - l2
        inside = ok & (l1 >= -1e-9) & (l2 >= -1e-9) & (l3 >= -1e-9)
        hits = np.nonzero(inside)[0]
        if len(hits):
            k = int(hits[0])
            tri_idx[i] = k
            bary[i] = (l1[k], l2[k], l3[k])
    return tri_idx, bary


def bone_angle_errors_deg(model: RigModel, frame: SkeletonFrame, samples: int = 9) -> dict[str, float]:
    """Angle (degrees) between each deformed bone axis (its middle half) and the target bone."""
    target = frame_joints(frame)
    tf = bone_transforms(model.bones, target)
    errors: dict[str, float] = {}
    for b, spec in enumerate(model.bones.specs):
        if spec.parent not in target or spec.child not in target:
            continue
        layer = next((layer for layer in model.layers if layer.part == spec.part), None)
        if layer is None:
            continue
        s = np.linspace(0.25, 0.75, samples)[:, None]
        pts = model.bones.rest_parent[b] + s * (model.bones.rest_child[b] - model.bones.rest_parent[b])
        tri, bary = _barycentric(layer, pts)
        keep = tri >= 0
        if keep.sum() < 2:
            continue
        moved = deform(layer.mesh.vertices, layer.skin, tf)
        corners = moved[layer.mesh.triangles[tri[keep]]]  # (n, 3, 2)
        deformed = np.einsum("nk,nki->ni", bary[keep], corners)
        centred = deformed - deformed.mean(axis=0)
        direction = np.linalg.svd(centred, full_matrices=False)[2][0]
        want = target[spec.child] - target[spec.parent]
        if float(direction @ want) < 0:
            direction = -direction
        ang = np.degrees(np.arctan2(direction[1], direction[0]) - np.arctan2(want[1], want[0]))
        errors[spec.name] = float(abs((ang + 180.0) % 360.0 - 180.0))
    return errors
