"""Finger articulation: finger bones from the character's hand landmarks, driven by the retargeted hands.

Each finger is a chain of three bones (MCP -> PIP -> DIP -> tip; the thumb CMC -> MCP -> IP -> tip). A
bone's bend is its direction relative to the bone before it (the first bone: relative to the palm axis,
wrist -> middle-finger MCP), so it does not depend on how the whole hand is turned — the hand bone of the
body skin already turns the hand. Per frame the bends of the retargeted hand replace the character's
rest bends: the hand's vertices are moved *in rest space* (forward kinematics down each finger) before the
body skin deforms them, so the rigid hand transform then carries the bent fingers along.

Only vertices of the hand's own arm layer near a finger move (skinning limited to the hand region), and
only when the hand is big enough in the output (``MIN_HAND_LENGTH_PX``) and drawn open (curled fingers
cannot be unbent from a flat texture); otherwise the hand stays rigid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from motion.skeleton import SkeletonFrame

# Hands shorter than this in the output (wrist -> middle fingertip) keep the rigid hand.
MIN_HAND_LENGTH_PX = 40.0
# Bends further than this from the rest pose are clamped per joint (a mis-detected landmark must not fold a
# finger back; a flat texture cannot show a finger curled under the palm anyway, larger bends tore the
# skin between neighbouring fingers into spikes on real photos).
MAX_BEND_RAD = np.radians(35.0)
# Skin blends between a finger bone and its parent over this fraction of the bone's length at the joint.
JOINT_BLEND = 0.25
MIN_HAND_SCORE = 0.3
# Only an open drawn hand can be articulated: curled fingers overlap the palm in the image, and moving
# them stretched the palm's texture into spikes (moore_aa__anyone-11's relaxed hands, rest bends mean
# 23.8 / max 36.3 degrees). Limits on the character's rest bends of the four fingers' middle and end joints:
MAX_REST_MEAN_BEND_RAD = np.radians(15.0)
MAX_REST_BEND_RAD = np.radians(30.0)

FINGERS: tuple[tuple[int, int, int, int], ...] = (
    (1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (17, 18, 19, 20))
PALM = (0, 1, 5, 9, 13, 17)


def _angle(v: np.ndarray) -> float:
    return float(np.arctan2(v[1], v[0]))


def _wrap(a: np.ndarray) -> np.ndarray:
    return (a + np.pi) % (2 * np.pi) - np.pi


def _handedness_sign(p: np.ndarray) -> float:
    """+1/-1: which way round the fingers run (palm or back of the hand towards the viewer)."""
    a, b = p[5] - p[0], p[17] - p[0]
    return 1.0 if float(a[0] * b[1] - a[1] * b[0]) >= 0 else -1.0


def bend_angles(points: np.ndarray) -> np.ndarray:
    """(5, 3) bend of each finger bone relative to its parent (radians, the first bone relative to the palm
    axis), from 21 hand landmarks (x, y ...), in the hand's own handedness (mirror views flip the sign)."""
    p = np.asarray(points, dtype=np.float64)[:, :2]
    palm = _angle(p[9] - p[0])
    out = np.zeros((5, 3))
    for f, chain in enumerate(FINGERS):
        prev = palm
        for k in range(3):
            a = _angle(p[chain[k + 1]] - p[chain[k]])
            out[f, k] = a - prev
            prev = a
    return np.asarray(_wrap(out) * _handedness_sign(p))


@dataclass
class HandRig:
    """One character hand: rest landmarks, rest bends and the hand-layer vertices each finger bone owns."""

    side: str  # the character's anatomical side ("left" | "right")
    rest: np.ndarray  # (21, 2) texture pixels
    rest_bends: np.ndarray  # (5, 3)
    vertex_index: np.ndarray  # (M,) indices into the renderer's stacked vertices
    bone: np.ndarray  # (M,) finger*3 + k of the owning bone
    blend: np.ndarray  # (M,) weight of the owning bone (the rest goes to its parent bone / the palm)


def _segment_param(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ab = b - a
    length2 = max(float(ab @ ab), 1e-12)
    t = ((points - a) @ ab) / length2
    closest = a + np.clip(t, 0.0, 1.0)[:, None] * ab
    return t, np.hypot(*(points - closest).T)


def hand_rig(side: str, landmarks: np.ndarray | None, vertices: np.ndarray, candidates: np.ndarray,
             scale: float = 1.0) -> HandRig | None:
    """The finger bones of one hand, or None without landmarks or when the hand is too small in the output.

    ``vertices`` are the renderer's stacked rest vertices; ``candidates`` the indices of the hand's arm layer.
    """
    if landmarks is None or len(landmarks) < 21:
        return None
    p = np.asarray(landmarks, dtype=np.float64)[:, :2]
    if not np.all(np.isfinite(p)):
        return None
    length = float(np.hypot(*(p[12] - p[0])))
    if length * scale < MIN_HAND_LENGTH_PX:
        return None
    rest_bends = bend_angles(p)
    curl = np.abs(rest_bends[1:, 1:])
    if float(curl.mean()) > MAX_REST_MEAN_BEND_RAD or float(curl.max()) > MAX_REST_BEND_RAD:
        return None
    pts = vertices[candidates]
    # Finger width ~ a fifth of the palm's width (index MCP -> pinky MCP spans four fingers).
    radius = max(0.45 * float(np.hypot(*(p[17] - p[5]))), 2.0)
    n = len(pts)
    best_d = np.full(n, np.inf)
    best_bone = np.full(n, -1)
    best_t = np.zeros(n)
    for f, chain in enumerate(FINGERS):
        for k in range(3):
            t, d = _segment_param(pts, p[chain[k]], p[chain[k + 1]])
            # Past the fingertip the last bone keeps owning (drawn nails, a fingertip beyond the landmark).
            if k < 2:
                d = np.where(t > 1.0, np.inf, d)
            closer = d < best_d
            best_d[closer], best_bone[closer], best_t[closer] = d[closer], f * 3 + k, t[closer]
    # The palm (its polygon and the rest of the arm layer) keeps the rigid hand.
    _, palm_d = _palm_distance(pts, p)
    own = (best_d <= radius) & (best_d < palm_d + 0.5 * radius) & (best_t > -JOINT_BLEND)
    blend = np.clip((best_t + JOINT_BLEND) / (2 * JOINT_BLEND), 0.0, 1.0)
    return HandRig(side, p, rest_bends, candidates[own], best_bone[own], blend[own])


def _palm_distance(points: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    poly = p[list(PALM)]
    inside = np.ones(len(points), dtype=bool)
    sign = _handedness_sign(p)
    d = np.full(len(points), np.inf)
    for i in range(len(poly)):
        a, b = poly[i], poly[(i + 1) % len(poly)]
        e = b - a
        cross = e[0] * (points[:, 1] - a[1]) - e[1] * (points[:, 0] - a[0])
        inside &= cross * sign >= 0
        d = np.minimum(d, _segment_param(points, a, b)[1])
    return inside, np.where(inside, 0.0, d)


def target_hand(frame: SkeletonFrame | None, side: str) -> np.ndarray | None:
    """The retargeted landmarks (21, 2) driving the character's ``side`` hand this frame, or None."""
    if frame is None:
        return None
    if frame.mirrored:
        # The drawing is mirrored about the body's axis (skin.frame_joints): each side follows the other.
        side = "right" if side == "left" else "left"
    hand = frame.left_hand if side == "left" else frame.right_hand
    if hand is None or hand.landmarks is None or float(hand.score) < MIN_HAND_SCORE:
        return None
    lm = np.asarray(hand.landmarks, dtype=np.float64)
    if lm.shape[0] < 21 or not np.all(np.isfinite(lm[:, :2])):
        return None
    return lm[:, :2]


def _bend_delta(hand: HandRig, target: np.ndarray) -> np.ndarray:
    return np.clip(_wrap(bend_angles(target) - hand.rest_bends), -MAX_BEND_RAD, MAX_BEND_RAD)


def posed_rest_hand(hand: HandRig, target: np.ndarray, delta: np.ndarray | None = None) -> np.ndarray:
    """(21, 2) rest-space hand landmarks with the target's finger bends (palm unchanged); ``delta``: the
    target's bends relative to the rest bends, when the caller has them already."""
    if delta is None:
        delta = _bend_delta(hand, target)
    out = hand.rest.copy()
    for f, chain in enumerate(FINGERS):
        turn = 0.0
        for k in range(3):
            turn += float(delta[f, k])
            a, b = hand.rest[chain[k]], hand.rest[chain[k + 1]]
            c, s = np.cos(turn), np.sin(turn)
            d = b - a
            out[chain[k + 1]] = out[chain[k]] + np.array([c * d[0] - s * d[1], s * d[0] + c * d[1]])
    return out


def articulate(rest_vertices: np.ndarray, hand: HandRig, target: np.ndarray) -> np.ndarray:
    """Rest vertices with the hand's fingers bent to the target's bends (a new array; others unchanged)."""
    delta = _bend_delta(hand, target)
    if not np.any(np.abs(delta) > 1e-4):
        return rest_vertices
    posed = posed_rest_hand(hand, target, delta)
    # Per bone: rotation by the accumulated bend about the bone's start, moved to the posed start.
    n_b = 15
    rot = np.zeros(n_b)
    src = np.zeros((n_b, 2))
    dst = np.zeros((n_b, 2))
    for f, chain in enumerate(FINGERS):
        turn = 0.0
        for k in range(3):
            turn += float(delta[f, k])
            rot[f * 3 + k] = turn
            src[f * 3 + k] = hand.rest[chain[k]]
            dst[f * 3 + k] = posed[chain[k]]

    def apply(bone: np.ndarray, pts: np.ndarray) -> np.ndarray:
        c, s = np.cos(rot[bone]), np.sin(rot[bone])
        rel = pts - src[bone]
        return dst[bone] + np.stack([c * rel[:, 0] - s * rel[:, 1], s * rel[:, 0] + c * rel[:, 1]], axis=1)

    pts = rest_vertices[hand.vertex_index]
    own = apply(hand.bone, pts)
    # The parent of a finger's first bone is the palm (identity); of the others, the previous bone.
    first = hand.bone % 3 == 0
    parent = np.where(first, hand.bone, hand.bone - 1)
    par = np.where(first[:, None], pts, apply(parent, pts))
    w = hand.blend[:, None]
    out = rest_vertices.copy()
    out[hand.vertex_index] = w * own + (1.0 - w) * par
    return out
