"""A 3D mannequin driven by smooth functions of time: the ground truth of the sample performer.

World frame (metres): x to the camera's right, y up, z towards the camera; the floor is y = 0.
A performer facing the camera has their anatomical left at +x (the image right), as BlazePose expects.
Every limb is placed by forward kinematics or two-bone IK with fixed lengths, so bone lengths are
constant across frames by construction (a test checks it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from motion.skeleton import N_BODY, BodyLandmark

B = BodyLandmark

# How each of the 33 BlazePose landmarks is defined on the mannequin (written into the ground truth).
LANDMARK_DEFINITIONS: dict[str, str] = {
    "nose": "tip of the nose",
    "left_eye_inner": "inner corner of the left eye",
    "left_eye": "centre of the left eye (pupil)",
    "left_eye_outer": "outer corner of the left eye",
    "right_eye_inner": "inner corner of the right eye",
    "right_eye": "centre of the right eye (pupil)",
    "right_eye_outer": "outer corner of the right eye",
    "left_ear": "centre of the left ear (tragus level)",
    "right_ear": "centre of the right ear (tragus level)",
    "mouth_left": "left corner of the mouth",
    "mouth_right": "right corner of the mouth",
    "left_shoulder": "left glenohumeral joint centre (inside the deltoid)",
    "right_shoulder": "right glenohumeral joint centre (inside the deltoid)",
    "left_elbow": "left elbow joint centre",
    "right_elbow": "right elbow joint centre",
    "left_wrist": "left wrist joint centre",
    "right_wrist": "right wrist joint centre",
    "left_pinky": "left little-finger knuckle (MCP joint)",
    "right_pinky": "right little-finger knuckle (MCP joint)",
    "left_index": "left index-finger knuckle (MCP joint)",
    "right_index": "right index-finger knuckle (MCP joint)",
    "left_thumb": "left thumb second knuckle (IP joint)",
    "right_thumb": "right thumb second knuckle (IP joint)",
    "left_hip": "left hip joint centre (femoral head), like BlazePose's",
    "right_hip": "right hip joint centre (femoral head), like BlazePose's",
    "left_knee": "left knee joint centre",
    "right_knee": "right knee joint centre",
    "left_ankle": "left ankle joint centre",
    "right_ankle": "right ankle joint centre",
    "left_heel": "back of the left heel, near the sole",
    "right_heel": "back of the right heel, near the sole",
    "left_foot_index": "tip of the left shoe (big-toe end)",
    "right_foot_index": "tip of the right shoe (big-toe end)",
}


@dataclass(frozen=True)
class BodyDimensions:
    """An adult of about 1.75 m; lengths in metres."""

    hip_half_width_m: float = 0.095
    shoulder_half_width_m: float = 0.185
    spine_m: float = 0.50  # hip centre -> shoulder centre
    neck_to_head_centre_m: float = 0.195  # shoulder centre -> head centre (eye level)
    upper_arm_m: float = 0.29
    forearm_m: float = 0.25
    thigh_m: float = 0.44
    shin_m: float = 0.42
    ankle_height_m: float = 0.08
    head_scale: float = 1.0

    @property
    def bone_lengths(self) -> dict[tuple[int, int], float]:
        """The bones whose lengths are fixed by construction."""
        return {
            (B.LEFT_SHOULDER, B.LEFT_ELBOW): self.upper_arm_m,
            (B.RIGHT_SHOULDER, B.RIGHT_ELBOW): self.upper_arm_m,
            (B.LEFT_ELBOW, B.LEFT_WRIST): self.forearm_m,
            (B.RIGHT_ELBOW, B.RIGHT_WRIST): self.forearm_m,
            (B.LEFT_HIP, B.LEFT_KNEE): self.thigh_m,
            (B.RIGHT_HIP, B.RIGHT_KNEE): self.thigh_m,
            (B.LEFT_KNEE, B.LEFT_ANKLE): self.shin_m,
            (B.RIGHT_KNEE, B.RIGHT_ANKLE): self.shin_m,
            (B.LEFT_SHOULDER, B.RIGHT_SHOULDER): 2 * self.shoulder_half_width_m,
            (B.LEFT_HIP, B.RIGHT_HIP): 2 * self.hip_half_width_m,
        }


def rot_y(angle_rad: float) -> np.ndarray:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    # Positive angles turn the performer's face from +z towards +x (towards their own left... seen
    # from the camera, to the image right).
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_x(angle_rad: float) -> np.ndarray:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_z(angle_rad: float) -> np.ndarray:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 else v


def smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


def two_bone_ik(root: np.ndarray, target: np.ndarray, len_a: float, len_b: float,
                pole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Middle joint and end joint reaching towards ``target``; the end is pulled in when out of reach."""
    d = target - root
    dist = float(np.linalg.norm(d))
    u = d / dist if dist > 1e-9 else np.array([0.0, -1.0, 0.0])
    dist = min(max(dist, abs(len_a - len_b) + 1e-3), (len_a + len_b) * 0.999)
    a = (len_a * len_a - len_b * len_b + dist * dist) / (2.0 * dist)
    h = math.sqrt(max(len_a * len_a - a * a, 0.0))
    v = _unit(pole - float(np.dot(pole, u)) * u)
    mid = root + a * u + h * v
    end = root + dist * u
    return mid, end


def head_landmarks(centre: np.ndarray, rot: np.ndarray, scale: float) -> dict[int, np.ndarray]:
    """Face points in a head frame (x = the head's left, y up, z the way the face looks)."""
    local = {
        B.NOSE: (0.0, -0.030, 0.112),
        B.LEFT_EYE_INNER: (0.016, 0.0, 0.084),
        B.LEFT_EYE: (0.033, 0.0, 0.083),
        B.LEFT_EYE_OUTER: (0.049, 0.0, 0.074),
        B.RIGHT_EYE_INNER: (-0.016, 0.0, 0.084),
        B.RIGHT_EYE: (-0.033, 0.0, 0.083),
        B.RIGHT_EYE_OUTER: (-0.049, 0.0, 0.074),
        B.LEFT_EAR: (0.080, -0.012, -0.005),
        B.RIGHT_EAR: (-0.080, -0.012, -0.005),
        B.MOUTH_LEFT: (0.024, -0.062, 0.086),
        B.MOUTH_RIGHT: (-0.024, -0.062, 0.086),
    }
    return {k: centre + scale * (rot @ np.array(v)) for k, v in local.items()}


def hand_landmarks(wrist: np.ndarray, forearm_dir: np.ndarray, thumb_hint: np.ndarray,
                   side: float) -> dict[str, np.ndarray]:
    """Index/pinky knuckles and thumb from the wrist; the thumb points along ``thumb_hint``."""
    hd = _unit(forearm_dir)
    td = _unit(thumb_hint - float(np.dot(thumb_hint, hd)) * hd)
    if float(np.linalg.norm(td)) < 1e-6:
        td = _unit(np.cross(hd, np.array([0.0, 0.0, 1.0])) * side)
    return {
        "index": wrist + 0.085 * hd + 0.024 * td,
        "pinky": wrist + 0.074 * hd - 0.030 * td,
        "thumb": wrist + 0.045 * hd + 0.058 * td,
    }


# Arm key poses as (upper-arm direction, forearm direction) in the torso frame, for the LEFT arm
# (x = the performer's left); the right arm uses its own entry so crossings are not symmetric.
_ARM_KEYS: dict[str, tuple[tuple[tuple[float, float, float], ...], tuple[tuple[float, float, float], ...]]] = {
    # name: ((left upper, left fore), (right upper, right fore)) with x already in the body frame
    "relaxed": (((0.38, -0.92, 0.06), (0.30, -0.90, 0.32)), ((-0.38, -0.92, 0.06), (-0.30, -0.90, 0.32))),
    "v_up": (((0.70, 0.68, 0.12), (0.45, 0.88, 0.12)), ((-0.70, 0.68, 0.12), (-0.45, 0.88, 0.12))),
    "cross": (((-0.25, -0.45, 0.86), (-0.93, 0.22, 0.30)), ((0.25, -0.50, 0.83), (0.95, 0.12, 0.18))),
    "wide": (((1.0, -0.05, 0.08), (0.85, 0.35, 0.30)), ((-1.0, -0.05, 0.08), (-0.85, 0.35, 0.30))),
    "punch": (((0.25, 0.20, 0.95), (0.15, 0.25, 0.96)), ((-0.35, -0.90, 0.20), (-0.15, -0.55, 0.82))),
    "hips": (((0.60, -0.78, -0.18), (-0.45, -0.70, 0.25)), ((-0.60, -0.78, -0.18), (0.45, -0.70, 0.25))),
    "cross_up": (((-0.30, 0.35, 0.89), (-0.85, 0.50, 0.20)), ((0.30, 0.30, 0.90), (0.88, 0.45, 0.12))),
}
_CROSSINGS = ("cross", "cross_up")
_OTHER_KEYS = ("relaxed", "v_up", "wide", "punch", "hips")


@dataclass(frozen=True)
class DanceParams:
    """Everything about the dance that the seed changes; times in seconds, angles in degrees."""

    duration_s: float = 8.0
    sweep_amplitude_deg: float = 90.0
    sweep_period_s: float = 4.0
    sweep_phase_rad: float = 0.0
    turn_start_s: float = 4.5
    turn_duration_s: float = 1.5
    turn_direction: float = 1.0
    step_period_s: float = 1.0
    step_width_m: float = 0.22
    stance_half_width_m: float = 0.14
    lift_height_m: float = 0.12
    bounce_m: float = 0.025
    twist_amplitude_deg: float = 15.0
    arm_key_period_s: float = 1.0
    arm_keys: tuple[str, ...] = ("relaxed", "wide", "cross", "v_up", "punch", "cross_up", "hips", "relaxed")
    head_yaw_amplitude_deg: float = 20.0
    dims: BodyDimensions = field(default_factory=BodyDimensions)

    @classmethod
    def from_seed(cls, seed: int, duration_s: float = 8.0) -> DanceParams:
        rng = np.random.default_rng(seed)
        others = [str(k) for k in rng.permutation(_OTHER_KEYS)]
        # A crossing every few keys keeps arm crossings in any clip of 3 s or more.
        keys = ("relaxed", others[0], _CROSSINGS[0], others[1], others[2], _CROSSINGS[1], others[3],
                _CROSSINGS[0], others[4], "relaxed")
        turn_duration_s = float(rng.uniform(1.3, 1.7))
        return cls(
            duration_s=duration_s,
            sweep_amplitude_deg=90.0,
            sweep_period_s=float(rng.uniform(3.2, 4.2)),
            sweep_phase_rad=float(rng.uniform(-0.3, 0.3)),  # start near frontal: detectors start there
            turn_start_s=max(0.3, duration_s * float(rng.uniform(0.45, 0.6)) - turn_duration_s / 2),
            turn_duration_s=turn_duration_s,
            turn_direction=1.0 if rng.random() < 0.5 else -1.0,
            step_period_s=float(rng.uniform(0.9, 1.1)),
            step_width_m=float(rng.uniform(0.18, 0.26)),
            lift_height_m=float(rng.uniform(0.10, 0.14)),
            twist_amplitude_deg=float(rng.uniform(10.0, 20.0)),
            arm_key_period_s=float(rng.uniform(0.8, 1.0)),
            arm_keys=keys,
            head_yaw_amplitude_deg=float(rng.uniform(10.0, 25.0)),
        )


def _turn_fade(p: DanceParams, t: float) -> float:
    """0 during the full turn, 1 away from it, so the sweep and the turn do not pile up."""
    a = smoothstep((p.turn_start_s - t) / 0.5)
    b = smoothstep((t - p.turn_start_s - p.turn_duration_s) / 0.5)
    return max(a, b)


def body_yaw_deg(p: DanceParams, t: float) -> float:
    sweep = p.sweep_amplitude_deg * math.sin(2 * math.pi * t / p.sweep_period_s + p.sweep_phase_rad)
    turn = 360.0 * p.turn_direction * smoothstep((t - p.turn_start_s) / p.turn_duration_s)
    return sweep * _turn_fade(p, t) + turn


def _step_offsets(p: DanceParams, t: float) -> tuple[float, float, float, float]:
    """Sideways offsets of the left and right feet (world x) and their lift heights.

    A step-touch: left out, right closes, right out, left closes; each step lifts the moving foot.
    """
    k = math.floor(t / p.step_period_s)
    u = (t - k * p.step_period_s) / p.step_period_s
    swing = min(u / 0.6, 1.0)
    s = smoothstep(swing)
    lift = p.lift_height_m * math.sin(math.pi * swing) ** 2 if u < 0.6 else 0.0
    d = p.step_width_m
    phase = k % 4
    # Positions at the start of each step of the cycle: (left, right).
    starts = ((0.0, 0.0), (d, 0.0), (d, d), (d, 0.0))
    left, right = starts[phase]
    lift_l = lift_r = 0.0
    if phase == 0:
        left, lift_l = d * s, lift
    elif phase == 1:
        right, lift_r = d * s, lift
    elif phase == 2:
        right, lift_r = d * (1.0 - s), lift
    else:
        left, lift_l = d * (1.0 - s), lift
    return left - d / 2, right - d / 2, lift_l, lift_r


def _arm_dirs(p: DanceParams, t: float) -> tuple[np.ndarray, ...]:
    n = len(p.arm_keys)
    k = math.floor(t / p.arm_key_period_s)
    u = (t - k * p.arm_key_period_s) / p.arm_key_period_s
    # Hold each key for a moment, then move to the next.
    s = smoothstep((u - 0.25) / 0.75)
    a = _ARM_KEYS[p.arm_keys[k % n]]
    b = _ARM_KEYS[p.arm_keys[(k + 1) % n]]
    out = []
    for side in range(2):
        for seg in range(2):
            va, vb = np.array(a[side][seg]), np.array(b[side][seg])
            out.append(_unit((1 - s) * _unit(va) + s * _unit(vb)))
    return tuple(out)


def dance_pose(p: DanceParams, t: float) -> np.ndarray:
    """The 33 landmarks at time ``t`` in world metres, shape (33, 3)."""
    dims = p.dims
    out = np.zeros((N_BODY, 3))
    yaw = math.radians(body_yaw_deg(p, t))
    r_pelvis = rot_y(yaw)
    left_x, right_x, lift_l, lift_r = _step_offsets(p, t)
    root_x = (left_x + right_x) / 2
    beat = 2 * math.pi * t / (p.step_period_s / 2)
    pelvis_h = dims.thigh_m + dims.shin_m + dims.ankle_height_m - 0.045 - p.bounce_m * (0.5 - 0.5 * math.cos(beat))
    # Lean the pelvis a little over the standing leg.
    roll = math.radians(4.0) * math.sin(2 * math.pi * t / (2 * p.step_period_s))
    r_pelvis = r_pelvis @ rot_z(roll)
    pelvis = np.array([root_x, pelvis_h, 0.0])
    hip_l = pelvis + r_pelvis @ np.array([dims.hip_half_width_m, 0.0, 0.0])
    hip_r = pelvis + r_pelvis @ np.array([-dims.hip_half_width_m, 0.0, 0.0])

    fwd = r_pelvis @ np.array([0.0, 0.0, 1.0])
    foot_yaw_out = math.radians(8.0)
    spread = (left_x - right_x) / 2
    for side, hip, lift, idx in ((1.0, hip_l, lift_l, (B.LEFT_KNEE, B.LEFT_ANKLE, B.LEFT_HEEL, B.LEFT_FOOT_INDEX)),
                                 (-1.0, hip_r, lift_r, (B.RIGHT_KNEE, B.RIGHT_ANKLE, B.RIGHT_HEEL,
                                                        B.RIGHT_FOOT_INDEX))):
        ground = np.array([root_x, 0.0, 0.0]) + rot_y(yaw) @ np.array([side * p.stance_half_width_m, 0.0, 0.0])
        ground = ground + np.array([side * spread, 0.0, 0.0])
        # A lifted foot also comes forward a little, like a marching step.
        ankle_target = ground + np.array([0.0, dims.ankle_height_m + lift, 0.0]) + fwd * (0.6 * lift)
        pole = fwd + r_pelvis @ np.array([side * 0.15, 0.0, 0.0])
        knee, ankle = two_bone_ik(hip, ankle_target, dims.thigh_m, dims.shin_m, pole)
        r_foot = rot_y(yaw + side * foot_yaw_out) @ rot_x(1.6 * lift)
        out[idx[0]], out[idx[1]] = knee, ankle
        out[idx[2]] = ankle + r_foot @ np.array([0.0, -0.065, -0.055])
        out[idx[3]] = ankle + r_foot @ np.array([0.0, -0.065, 0.165])
    out[B.LEFT_HIP], out[B.RIGHT_HIP] = hip_l, hip_r

    twist = math.radians(p.twist_amplitude_deg) * math.sin(2 * math.pi * t / (2 * p.step_period_s) + 0.7)
    r_torso = rot_y(yaw + twist) @ rot_z(-0.6 * roll) @ rot_x(math.radians(4.0))
    shoulder_c = pelvis + r_torso @ np.array([0.0, dims.spine_m, 0.0])
    sh_l = shoulder_c + r_torso @ np.array([dims.shoulder_half_width_m, 0.0, 0.0])
    sh_r = shoulder_c + r_torso @ np.array([-dims.shoulder_half_width_m, 0.0, 0.0])
    out[B.LEFT_SHOULDER], out[B.RIGHT_SHOULDER] = sh_l, sh_r

    ul, fl, ur, fr = _arm_dirs(p, t)
    torso_fwd = r_torso @ np.array([0.0, 0.0, 1.0])
    for shoulder, up_dir, fore_dir, side, ids in (
        (sh_l, ul, fl, 1.0, (B.LEFT_ELBOW, B.LEFT_WRIST, B.LEFT_INDEX, B.LEFT_PINKY, B.LEFT_THUMB)),
        (sh_r, ur, fr, -1.0, (B.RIGHT_ELBOW, B.RIGHT_WRIST, B.RIGHT_INDEX, B.RIGHT_PINKY, B.RIGHT_THUMB)),
    ):
        elbow = shoulder + dims.upper_arm_m * (r_torso @ up_dir)
        fore_w = r_torso @ fore_dir
        wrist = elbow + dims.forearm_m * fore_w
        hand = hand_landmarks(wrist, fore_w, torso_fwd + 0.3 * (r_torso @ np.array([side, 0.0, 0.0])), side)
        out[ids[0]], out[ids[1]] = elbow, wrist
        out[ids[2]], out[ids[3]], out[ids[4]] = hand["index"], hand["pinky"], hand["thumb"]

    head_yaw = math.radians(p.head_yaw_amplitude_deg) * math.sin(2 * math.pi * t / 2.3 + 1.1)
    nod = math.radians(6.0) * math.sin(beat)
    r_head = r_torso @ rot_y(head_yaw) @ rot_x(nod)
    head_c = shoulder_c + r_torso @ np.array([0.0, dims.neck_to_head_centre_m, 0.015])
    for k, v in head_landmarks(head_c, r_head, dims.head_scale).items():
        out[k] = v
    return out


def standing_pose(dims: BodyDimensions | None = None, arm_abduction_deg: float = 22.0,
                  stance_half_width_m: float = 0.17) -> np.ndarray:
    """A front-facing rest pose: arms a little away from the body, legs apart (for the character)."""
    dims = dims or BodyDimensions()
    out = np.zeros((N_BODY, 3))
    pelvis = np.array([0.0, dims.thigh_m + dims.shin_m + dims.ankle_height_m - 0.01, 0.0])
    fwd = np.array([0.0, 0.0, 1.0])
    for side, ids in ((1.0, (B.LEFT_HIP, B.LEFT_KNEE, B.LEFT_ANKLE, B.LEFT_HEEL, B.LEFT_FOOT_INDEX)),
                      (-1.0, (B.RIGHT_HIP, B.RIGHT_KNEE, B.RIGHT_ANKLE, B.RIGHT_HEEL, B.RIGHT_FOOT_INDEX))):
        hip = pelvis + np.array([side * dims.hip_half_width_m, 0.0, 0.0])
        target = np.array([side * stance_half_width_m, dims.ankle_height_m, 0.0])
        knee, ankle = two_bone_ik(hip, target, dims.thigh_m, dims.shin_m, fwd)
        r_foot = rot_y(side * math.radians(12.0))
        out[ids[0]], out[ids[1]], out[ids[2]] = hip, knee, ankle
        out[ids[3]] = ankle + r_foot @ np.array([0.0, -0.065, -0.055])
        out[ids[4]] = ankle + r_foot @ np.array([0.0, -0.065, 0.165])
    shoulder_c = pelvis + np.array([0.0, dims.spine_m, 0.0])
    abd = math.radians(arm_abduction_deg)
    arm_ids: tuple[tuple[float, tuple[int, ...]], ...] = (
                     (1.0, (B.LEFT_SHOULDER, B.LEFT_ELBOW, B.LEFT_WRIST, B.LEFT_INDEX, B.LEFT_PINKY,
                              B.LEFT_THUMB)),
                      (-1.0, (B.RIGHT_SHOULDER, B.RIGHT_ELBOW, B.RIGHT_WRIST, B.RIGHT_INDEX, B.RIGHT_PINKY,
                              B.RIGHT_THUMB)))
    for side, arm in arm_ids:
        sh = shoulder_c + np.array([side * dims.shoulder_half_width_m, 0.0, 0.0])
        up_dir = np.array([side * math.sin(abd), -math.cos(abd), 0.0])
        fore_dir = _unit(np.array([side * math.sin(abd * 1.2), -math.cos(abd * 1.2), 0.08]))
        elbow = sh + dims.upper_arm_m * up_dir
        wrist = elbow + dims.forearm_m * fore_dir
        # Palms towards the viewer (thumbs out), so the hands read as hands in a front view.
        hand = hand_landmarks(wrist, fore_dir, np.array([side, 0.0, 0.35]), side)
        out[arm[0]], out[arm[1]], out[arm[2]] = sh, elbow, wrist
        out[arm[3]], out[arm[4]], out[arm[5]] = hand["index"], hand["pinky"], hand["thumb"]
    head_c = shoulder_c + np.array([0.0, dims.neck_to_head_centre_m * dims.head_scale ** 0.5, 0.015])
    for k, v in head_landmarks(head_c, np.eye(3), dims.head_scale).items():
        out[k] = v
    return out
