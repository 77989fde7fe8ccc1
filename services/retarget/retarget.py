"""Retargeting: the performer's ``SkeletonSequence`` (video pixels) onto a ``CharacterRig`` (character pixels).

Stated policies:

- **Bones**: directions come from the performer's 3D world landmarks (metres; the image landmarks when a
  sequence has no world points) projected orthographically onto the image plane; lengths come from the
  character. A bone of character length ``L`` whose performer direction leaves the image plane by angle
  ``a`` is drawn ``L * cos(a)`` long (foreshortening); in-plane bones keep ``L`` exactly. The neck
  (shoulder centre -> nose) takes its direction from the shoulder centre towards the ears' midpoint, since
  the nose swings sideways when the head turns and a 2D character would show that as a head tilt.
- **Side-on width**: a flat character cannot turn, and its projected shoulders/hips would collapse to a
  sliver side-on; they keep at least ``min_width_fraction`` (0.5) of their drawn width across the spine,
  on the side the ``mirrored`` flag gives (characters drawn in profile are exempt).
- **Root motion**: the performer's hip-centre motion in video pixels times the height ratio (character
  height measure / performer height measure, both spine + neck + thigh + shin in pixels; the performer's
  is the 90th percentile over the frames, i.e. standing upright), starting from the character's own hip
  centre in frame 0.
- **Keep in frame (clamp)**: per frame, the pose is shifted by the least amount that keeps its bounding
  box (joints plus the head top) inside the character image, grown to include the character's rest joints
  (a tightly cropped drawing may touch the edges at rest); a pose larger than the image is shifted only
  into the interval between the two bounds and the renderer crops the rest.
- **Orientation**: yaw is measured from the hips and shoulders (``body_yaw_deg``: 0 = facing the camera,
  positive when the performer's left shoulder is farther from the camera than the right, +-180 = facing
  away). ``image`` rotates every frame about the vertical axis so the body faces the way the character is
  drawn (front 0, right +90, left -90, back 180): only limbs and body move. ``video`` keeps the performer's
  yaw relative to the character's drawn facing. The 2D character shows a turn by foreshortening (shoulders
  and hips narrow); when it faces away from its drawn facing (``|body_yaw_deg| > 90``, with 20 degrees of
  hysteresis so it does not flicker at the turn) the frame has ``mirrored = True``: joint positions are
  the true projection (the anatomical left arm is then on the image's left), and the renderer shows the
  texture mirrored about the body's vertical axis so a front-drawn character shows its "back".
- **Foot contacts**: a foot (ankle) is in contact when its speed is below ``contact_speed_heights_per_s``
  character heights per second and it is within ``contact_height_fraction`` of the floor (the lowest foot
  over a +-1 s window); runs shorter than ``min_contact_frames`` are dropped. Planted feet are pinned to the
  run's mean position with two-bone IK on the leg (projected thigh/shin lengths kept), blended over
  ``pin_blend_frames`` at either end. Foot skate (mean ankle px/frame while in contact) is reported before
  and after pinning.
- **Trimming**: output is at most 30 s (``video``) or 10 s (``image``); the cut is added to ``trimmed_s``.
- **Loop** (optional): the last ``W`` frames are cross-faded into the first ``W`` (``W = loop_blend_s``,
  default 0.5 s, at most a quarter of the clip) and the sequence is shortened by ``W`` frames, so playing
  it on repeat has no jump: the last output frame is followed by a frame that continues it.
- **Fingers and face**: hand landmarks (21 per hand) are placed at the output wrists and scaled by the
  character's hand size / the performer's; face landmarks are placed at the output nose and scaled by the
  neck-length ratio; ``FaceExpression`` (jaw, eyes, head yaw/pitch/roll) is copied unchanged.
- Frames without a person are filled by linear interpolation of the neighbouring poses (held at the
  ends) and counted in ``warnings``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from enum import IntEnum

import numpy as np

from motion.errors import InputError
from motion.rig import HIP_CENTER, SHOULDER_CENTER, CharacterRig
from motion.skeleton import (
    KP_DIM,
    N_BODY,
    SPACE_CHARACTER,
    BodyLandmark,
    Face,
    Hand,
    HandLandmark,
    SkeletonFrame,
    SkeletonSequence,
)

B = BodyLandmark
MAX_DURATION_S = {"video": 30.0, "image": 10.0}
FACING_YAW_DEG = {"front": 0.0, "right": 90.0, "left": -90.0, "back": 180.0}
RETARGET_VERSION = 1


class Orientation(IntEnum):
    VIDEO = 1
    IMAGE = 2


@dataclass
class RetargetOptions:
    orientation: str = "video"  # "video" | "image"
    loop: bool = False
    pin_feet: bool = True
    loop_blend_s: float = 0.0  # 0 = default (0.5 s)
    keep_in_frame: bool = True
    contact_speed_heights_per_s: float = 0.3
    contact_height_fraction: float = 0.05
    min_contact_frames: int = 3
    pin_blend_frames: int = 2
    mirror_hysteresis_deg: float = 10.0
    max_duration_s: float = 0.0  # 0 = the orientation mode's limit
    # A flat 2D character seen side-on would shrink to a sliver: the shoulders and the hips keep at least
    # this fraction of their drawn width across the spine (0 = pure projection; profile drawings exempt).
    min_width_fraction: float = 0.5

    def digest(self) -> str:
        doc = {"v": RETARGET_VERSION, **asdict(self)}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class RetargetResult:
    sequence: SkeletonSequence
    foot_skate_before_px: float  # mean ankle movement px/frame while in contact, before pinning
    foot_skate_after_px: float
    contact_frames: int  # frames x feet in contact
    trimmed_s: float
    filled_frames: int
    height_ratio: float
    warnings: list[str] = field(default_factory=list)


# Chain in placement order: (parent, child, bone length key). Parents are placed before children.
_CHAIN: tuple[tuple[str, str, str], ...] = (
    (HIP_CENTER, "left_hip", "left_pelvis"), (HIP_CENTER, "right_hip", "right_pelvis"),
    (HIP_CENTER, SHOULDER_CENTER, "spine"),
    (SHOULDER_CENTER, "left_shoulder", "left_clavicle"), (SHOULDER_CENTER, "right_shoulder", "right_clavicle"),
    (SHOULDER_CENTER, "nose", "neck"),
    ("left_shoulder", "left_elbow", "left_upper_arm"), ("left_elbow", "left_wrist", "left_forearm"),
    ("right_shoulder", "right_elbow", "right_upper_arm"), ("right_elbow", "right_wrist", "right_forearm"),
    ("left_hip", "left_knee", "left_thigh"), ("left_knee", "left_ankle", "left_shin"),
    ("right_hip", "right_knee", "right_thigh"), ("right_knee", "right_ankle", "right_shin"),
)
# Points placed as scaled offsets from an anchor: (anchor, points, bone whose length ratio scales them).
_OFFSETS: tuple[tuple[str, tuple[int, ...], str], ...] = (
    ("nose", (B.LEFT_EYE_INNER, B.LEFT_EYE, B.LEFT_EYE_OUTER, B.RIGHT_EYE_INNER, B.RIGHT_EYE,
              B.RIGHT_EYE_OUTER, B.LEFT_EAR, B.RIGHT_EAR, B.MOUTH_LEFT, B.MOUTH_RIGHT), "neck"),
    ("left_wrist", (B.LEFT_PINKY, B.LEFT_INDEX, B.LEFT_THUMB), "left_forearm"),
    ("right_wrist", (B.RIGHT_PINKY, B.RIGHT_INDEX, B.RIGHT_THUMB), "right_forearm"),
    ("left_ankle", (B.LEFT_HEEL, B.LEFT_FOOT_INDEX), "left_shin"),
    ("right_ankle", (B.RIGHT_HEEL, B.RIGHT_FOOT_INDEX), "right_shin"),
)
# Typical length of each chain bone relative to the spine, for characters that lack it (cropped).
_DEFAULT_RATIO = {
    "left_pelvis": 0.2, "right_pelvis": 0.2, "left_clavicle": 0.3, "right_clavicle": 0.3, "neck": 0.45,
    "left_upper_arm": 0.6, "right_upper_arm": 0.6, "left_forearm": 0.55, "right_forearm": 0.55,
    "left_thigh": 0.85, "right_thigh": 0.85, "left_shin": 0.8, "right_shin": 0.8,
}


def _idx(name: str) -> int:
    return int(BodyLandmark[name.upper()])


def _named(points: np.ndarray, name: str) -> np.ndarray:
    """(T, D) trajectory of a named joint (BlazePose name or a derived centre) from (T, 33, D) points."""
    if name == HIP_CENTER:
        return (points[:, B.LEFT_HIP] + points[:, B.RIGHT_HIP]) / 2.0
    if name == SHOULDER_CENTER:
        return (points[:, B.LEFT_SHOULDER] + points[:, B.RIGHT_SHOULDER]) / 2.0
    return points[:, _idx(name)]


def _interpolate_missing(arr: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Linear interpolation over time of frames where present is False (held at the ends)."""
    if present.all():
        return arr
    t = np.arange(len(arr))
    known = np.nonzero(present)[0]
    flat = arr.reshape(len(arr), -1).copy()
    for c in range(flat.shape[1]):
        flat[~present, c] = np.interp(t[~present], known, flat[known, c])
    return flat.reshape(arr.shape)


def _rotate_y(points: np.ndarray, angle_rad: np.ndarray) -> np.ndarray:
    """Rotates (T, N, 3) points about the vertical (y) axis by a per-frame angle (adds it to the yaw)."""
    c, s = np.cos(angle_rad)[:, None], np.sin(angle_rad)[:, None]
    out = points.copy()
    out[..., 0] = points[..., 0] * c - points[..., 2] * s
    out[..., 2] = points[..., 0] * s + points[..., 2] * c
    return out


def body_yaw_deg(points3: np.ndarray) -> np.ndarray:
    """(T,) body yaw from (T, 33, 3) points: 0 facing the camera, +-180 facing away (see module doc)."""
    v = (points3[:, B.LEFT_SHOULDER] - points3[:, B.RIGHT_SHOULDER]) + (points3[:, B.LEFT_HIP] - points3[:, B.RIGHT_HIP])
    return np.degrees(np.arctan2(v[:, 2], v[:, 0]))


def _wrap_deg(a: np.ndarray) -> np.ndarray:
    return (a + 180.0) % 360.0 - 180.0


def _smooth(x: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0 or len(x) < 3:
        return x
    k = np.ones(2 * radius + 1) / (2 * radius + 1)
    padded = np.pad(x, radius, mode="edge")
    return np.convolve(padded, k, mode="valid")


def _height_measure(lengths: dict[str, float], with_legs: bool) -> float:
    m = lengths["spine"] + lengths["neck"]
    if with_legs:
        m += (lengths["left_thigh"] + lengths["right_thigh"] + lengths["left_shin"] + lengths["right_shin"]) / 2.0
    return m


def _character_lengths(rig: CharacterRig) -> tuple[dict[str, float], list[str]]:
    """Chain bone lengths from the rig's joints; missing ones (cropped character) from typical proportions."""
    lengths: dict[str, float] = {}
    estimated: list[str] = []
    for parent, child, key in _CHAIN:
        if parent in rig.joints and child in rig.joints:
            lengths[key] = float(np.linalg.norm(rig.joint(child) - rig.joint(parent)))
    if "spine" not in lengths:
        raise InputError("character.missing_joints", "the rig has no spine (hips and shoulders are required)",
                         limit=[HIP_CENTER, SHOULDER_CENTER], actual=sorted(rig.joints))
    for key, ratio in _DEFAULT_RATIO.items():
        if key not in lengths:
            lengths[key] = ratio * lengths["spine"]
            estimated.append(key)
    # Both halves of the pelvis and of the shoulder line get their mean length, so the mid-points of the
    # placed hips and shoulders stay exactly on the spine's ends.
    for pair in (("left_pelvis", "right_pelvis"), ("left_clavicle", "right_clavicle")):
        mean = (lengths[pair[0]] + lengths[pair[1]]) / 2.0
        lengths[pair[0]] = lengths[pair[1]] = mean
    return lengths, estimated


def _two_bone_ik(hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New (knee, ankle) in 2D reaching toward target with the current thigh/shin lengths and bend side."""
    a1 = float(np.linalg.norm(knee - hip))
    a2 = float(np.linalg.norm(ankle - knee))
    to_t = target - hip
    d = float(np.linalg.norm(to_t))
    if d < 1e-6 or a1 < 1e-6 or a2 < 1e-6:
        return knee, ankle
    d_c = min(max(d, abs(a1 - a2) + 1e-3), a1 + a2 - 1e-3)
    u = to_t / d
    cos_h = (a1 * a1 + d_c * d_c - a2 * a2) / (2 * a1 * d_c)
    ang = math.acos(max(-1.0, min(1.0, cos_h)))
    # Keep the knee on the same side of the hip-ankle line as before.
    cur = ankle - hip
    side = np.sign(cur[0] * (knee - hip)[1] - cur[1] * (knee - hip)[0]) or 1.0
    c, s = math.cos(side * ang), math.sin(side * ang)
    knee_dir = np.array([u[0] * c - u[1] * s, u[0] * s + u[1] * c])
    new_knee = hip + a1 * knee_dir
    new_ankle = hip + d_c * u
    # The shin keeps its length: place the ankle from the knee toward the (clamped) target.
    shin = new_ankle - new_knee
    n = float(np.linalg.norm(shin))
    if n > 1e-9:
        new_ankle = new_knee + shin * (a2 / n)
    return new_knee, new_ankle


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index runs where mask is True."""
    out, start = [], None
    for i, v in enumerate(mask):
        if v and start is None:
            start = i
        elif not v and start is not None:
            out.append((start, i))
            start = None
    if start is not None:
        out.append((start, len(mask)))
    return out


def detect_contacts(ankle: np.ndarray, floor_y: np.ndarray, height_px: float, fps: float,
                    options: RetargetOptions) -> np.ndarray:
    """(T,) bool: the foot is slow and near the floor (see module doc)."""
    speed = np.zeros(len(ankle))
    if len(ankle) > 1:
        step = np.linalg.norm(np.diff(ankle, axis=0), axis=1)
        speed[1:] = step
        speed[0] = step[0]
        # Central speed over 3 frames so a single noisy frame does not break a contact.
        speed = np.convolve(np.pad(speed, 1, mode="edge"), np.ones(3) / 3, mode="valid")
    slow = speed < options.contact_speed_heights_per_s * height_px / fps
    low = ankle[:, 1] >= floor_y - options.contact_height_fraction * height_px
    contact = slow & low
    for a, b in _runs(contact):
        if b - a < options.min_contact_frames:
            contact[a:b] = False
    return contact


def foot_skate_px(ankle: np.ndarray, contact: np.ndarray) -> float:
    """Mean ankle displacement (px/frame) over consecutive frames both in contact."""
    both = contact[1:] & contact[:-1]
    if not both.any():
        return 0.0
    step = np.linalg.norm(np.diff(ankle, axis=0), axis=1)
    return float(step[both].mean())


def _pin_feet(xy: np.ndarray, contacts: dict[str, np.ndarray], blend: int) -> np.ndarray:
    """Pins each planted ankle to its contact run's mean position (two-bone IK, blended at the run's ends).

    A straight leg cannot reach a target beyond thigh + shin; then the whole body is shifted toward the
    target by the shortfall (a slight pelvis drop) instead of letting the foot slide.
    """
    out = xy.copy()
    T = len(xy)
    weights = {side: np.zeros(T) for side in contacts}
    targets = {side: np.zeros((T, 2)) for side in contacts}
    for side, contact in contacts.items():
        ankle_i = _idx(f"{side}_ankle")
        for a, b in _runs(contact):
            target = xy[a:b, ankle_i].mean(axis=0)
            for t in range(max(0, a - blend), min(T, b + blend)):
                w = 1.0 if a <= t < b else 1.0 - (a - t if t < a else t - b + 1) / (blend + 1)
                if w > weights[side][t]:
                    weights[side][t], targets[side][t] = w, target
    for t in range(T):
        active = [side for side in contacts if weights[side][t] > 0]
        if not active:
            continue
        goals = {}
        shifts = []
        for side in active:
            hip_i, knee_i, ankle_i = _idx(f"{side}_hip"), _idx(f"{side}_knee"), _idx(f"{side}_ankle")
            hip, knee, ankle = out[t, hip_i], out[t, knee_i], out[t, ankle_i]
            goal = ankle + weights[side][t] * (targets[side][t] - ankle)
            goals[side] = goal
            reach = float(np.linalg.norm(knee - hip) + np.linalg.norm(ankle - knee)) - 1e-3
            to_goal = goal - hip
            d = float(np.linalg.norm(to_goal))
            shifts.append(to_goal * (1.0 - reach / d) if d > reach > 0 else np.zeros(2))
        shift = np.mean(shifts, axis=0)
        if np.any(shift):
            out[t] = out[t] + shift
        for side in active:
            hip_i, knee_i, ankle_i = _idx(f"{side}_hip"), _idx(f"{side}_knee"), _idx(f"{side}_ankle")
            new_knee, new_ankle = _two_bone_ik(out[t, hip_i], out[t, knee_i], out[t, ankle_i], goals[side])
            delta = new_ankle - out[t, ankle_i]
            out[t, knee_i], out[t, ankle_i] = new_knee, new_ankle
            for fi in (_idx(f"{side}_heel"), _idx(f"{side}_foot_index")):
                out[t, fi] = out[t, fi] + delta
    return out


def _place_hand(hand: Hand | None, wrist_xy: np.ndarray, scale: float, angle_rad: float) -> Hand | None:
    if hand is None:
        return None
    src = hand.world if hand.world is not None else hand.landmarks
    rel = (src[:, :3] - src[HandLandmark.WRIST, :3]).astype(np.float64)
    rel = _rotate_y(rel[None], np.array([angle_rad]))[0] * scale
    lm = np.zeros((len(rel), KP_DIM), dtype=np.float32)
    lm[:, 0] = wrist_xy[0] + rel[:, 0]
    lm[:, 1] = wrist_xy[1] + rel[:, 1]
    lm[:, 2] = rel[:, 2]
    lm[:, 3:] = hand.landmarks[:, 3:]
    return Hand(landmarks=lm, handedness=hand.handedness, score=hand.score,
                world=None if hand.world is None else hand.world.copy())


def _hand_size(hand: Hand | None, world: bool) -> float | None:
    if hand is None:
        return None
    src = hand.world if world and hand.world is not None else hand.landmarks
    if src is None:
        return None
    return float(np.linalg.norm(src[HandLandmark.MIDDLE_FINGER_MCP, :3] - src[HandLandmark.WRIST, :3]))


def _character_hand_px(rig: CharacterRig, side: str, forearm_px: float) -> float:
    lm = rig.left_hand if side == "left" else rig.right_hand
    if lm is not None:
        return float(np.linalg.norm(lm[HandLandmark.MIDDLE_FINGER_MCP, :2] - lm[HandLandmark.WRIST, :2]))
    wrist, index = f"{side}_wrist", f"{side}_index"
    if wrist in rig.joints and index in rig.joints:
        return float(np.linalg.norm(rig.joint(index) - rig.joint(wrist)))
    return 0.4 * forearm_px  # typical wrist-to-knuckle length relative to the forearm


def retarget(performer: SkeletonSequence, rig: CharacterRig, options: RetargetOptions | None = None) -> SkeletonSequence:
    """The performer's motion on the character, in character pixels (see the module doc for policies)."""
    return retarget_with_report(performer, rig, options).sequence


def retarget_with_report(performer: SkeletonSequence, rig: CharacterRig,
                         options: RetargetOptions | None = None) -> RetargetResult:
    options = options or RetargetOptions()
    if options.orientation not in MAX_DURATION_S:
        raise InputError("retarget.orientation", "orientation must be 'video' or 'image'",
                         limit=sorted(MAX_DURATION_S), actual=options.orientation)
    if not performer.fps or performer.fps <= 0 or not math.isfinite(performer.fps):
        raise InputError("skeleton.fps", "the skeleton sequence has no frame rate", limit="> 0", actual=performer.fps)
    fps = float(performer.fps)
    warnings: list[str] = []
    # ---- trim --------------------------------------------------------------------------------------------
    max_s = options.max_duration_s or MAX_DURATION_S[options.orientation]
    keep = min(len(performer.frames), int(math.floor(max_s * fps + 1e-6)))
    frames = performer.frames[:keep]
    cut_s = (len(performer.frames) - keep) / fps
    trimmed_s = performer.trimmed_s + cut_s
    if cut_s > 0:
        warnings.append(f"retarget.trimmed: the motion was cut to the {options.orientation} mode's {max_s:g} s "
                        f"limit ({cut_s:.2f} s dropped)")
    present = np.array([f.present and f.body is not None for f in frames], dtype=bool)
    if not present.any():
        raise InputError("pose.no_person", "the skeleton sequence has no frame with a person",
                         limit=">= 1 frame with a person", actual=0)
    T = len(frames)
    # ---- performer arrays ----------------------------------------------------------------------------------
    body_px = np.zeros((T, N_BODY, KP_DIM), dtype=np.float64)
    use_world = all(f.world is not None for f, p in zip(frames, present, strict=True) if p)
    src3 = np.zeros((T, N_BODY, 3), dtype=np.float64)
    for i, f in enumerate(frames):
        if present[i] and f.body is not None:
            body_px[i] = f.body
            src3[i] = f.world[:, :3] if use_world and f.world is not None else f.body[:, :3]
    filled = int((~present).sum())
    if filled:
        warnings.append(f"retarget.filled_frames: {filled} frame(s) without a person were interpolated")
    body_px = _interpolate_missing(body_px, present)
    src3 = _interpolate_missing(src3, present)
    # Hip-centred 3D points: directions and offsets only, so units (metres or pixels) cancel out.
    src3 = src3 - _named(src3, HIP_CENTER)[:, None, :]
    # ---- orientation -----------------------------------------------------------------------------------------
    char_yaw = FACING_YAW_DEG.get(rig.facing, 0.0)
    yaw_raw = body_yaw_deg(src3)
    yaw_smooth = _wrap_deg(_smooth(np.unwrap(np.radians(yaw_raw)), max(1, int(round(fps / 15)))) * 180 / np.pi)
    if options.orientation == "image":
        rot_deg = char_yaw - yaw_smooth
        rel_yaw = _wrap_deg(yaw_raw - yaw_smooth)
    else:
        rot_deg = np.full(T, char_yaw)
        rel_yaw = _wrap_deg(yaw_raw)
    rot = np.radians(rot_deg)
    pts3 = _rotate_y(src3, rot)
    mirrored = np.zeros(T, dtype=bool)
    if options.orientation == "video":
        state = abs(rel_yaw[0]) > 90.0
        for i in range(T):
            if state and abs(rel_yaw[i]) < 90.0 - options.mirror_hysteresis_deg:
                state = False
            elif not state and abs(rel_yaw[i]) > 90.0 + options.mirror_hysteresis_deg:
                state = True
            mirrored[i] = state
    # ---- lengths and scales ----------------------------------------------------------------------------------
    char_len, estimated = _character_lengths(rig)
    if estimated:
        warnings.append("retarget.estimated_bones: the character lacks " + ", ".join(estimated)
                        + "; typical proportions were used")
    has_legs = not any(k.endswith(("thigh", "shin")) for k in estimated)
    perf_len3 = {key: float(np.median(np.linalg.norm(_named(src3, c) - _named(src3, p), axis=1)))
                 for p, c, key in _CHAIN}
    perf_len2_px = {key: np.linalg.norm(_named(body_px[..., :2], c) - _named(body_px[..., :2], p), axis=1)
                    for p, c, key in _CHAIN}
    perf_measure = np.percentile(
        perf_len2_px["spine"] + perf_len2_px["neck"]
        + ((perf_len2_px["left_thigh"] + perf_len2_px["right_thigh"] + perf_len2_px["left_shin"]
            + perf_len2_px["right_shin"]) / 2.0 if has_legs else 0.0), 90)
    height_ratio = _height_measure(char_len, has_legs) / max(float(perf_measure), 1e-6)
    char_height = rig.height_px if rig.height_px > 0 else 2.5 * _height_measure(char_len, has_legs)
    # Pixels per source unit (metres for world points): the spine's ratio, for z and the offset points.
    px_per_unit = char_len["spine"] / max(perf_len3["spine"], 1e-9)
    # ---- place joints ------------------------------------------------------------------------------------------
    hip_perf_px = _named(body_px[..., :2], HIP_CENTER)
    root = rig.joint(HIP_CENTER)[None, :] + (hip_perf_px - hip_perf_px[0]) * height_ratio
    placed: dict[str, np.ndarray] = {HIP_CENTER: root}
    # The neck bone ends at the nose, but its direction comes from the midpoint of the ears: the nose swings
    # sideways when the head turns (yaw), which on a 2D character would read as a strong head tilt.
    ear_mid3 = (pts3[:, B.LEFT_EAR] + pts3[:, B.RIGHT_EAR]) / 2.0
    spine2 = (_named(pts3, SHOULDER_CENTER) - _named(pts3, HIP_CENTER))[:, :2]
    for parent, child, key in _CHAIN:
        target3 = ear_mid3 if key == "neck" else _named(pts3, child)
        d3 = target3 - _named(pts3, parent)
        n = np.linalg.norm(d3, axis=1, keepdims=True)
        unit = np.divide(d3, n, out=np.zeros_like(d3), where=n > 1e-9)
        placed[child] = placed[parent] + char_len[key] * unit[:, :2]
        if key in ("right_pelvis", "right_clavicle") and options.min_width_fraction > 0 \
                and rig.facing not in ("left", "right"):
            # Both sides are placed now and their limbs not yet: widen a side-on pair before the limbs hang
            # from it. (A character drawn in profile is already drawn narrow: nothing to keep.)
            side = "hip" if key == "right_pelvis" else "shoulder"
            drawn_width = float(np.linalg.norm(rig.joint(f"left_{side}") - rig.joint(f"right_{side}")))
            _keep_min_width(placed, f"left_{side}", f"right_{side}", spine2, rig, mirrored,
                            options.min_width_fraction * drawn_width)
    xy = np.zeros((T, N_BODY, 2))
    for name, traj in placed.items():
        if name not in (HIP_CENTER, SHOULDER_CENTER):
            xy[:, _idx(name)] = traj
    for anchor, idxs, key in _OFFSETS:
        scale = char_len[key] / max(perf_len3[key], 1e-9)
        base3 = _named(pts3, anchor)
        for i in idxs:
            xy[:, i] = placed[anchor] + (pts3[:, i, :2] - base3[:, :2]) * scale
    # ---- feet ------------------------------------------------------------------------------------------------
    contacts: dict[str, np.ndarray] = {}
    window = max(1, int(round(fps)))
    lowest = np.max(np.stack([xy[:, B.LEFT_ANKLE, 1], xy[:, B.RIGHT_ANKLE, 1]]), axis=0)
    floor_y = np.array([lowest[max(0, t - window): t + window + 1].max() for t in range(T)])
    for side in ("left", "right"):
        contacts[side] = detect_contacts(xy[:, _idx(f"{side}_ankle")], floor_y, char_height, fps, options)
    skate_before = _mean_skate(xy, contacts)
    if options.pin_feet and has_legs:
        xy = _pin_feet(xy, contacts, options.pin_blend_frames)
    skate_after = _mean_skate(xy, contacts)
    # ---- loop ------------------------------------------------------------------------------------------------
    order = np.arange(T)
    blend_n = 0
    if options.loop:
        blend_s = options.loop_blend_s or 0.5
        blend_n = int(min(round(blend_s * fps), T // 4))
        if blend_n < 2:
            warnings.append(f"retarget.loop_too_short: {T} frames are too few to blend a loop")
            blend_n = 0
    # ---- assemble per-frame data (then loop-blend and clamp on the assembled arrays) ------------------------
    z_px = pts3[..., 2] * px_per_unit
    if blend_n:
        xy, z_px, pts3, order = _loop_blend(xy, z_px, pts3, blend_n)
        warnings.append(f"retarget.loop: the end cross-fades into the start over {blend_n} frames "
                        f"({blend_n / fps:.2f} s); the clip is {blend_n} frames shorter")
    offsets = np.zeros((len(xy), 2))
    if options.keep_in_frame:
        offsets = _keep_in_frame(xy, rig, char_len)
        xy = xy + offsets[:, None, :]
    n_out = len(xy)
    hand_scale_cache: dict[str, float] = {}
    out_frames: list[SkeletonFrame] = []
    for k in range(n_out):
        src_i = int(order[k])
        f = frames[src_i]
        body = np.zeros((N_BODY, KP_DIM), dtype=np.float32)
        body[:, 0:2] = xy[k]
        body[:, 2] = z_px[k]
        body[:, 3:] = body_px[src_i, :, 3:]
        world = np.zeros((N_BODY, KP_DIM), dtype=np.float32)
        world[:, :3] = pts3[k]
        world[:, 3:] = body_px[src_i, :, 3:]
        of = SkeletonFrame(
            index=k, timestamp_s=k / fps, present=True, body=body, world=world, score=f.score if present[src_i] else 0.0,
            track_id=f.track_id, left_foot_contact=bool(contacts["left"][src_i]),
            right_foot_contact=bool(contacts["right"][src_i]),
            body_yaw_deg=float(rel_yaw[src_i]), mirrored=bool(mirrored[src_i]),
        )
        for side in ("left", "right"):
            hand = f.left_hand if side == "left" else f.right_hand
            if hand is None or not present[src_i]:
                continue
            if side not in hand_scale_cache:
                hand_scale_cache[side] = _hand_scale(frames, side, rig, char_len[f"{side}_forearm"])
            placed_hand = _place_hand(hand, xy[k, _idx(f"{side}_wrist")], hand_scale_cache[side], float(rot[src_i]))
            if side == "left":
                of.left_hand = placed_hand
            else:
                of.right_hand = placed_hand
        if f.face is not None and present[src_i]:
            of.face = _place_face(f.face, body_px[src_i], xy[k, B.NOSE],
                                  char_len["neck"] / max(float(np.median(perf_len2_px["neck"])), 1e-6))
        out_frames.append(of)
    out = SkeletonSequence(
        fps=fps, width=rig.width, height=rig.height, frames=out_frames, source_sha256=performer.source_sha256,
        space=SPACE_CHARACTER, options_digest=_digest(performer, rig, options), trimmed_s=trimmed_s,
        source_duration_s=performer.source_duration_s or performer.duration_s,
        warnings=list(performer.warnings) + warnings + [w for w in rig.warnings if w not in performer.warnings],
    )
    return RetargetResult(
        sequence=out, foot_skate_before_px=skate_before, foot_skate_after_px=skate_after,
        contact_frames=int(sum(c.sum() for c in contacts.values())), trimmed_s=trimmed_s, filled_frames=filled,
        height_ratio=height_ratio, warnings=warnings,
    )


def _mean_skate(xy: np.ndarray, contacts: dict[str, np.ndarray]) -> float:
    steps: list[float] = []
    weights: list[int] = []
    for side, contact in contacts.items():
        both = contact[1:] & contact[:-1]
        if both.any():
            steps.append(foot_skate_px(xy[:, _idx(f"{side}_ankle")], contact))
            weights.append(int(both.sum()))
    if not weights:
        return 0.0
    return float(np.average(steps, weights=weights))


def _hand_scale(frames: list[SkeletonFrame], side: str, rig: CharacterRig, forearm_px: float) -> float:
    sizes: list[float] = []
    hands = [h for h in (f.left_hand if side == "left" else f.right_hand for f in frames) if h is not None]
    world = all(h.world is not None for h in hands)
    for h in hands:
        s = _hand_size(h, world)
        if s:
            sizes.append(s)
    if not sizes:
        return 1.0
    return _character_hand_px(rig, side, forearm_px) / float(np.median(sizes))


def _keep_min_width(placed: dict[str, np.ndarray], left: str, right: str, spine: np.ndarray,
                    rig: CharacterRig, mirrored: np.ndarray, min_width_px: float) -> None:
    """Widens the left/right pair across the spine to at least ``min_width_px`` where it is narrower.

    The spread keeps the pair's midpoint and its component along the spine (a tilt stays a tilt); the side
    each joint goes to is the character's own (swapped while the sequence is mirrored), so a turn through
    side-on never makes the pair jump across.
    """
    n = np.linalg.norm(spine, axis=1, keepdims=True)
    up = np.divide(spine, n, out=np.tile(np.array([[0.0, -1.0]]), (len(spine), 1)), where=n > 1e-9)
    perp = np.stack([-up[:, 1], up[:, 0]], axis=1)  # image right when the spine points up
    rest = rig.joint(left) - rig.joint(right)
    rest_sign = 1.0 if float(rest[0]) >= 0.0 else -1.0  # spine up in the rest pose: perp = +x
    sign = np.where(mirrored, -rest_sign, rest_sign)
    d = placed[left] - placed[right]
    across = np.sum(d * perp, axis=1)
    narrow = sign * across < min_width_px
    if not narrow.any():
        return
    delta = (sign * min_width_px - across)[:, None] * perp / 2.0
    placed[left] = np.where(narrow[:, None], placed[left] + delta, placed[left])
    placed[right] = np.where(narrow[:, None], placed[right] - delta, placed[right])


def _place_face(face: Face, body_px: np.ndarray, nose_xy: np.ndarray, scale: float) -> Face:
    lm = face.landmarks.astype(np.float64).copy()
    rel = lm[:, :2] - body_px[B.NOSE, :2]
    out = np.zeros_like(face.landmarks, dtype=np.float32)
    out[:, :2] = nose_xy + rel * scale
    out[:, 2] = lm[:, 2] * scale
    out[:, 3:] = face.landmarks[:, 3:]
    return Face(landmarks=out, score=face.score, expression=face.expression)


def _loop_blend(xy: np.ndarray, z: np.ndarray, pts3: np.ndarray, n: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cross-fades frames [T-n, T) into [0, n) and drops the last n: out[j] = mix(in[T-n+j], in[j], j/n)."""
    T = len(xy)
    order = np.arange(T - n)
    w = (np.arange(n) / n)[:, None, None]
    xy2, z2, p2 = xy[: T - n].copy(), z[: T - n].copy(), pts3[: T - n].copy()
    xy2[:n] = _blend_poses(xy[T - n:], xy[:n], w[:, 0, 0])
    z2[:n] = (1 - w[..., 0]) * z[T - n:] + w[..., 0] * z[:n]
    p2[:n] = (1 - w) * pts3[T - n:] + w * pts3[:n]
    # Frame data that cannot be blended (hands, face, flags) comes from the end clip in the first half of
    # the window and from the start clip in the second.
    order[:n] = np.where(np.arange(n) < n / 2, np.arange(T - n, T), np.arange(n))
    return xy2, z2, p2, order


def _blend_poses(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per-frame mix of two (T, 33, 2) pose trajectories that keeps bone lengths: each chain bone takes the
    mixed direction and the mixed (foreshortened) length; offset points ride on their anchors."""
    mixed = (1 - w)[:, None, None] * a + w[:, None, None] * b
    named: dict[str, np.ndarray] = {HIP_CENTER: _named(mixed, HIP_CENTER)}
    for parent, child, _key in _CHAIN:
        d = _named(mixed, child) - _named(mixed, parent)
        n = np.linalg.norm(d, axis=1, keepdims=True)
        length = ((1 - w) * np.linalg.norm(_named(a, child) - _named(a, parent), axis=1)
                  + w * np.linalg.norm(_named(b, child) - _named(b, parent), axis=1))
        named[child] = named[parent] + np.divide(d, n, out=np.zeros_like(d), where=n > 1e-9) * length[:, None]
    out = mixed.copy()
    for name, traj in named.items():
        if name not in (HIP_CENTER, SHOULDER_CENTER):
            out[:, _idx(name)] = traj
    for anchor, idxs, _key in _OFFSETS:
        shift = named[anchor] - _named(mixed, anchor)
        for i in idxs:
            out[:, i] = mixed[:, i] + shift
    return out


def _keep_in_frame(xy: np.ndarray, rig: CharacterRig, char_len: dict[str, float]) -> np.ndarray:
    """Per-frame (dx, dy) clamping the pose's bounding box into the image (see module doc)."""
    head_len = char_len["neck"] * 0.6
    if (b := rig.bone("head")) is not None:
        head_len = b.length_px
    sc = (xy[:, B.LEFT_SHOULDER] + xy[:, B.RIGHT_SHOULDER]) / 2.0
    up = xy[:, B.NOSE] - sc
    n = np.linalg.norm(up, axis=1, keepdims=True)
    head_top = xy[:, B.NOSE] + np.divide(up, n, out=np.zeros_like(up), where=n > 1e-9) * head_len
    pts = np.concatenate([xy, head_top[:, None, :]], axis=1)
    # The allowed area is the image, grown to hold the character's rest pose (a tightly cropped drawing
    # touches the edges at rest and must not be pushed off its own spot).
    rest = np.array([v for k, v in rig.joints.items()], dtype=np.float64).reshape(-1, 2)
    area_min = np.minimum(rest.min(axis=0), 0.0)
    area_max = np.maximum(rest.max(axis=0), np.array([rig.width - 1, rig.height - 1], dtype=np.float64))
    lo = area_min - pts.min(axis=1)  # offset needed so min >= area_min
    hi = area_max - pts.max(axis=1)
    offsets = np.zeros((len(xy), 2))
    for t in range(len(xy)):
        for a in range(2):
            low, high = lo[t, a], hi[t, a]
            if low <= high:
                offsets[t, a] = min(max(0.0, low), high)
            else:
                offsets[t, a] = min(max(0.0, high), low)
    return offsets


def _digest(performer: SkeletonSequence, rig: CharacterRig, options: RetargetOptions) -> str:
    doc = {"skeleton": performer.source_sha256 or performer.options_digest, "rig": rig.image_sha256,
           "rig_options": rig.options_digest, "options": options.digest()}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]
