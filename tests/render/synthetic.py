"""A synthetic character drawn in code (thick coloured limbs on a gradient), with exact joints and mask."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np

from motion.rig import CharacterRig, add_derived_joints, build_bones
from motion.skeleton import N_BODY, BodyLandmark, SkeletonFrame, SkeletonSequence

W_PX, H_PX = 240, 360

JOINTS: dict[str, tuple[float, float]] = {
    "nose": (120, 50), "left_eye": (128, 44), "right_eye": (112, 44),
    "left_shoulder": (150, 95), "right_shoulder": (90, 95),
    "left_elbow": (172, 150), "right_elbow": (68, 150),
    "left_wrist": (182, 200), "right_wrist": (58, 200),
    "left_index": (186, 218), "right_index": (54, 218), "left_pinky": (180, 220), "right_pinky": (60, 220),
    "left_hip": (137, 195), "right_hip": (103, 195),
    "left_knee": (142, 265), "right_knee": (98, 265),
    "left_ankle": (145, 330), "right_ankle": (95, 330),
    "left_foot_index": (160, 340), "right_foot_index": (80, 340),
}

LIMBS = (("left_shoulder", "left_elbow", (200, 60, 60), 11), ("left_elbow", "left_wrist", (220, 120, 60), 9),
         ("right_shoulder", "right_elbow", (60, 60, 200), 11), ("right_elbow", "right_wrist", (60, 140, 220), 9),
         ("left_hip", "left_knee", (60, 160, 60), 14), ("left_knee", "left_ankle", (90, 200, 90), 11),
         ("right_hip", "right_knee", (150, 60, 160), 14), ("right_knee", "right_ankle", (190, 110, 200), 11),
         ("left_wrist", "left_index", (240, 200, 160), 7), ("right_wrist", "right_index", (240, 200, 160), 7),
         ("left_ankle", "left_foot_index", (80, 80, 80), 7), ("right_ankle", "right_foot_index", (80, 80, 80), 7))


def _p(name: str) -> tuple[int, int]:
    x, y = JOINTS[name]
    return int(round(x)), int(round(y))


def make_character() -> CharacterRig:
    yy, xx = np.mgrid[0:H_PX, 0:W_PX]
    bg = np.stack([40 + 80 * yy / H_PX, 90 + 60 * xx / W_PX, np.full_like(xx, 150.0)], -1).astype(np.uint8)
    fg = np.zeros((H_PX, W_PX, 3), np.uint8)
    mask = np.zeros((H_PX, W_PX), np.uint8)
    torso = np.array([_p("left_shoulder"), _p("right_shoulder"), _p("right_hip"), _p("left_hip")], np.int32)
    for target, val in ((fg, (230, 210, 70)), (mask, 255)):
        cv2.fillConvexPoly(target, torso, val, lineType=cv2.LINE_8)
        cv2.circle(target, (120, 48), 24, (240, 190, 150) if target is fg else 255, -1)
        cv2.line(target, (120, 70), (120, 95), (240, 190, 150) if target is fg else 255, 16)
    # Stripes on the torso make texture swimming visible.
    for y in range(100, 195, 12):
        stripe = mask[y:y + 4] > 0
        fg[y:y + 4][stripe] = (200, 80, 40)
    for a, b, colour, thick in LIMBS:
        cv2.line(fg, _p(a), _p(b), colour, thick * 2)
        cv2.line(mask, _p(a), _p(b), 255, thick * 2)
    cv2.circle(fg, (112, 44), 3, (20, 20, 20), -1)
    cv2.circle(fg, (128, 44), 3, (20, 20, 20), -1)
    texture = np.zeros((H_PX, W_PX, 4), np.uint8)
    texture[..., :3] = np.where(mask[..., None] > 0, fg, 0)
    texture[..., 3] = mask
    joints = add_derived_joints(JOINTS)
    return CharacterRig(image_sha256=hashlib.sha256(texture.tobytes()).hexdigest(), width=W_PX, height=H_PX,
                        joints=joints, bones=build_bones(joints), mask=mask, texture_rgba=texture,
                        background_rgb=bg, height_px=310.0, mask_source="override")


def _rotate(p: np.ndarray, c: np.ndarray, deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return c + (p - c) @ r.T


def posed_frame(index: int, fps: float, left_arm_deg: float, left_elbow_deg: float, right_arm_deg: float,
                right_knee_deg: float = 0.0, left_arm_z_m: float = -0.1) -> SkeletonFrame:
    """A frame of the character's own skeleton with limbs rotated (degrees, image y down)."""
    body = np.zeros((N_BODY, 5), np.float32)
    world = np.zeros((N_BODY, 5), np.float32)
    pts = {k: np.asarray(v, np.float64) for k, v in JOINTS.items()}
    sh = pts["left_shoulder"]
    for n in ("left_elbow", "left_wrist", "left_index", "left_pinky"):
        pts[n] = _rotate(pts[n], sh, left_arm_deg)
    el = pts["left_elbow"]
    for n in ("left_wrist", "left_index", "left_pinky"):
        pts[n] = _rotate(pts[n], el, left_elbow_deg)
    for n in ("right_elbow", "right_wrist", "right_index", "right_pinky"):
        pts[n] = _rotate(pts[n], pts["right_shoulder"], right_arm_deg)
    for n in ("right_ankle", "right_foot_index"):
        pts[n] = _rotate(pts[n], pts["right_knee"], right_knee_deg)
    for lm in BodyLandmark:
        name = lm.name.lower()
        if name in pts:
            body[int(lm), :2] = pts[name]
        else:
            body[int(lm), :2] = pts["nose"]
        body[int(lm), 3:] = 1.0
    world[:, 3:] = 1.0
    for n in ("left_elbow", "left_wrist"):
        world[int(BodyLandmark[n.upper()]), 2] = left_arm_z_m
    return SkeletonFrame(index=index, timestamp_s=index / fps, present=True, body=body, world=world, score=1.0)


def wave_sequence(n_frames: int = 12, fps: float = 12.0, behind_from: int | None = None) -> SkeletonSequence:
    """The left arm lifts and waves, the right arm swings, the right knee bends."""
    frames = []
    for i in range(n_frames):
        t = i / max(n_frames - 1, 1)
        z = 0.3 if behind_from is not None and i >= behind_from else -0.1
        frames.append(posed_frame(i, fps, left_arm_deg=-120 * t, left_elbow_deg=-60 * np.sin(np.pi * t),
                                  right_arm_deg=40 * np.sin(2 * np.pi * t), right_knee_deg=-50 * t,
                                  left_arm_z_m=z))
    return SkeletonSequence(fps=fps, width=W_PX, height=H_PX, frames=frames, space="character_pixels")
