"""Facial animation as local texture-space warps: eye blinks and an opening jaw.

The character's face landmarks (MediaPipe's 468-point mesh on the character image, ``CharacterRig.face``)
fix an eye region per eye and a mouth region. Per frame the retargeted ``FaceExpression`` sets how far
each eye closes and how far the jaw drops; the rasteriser's fragment shader then remaps the torso layer's
texture coordinates inside those regions only (see ``services/render/raster.py``). Because the warp is in
texture space it rides on the skinned mesh, so the face keeps following the head, which the neck bone
already turns about the base of the neck (its target is the nose, so a head roll rotates the face).

* Blink: each eye region is squashed vertically toward its centre line by ``1 - closure``; the band the
  eye no longer covers shows the skin just above the eye (the eyelid coming down).
* Jaw: below the mouth line, the lower lip and chin are shifted down by up to ``JAW_DROP`` of the mouth ->
  chin distance (an elliptical profile across the mouth, fading out below the chin into the neck), and
  the gap that opens is filled with a dark mouth-interior colour.

Both are exact identities at a neutral expression (the shader skips them), so a face that cannot be
animated (no landmarks, or too small in the output) renders exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from motion.skeleton import SkeletonFrame

# Eyes narrower than this in the output are not animated: a blink would be a few smeared pixels.
MIN_EYE_WIDTH_PX = 6.0
# How far a wide-open jaw drops the chin, as a fraction of the mouth line -> chin distance.
JAW_DROP = 0.3
# Performers' lips rest slightly apart: openings below this (FaceExpression.jaw_open units) stay shut.
JAW_DEADZONE = 0.1
# An eye reads fully open from this openness up (the pose pipeline's open eyes score ~0.7-1.0).
EYE_OPEN_FULL = 0.7
# Mouth interior colour (linear 0..1 RGB, premultiplied with alpha 1).
MOUTH_RGB = (0.16, 0.05, 0.06)

# MediaPipe face mesh indices (the subject's own sides).
RIGHT_EYE = (33, 133, 159, 145)  # outer corner, inner corner, upper lid, lower lid
LEFT_EYE = (263, 362, 386, 374)
MOUTH_CORNERS = (61, 291)
INNER_LIPS = (13, 14)  # upper, lower
CHIN = 152
N_FACE = 468


@dataclass(frozen=True)
class EyeRegion:
    centre_px: tuple[float, float]  # texture (character image) pixels
    axis: tuple[float, float]  # unit vector along the eye (corner to corner)
    half_width_px: float  # region half width along the axis
    half_height_px: float  # region half height across it


@dataclass(frozen=True)
class MouthRegion:
    centre_px: tuple[float, float]  # middle of the closed mouth line
    axis: tuple[float, float]  # unit vector corner to corner; its perpendicular (x, y) -> (-y, x) points to the chin
    half_width_px: float
    chin_px: float  # distance from the mouth line to the chin along the perpendicular


@dataclass(frozen=True)
class FaceRig:
    """Face regions of a character (texture pixels); ``left``/``right`` are the character's anatomical eyes."""

    left_eye: EyeRegion
    right_eye: EyeRegion
    mouth: MouthRegion


@dataclass(frozen=True)
class FacePose:
    """One frame's face warp amounts."""

    left_closure: float = 0.0  # 0 open .. 1 shut
    right_closure: float = 0.0
    jaw_drop_px: float = 0.0  # texture pixels the chin moves down at the mouth's middle

    @property
    def neutral(self) -> bool:
        return self.left_closure <= 1e-3 and self.right_closure <= 1e-3 and self.jaw_drop_px <= 1e-2


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.hypot(*v))
    return v / n if n > 1e-9 else np.array([1.0, 0.0])


def _eye(p: np.ndarray, idx: tuple[int, int, int, int]) -> EyeRegion:
    outer, inner, top, bottom = (p[i] for i in idx)
    axis = _unit(inner - outer)
    # Orient every axis left-to-right in the image so its perpendicular points down (towards the chin).
    if axis[0] < 0:
        axis = -axis
    half_w = 0.5 * float(np.hypot(*(inner - outer)))
    half_h = 0.5 * float(np.hypot(*(top - bottom)))
    centre = (outer + inner + top + bottom) / 4.0
    # The drawn eye (lids, lashes) reaches past the landmarks' opening: grow the region to cover it.
    return EyeRegion((float(centre[0]), float(centre[1])), (float(axis[0]), float(axis[1])),
                     1.25 * half_w, max(1.6 * half_h, 0.45 * half_w))


def face_rig(face_landmarks: np.ndarray | None, scale: float = 1.0) -> FaceRig | None:
    """The face regions from the character's face mesh, or None when there is no face or its eyes would be
    narrower than ``MIN_EYE_WIDTH_PX`` at output ``scale`` (output pixels per texture pixel)."""
    if face_landmarks is None or len(face_landmarks) < N_FACE:
        return None
    p = np.asarray(face_landmarks, dtype=np.float64)[:, :2]
    if not np.all(np.isfinite(p)):
        return None
    eye_w = min(float(np.hypot(*(p[RIGHT_EYE[1]] - p[RIGHT_EYE[0]]))),
                float(np.hypot(*(p[LEFT_EYE[1]] - p[LEFT_EYE[0]]))))
    if eye_w * scale < MIN_EYE_WIDTH_PX:
        return None
    lc, rc = p[MOUTH_CORNERS[0]], p[MOUTH_CORNERS[1]]
    axis = _unit(rc - lc)
    if axis[0] < 0:
        axis = -axis
    down = np.array([-axis[1], axis[0]])
    centre = (p[INNER_LIPS[0]] + p[INNER_LIPS[1]]) / 2.0
    chin = float((p[CHIN] - centre) @ down)
    half_w = 0.5 * float(np.hypot(*(rc - lc)))
    if chin <= 1.0 or half_w <= 1.0:
        return None
    mouth = MouthRegion((float(centre[0]), float(centre[1])), (float(axis[0]), float(axis[1])), half_w, chin)
    return FaceRig(left_eye=_eye(p, LEFT_EYE), right_eye=_eye(p, RIGHT_EYE), mouth=mouth)


def face_pose(rig: FaceRig, frame: SkeletonFrame | None) -> FacePose:
    """Warp amounts for one retargeted frame (neutral without a face)."""
    if frame is None or frame.face is None or float(frame.face.score) <= 0.0:
        return FacePose()
    ex = frame.face.expression
    left, right = float(ex.left_eye_open), float(ex.right_eye_open)
    if frame.mirrored:
        # The drawing is shown mirrored about the body's axis (see skin.frame_joints): sides swap.
        left, right = right, left
    jaw = float(np.clip((float(ex.jaw_open) - JAW_DEADZONE) / (1.0 - JAW_DEADZONE), 0.0, 1.0))
    return FacePose(left_closure=float(np.clip(1.0 - left / EYE_OPEN_FULL, 0.0, 1.0)),
                    right_closure=float(np.clip(1.0 - right / EYE_OPEN_FULL, 0.0, 1.0)),
                    jaw_drop_px=jaw * JAW_DROP * rig.mouth.chin_px)


def region_boxes(rig: FaceRig, margin_px: float = 2.0) -> np.ndarray:
    """(3, 4) axis-aligned boxes (x0, y0, x1, y1, texture pixels) holding every texel the warps can change:
    the two eye ellipses and the band below the mouth line down to where the jaw shift fades out."""
    boxes = []
    for eye in (rig.left_eye, rig.right_eye):
        u = np.array(eye.axis)
        v = np.array([-u[1], u[0]])
        ext = np.abs(u) * eye.half_width_px + np.abs(v) * eye.half_height_px
        c = np.array(eye.centre_px)
        boxes.append(np.concatenate([c - ext, c + ext]))
    m = rig.mouth
    u = np.array(m.axis)
    v = np.array([-u[1], u[0]])
    c = np.array(m.centre_px)
    # The raster shader's mouth band: |s| < 1.25 half width, 0 < t < 1.6 chin (the gap is <= JAW_DROP chin).
    depth = max(1.6 * m.chin_px, JAW_DROP * m.chin_px + 0.5)
    corners = np.array([c + s * 1.25 * m.half_width_px * u + t * v for s in (-1.0, 1.0) for t in (0.0, depth)])
    boxes.append(np.concatenate([corners.min(axis=0), corners.max(axis=0)]))
    out = np.array(boxes, dtype=np.float64)
    out[:, :2] -= margin_px
    out[:, 2:] += margin_px
    return out


def triangles_in_boxes(points_px: np.ndarray, triangles: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Boolean mask of the triangles whose bounding box meets any of ``boxes`` (x0, y0, x1, y1)."""
    if not len(triangles):
        return np.zeros(0, dtype=bool)
    tri = np.asarray(points_px, dtype=np.float64)[np.asarray(triangles)]  # (T, 3, 2)
    lo, hi = tri.min(axis=1), tri.max(axis=1)
    hit = np.zeros(len(tri), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        hit |= (lo[:, 0] <= x1) & (hi[:, 0] >= x0) & (lo[:, 1] <= y1) & (hi[:, 1] >= y0)
    return hit


def shader_uniforms(rig: FaceRig, pose: FacePose) -> dict[str, tuple[float, ...]]:
    """Uniform values for the rasteriser's face warp (texture pixels)."""
    out: dict[str, tuple[float, ...]] = {}
    for name, eye, closure in (("u_eye0", rig.left_eye, pose.left_closure),
                               ("u_eye1", rig.right_eye, pose.right_closure)):
        out[name + "_a"] = (*eye.centre_px, *eye.axis)
        out[name + "_b"] = (eye.half_width_px, eye.half_height_px, float(closure), 0.0)
    m = rig.mouth
    out["u_mouth_a"] = (*m.centre_px, *m.axis)
    out["u_mouth_b"] = (m.half_width_px, m.chin_px, float(pose.jaw_drop_px), 0.0)
    return out
