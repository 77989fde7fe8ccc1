"""Synthetic performers: a rigid stick person in world metres, projected orthographically into video pixels."""

from __future__ import annotations

import math

import numpy as np

from motion.skeleton import (
    N_BODY,
    N_HAND,
    BodyLandmark,
    Face,
    FaceExpression,
    Hand,
    SkeletonFrame,
    SkeletonSequence,
)

B = BodyLandmark
# A person facing the camera (MediaPipe world axes: x image-right, y down, z away from the camera),
# hip centre at the origin; the anatomical left side is at +x.
REST: dict[int, tuple[float, float, float]] = {
    B.NOSE: (0.0, -0.72, -0.06), B.LEFT_EYE_INNER: (0.015, -0.75, -0.05), B.LEFT_EYE: (0.03, -0.75, -0.05),
    B.LEFT_EYE_OUTER: (0.045, -0.75, -0.05), B.RIGHT_EYE_INNER: (-0.015, -0.75, -0.05),
    B.RIGHT_EYE: (-0.03, -0.75, -0.05), B.RIGHT_EYE_OUTER: (-0.045, -0.75, -0.05), B.LEFT_EAR: (0.07, -0.74, 0.0),
    B.RIGHT_EAR: (-0.07, -0.74, 0.0), B.MOUTH_LEFT: (0.02, -0.69, -0.05), B.MOUTH_RIGHT: (-0.02, -0.69, -0.05),
    B.LEFT_SHOULDER: (0.18, -0.5, 0.0), B.RIGHT_SHOULDER: (-0.18, -0.5, 0.0),
    B.LEFT_ELBOW: (0.22, -0.22, 0.0), B.RIGHT_ELBOW: (-0.22, -0.22, 0.0),
    B.LEFT_WRIST: (0.24, 0.04, 0.0), B.RIGHT_WRIST: (-0.24, 0.04, 0.0),
    B.LEFT_PINKY: (0.25, 0.11, 0.0), B.RIGHT_PINKY: (-0.25, 0.11, 0.0),
    B.LEFT_INDEX: (0.24, 0.12, 0.0), B.RIGHT_INDEX: (-0.24, 0.12, 0.0),
    B.LEFT_THUMB: (0.22, 0.09, -0.02), B.RIGHT_THUMB: (-0.22, 0.09, -0.02),
    B.LEFT_HIP: (0.1, 0.0, 0.0), B.RIGHT_HIP: (-0.1, 0.0, 0.0),
    B.LEFT_KNEE: (0.1, 0.45, 0.0), B.RIGHT_KNEE: (-0.1, 0.45, 0.0),
    B.LEFT_ANKLE: (0.1, 0.88, 0.0), B.RIGHT_ANKLE: (-0.1, 0.88, 0.0),
    B.LEFT_HEEL: (0.1, 0.93, 0.04), B.RIGHT_HEEL: (-0.1, 0.93, 0.04),
    B.LEFT_FOOT_INDEX: (0.1, 0.94, -0.12), B.RIGHT_FOOT_INDEX: (-0.1, 0.94, -0.12),
}
PX_PER_M = 400.0
WIDTH, HEIGHT = 720, 960


def rest_world() -> np.ndarray:
    w = np.zeros((N_BODY, 3))
    for i, p in REST.items():
        w[i] = p
    return w


def rotate_yaw(points: np.ndarray, yaw_deg: float) -> np.ndarray:
    """Turns the person about the vertical axis; yaw 180 = facing away (left shoulder at -x)."""
    a = math.radians(yaw_deg)
    out = points.copy()
    out[:, 0] = points[:, 0] * math.cos(a) - points[:, 2] * math.sin(a)
    out[:, 2] = points[:, 0] * math.sin(a) + points[:, 2] * math.cos(a)
    return out


def make_frame(index: int, fps: float, world: np.ndarray, hip_px: tuple[float, float],
               hands: bool = False, face: bool = False) -> SkeletonFrame:
    body = np.zeros((N_BODY, 5), dtype=np.float32)
    body[:, 0] = hip_px[0] + world[:, 0] * PX_PER_M
    body[:, 1] = hip_px[1] + world[:, 1] * PX_PER_M
    body[:, 2] = world[:, 2] * PX_PER_M
    body[:, 3:] = 0.99
    wl = np.zeros((N_BODY, 5), dtype=np.float32)
    wl[:, :3] = world
    wl[:, 3:] = 0.99
    f = SkeletonFrame(index=index, timestamp_s=index / fps, present=True, body=body, world=wl, score=0.95)
    if hands:
        for side, wi in (("left", B.LEFT_WRIST), ("right", B.RIGHT_WRIST)):
            lm = np.zeros((N_HAND, 5), dtype=np.float32)
            sign = 1.0 if side == "left" else -1.0
            for k in range(N_HAND):
                finger, joint = divmod(max(k - 1, 0), 4)
                lm[k, 0] = body[wi, 0] + sign * (finger - 2) * 6.0
                lm[k, 1] = body[wi, 1] + (0 if k == 0 else 10.0 + 8.0 * joint)
            lm[:, 3:] = 0.9
            hw = lm.copy()
            hw[:, :3] = (lm[:, :3] - lm[0, :3]) / PX_PER_M
            hand = Hand(landmarks=lm, handedness=side, score=0.9, world=hw)
            if side == "left":
                f.left_hand = hand
            else:
                f.right_hand = hand
    if face:
        lm = np.zeros((468, 5), dtype=np.float32)
        ang = np.linspace(0, 2 * np.pi, 468, endpoint=False)
        lm[:, 0] = body[B.NOSE, 0] + 30 * np.cos(ang)
        lm[:, 1] = body[B.NOSE, 1] + 38 * np.sin(ang)
        lm[:, 3:] = 1.0
        f.face = Face(landmarks=lm, score=0.9, expression=FaceExpression(jaw_open=0.4, left_eye_open=0.2,
                                                                        right_eye_open=0.9, head_yaw_deg=12.0))
    return f


def make_sequence(n_frames: int, fps: float = 30.0, yaw_deg=None, arm_swing: bool = True,
                  walk: bool = False, hands: bool = False, face: bool = False,
                  jitter_px: float = 0.0, seed: int = 0) -> SkeletonSequence:
    """A performer waving the arms (and optionally stepping in place with foot slide noise)."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n_frames):
        t = i / fps
        w = rest_world()
        if arm_swing:
            for sh, el, wr, sign in ((B.LEFT_SHOULDER, B.LEFT_ELBOW, B.LEFT_WRIST, 1),
                                     (B.RIGHT_SHOULDER, B.RIGHT_ELBOW, B.RIGHT_WRIST, -1)):
                a = 0.8 * math.sin(2 * math.pi * 0.5 * t)
                for j in (el, wr, wr + 2, wr + 4, wr + 6):
                    rel = w[j] - w[sh]
                    c, s = math.cos(sign * a), math.sin(sign * a)
                    # Raise the arm sideways and swing it forward (out of the image plane).
                    w[j] = w[sh] + np.array([rel[0] * c - rel[1] * s, rel[0] * s + rel[1] * c,
                                             -0.3 * abs(rel[1]) * math.sin(2 * math.pi * 0.25 * t)])
        if walk:
            # Alternate lifting each knee: a foot on the ground stays still, the other swings.
            phase = (t * 1.0) % 1.0
            lift = 0.15 * math.sin(2 * math.pi * phase) if phase < 0.5 else 0.0
            lift_r = 0.15 * math.sin(2 * math.pi * (phase - 0.5)) if phase >= 0.5 else 0.0
            for side_j, amount, sign in (((B.LEFT_KNEE, B.LEFT_ANKLE, B.LEFT_HEEL, B.LEFT_FOOT_INDEX), lift, 1),
                                         ((B.RIGHT_KNEE, B.RIGHT_ANKLE, B.RIGHT_HEEL, B.RIGHT_FOOT_INDEX), lift_r, -1)):
                # The knee swings out sideways (in the image plane) and the foot rises.
                w[side_j[0], 0] += sign * amount * 1.2
                w[side_j[0], 1] -= amount * 0.8
                for j in side_j[1:]:
                    w[j, 0] += sign * amount * 1.0
                    w[j, 1] -= amount * 1.5
        yaw = yaw_deg(t) if callable(yaw_deg) else float(yaw_deg or 0.0)
        w = rotate_yaw(w, yaw)
        hip = (WIDTH / 2 + 20 * math.sin(2 * math.pi * 0.2 * t), HEIGHT * 0.45)
        if jitter_px:
            w = w + rng.normal(0, jitter_px / PX_PER_M, w.shape)
        frames.append(make_frame(i, fps, w, hip, hands=hands, face=face))
    return SkeletonSequence(fps=fps, width=WIDTH, height=HEIGHT, frames=frames, source_sha256="0" * 64,
                            source_duration_s=n_frames / fps)
