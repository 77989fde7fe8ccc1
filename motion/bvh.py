"""BVH motion export and import for `SkeletonSequence` (3D world landmarks -> joint rotations, and back).

Export: a fixed hierarchy over the BlazePose body points, offsets from a T-pose built from the median bone
lengths of the sequence (centimetres, Y up, the performer facing +Z with their left hand at +X), one
``Zrotation Xrotation Yrotation`` triple (degrees) per joint per frame, ``Frame Time = 1 / fps``.

Two details keep the export exact (forward kinematics gives back every source point, up to the T-pose bone
lengths): every joint with several children has them at one point (``LeftHipJoint``/``RightHipJoint`` have zero
offsets, as in the CMU files; ``Neck``, ``LeftShoulder`` and ``RightShoulder`` start at the same point), so each
joint's rotation is fixed by one bone direction plus a twist reference. MediaPipe world points are hip-centred,
so the root translation is the hip centre of the world points (in place) unless ``root_motion`` is asked for.

Import: `read_bvh` parses any BVH (arbitrary channel orders, End Sites) and `BvhMotion.positions()` runs forward
kinematics to joint positions per frame.
"""

from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass, field

import numpy as np

from motion.errors import InputError
from motion.skeleton import BodyLandmark, SkeletonSequence

B = BodyLandmark
METRES_TO_CM = 100.0
# MediaPipe world: x to the performer's left (image right), y down, z away from the camera. BVH: Y up, the
# performer facing +Z. Flipping y and z is a proper rotation (180 degrees about x), so handedness is kept.
_WORLD_TO_BVH = np.array([1.0, -1.0, -1.0])


# --- the exported hierarchy ------------------------------------------------------------------------------
# name, parent, how its position is computed from the 33 world points, T-pose direction of its offset
_Point = tuple[int, ...]  # the mean of these landmarks
_MID_HIPS: _Point = (B.LEFT_HIP, B.RIGHT_HIP)
_MID_SHOULDERS: _Point = (B.LEFT_SHOULDER, B.RIGHT_SHOULDER)
_MID_TORSO: _Point = (B.LEFT_HIP, B.RIGHT_HIP, B.LEFT_SHOULDER, B.RIGHT_SHOULDER)

UP, DOWN, LEFT, RIGHT, FORWARD = (0, 1, 0), (0, -1, 0), (1, 0, 0), (-1, 0, 0), (0, 0, 1)


@dataclass(frozen=True)
class _JointSpec:
    name: str
    parent: str | None
    point: _Point
    rest_dir: tuple[int, int, int] | None  # None: zero offset (same point as the parent)


_JOINTS: tuple[_JointSpec, ...] = (
    _JointSpec("Hips", None, _MID_HIPS, None),
    _JointSpec("Spine", "Hips", _MID_TORSO, UP),
    _JointSpec("Neck", "Spine", _MID_SHOULDERS, UP),
    _JointSpec("Head", "Neck", (B.LEFT_EAR, B.RIGHT_EAR), UP),
    _JointSpec("LeftShoulder", "Spine", _MID_SHOULDERS, UP),
    _JointSpec("LeftArm", "LeftShoulder", (B.LEFT_SHOULDER,), LEFT),
    _JointSpec("LeftForeArm", "LeftArm", (B.LEFT_ELBOW,), LEFT),
    _JointSpec("LeftHand", "LeftForeArm", (B.LEFT_WRIST,), LEFT),
    _JointSpec("RightShoulder", "Spine", _MID_SHOULDERS, UP),
    _JointSpec("RightArm", "RightShoulder", (B.RIGHT_SHOULDER,), RIGHT),
    _JointSpec("RightForeArm", "RightArm", (B.RIGHT_ELBOW,), RIGHT),
    _JointSpec("RightHand", "RightForeArm", (B.RIGHT_WRIST,), RIGHT),
    _JointSpec("LeftHipJoint", "Hips", _MID_HIPS, None),
    _JointSpec("LeftUpLeg", "LeftHipJoint", (B.LEFT_HIP,), LEFT),
    _JointSpec("LeftLeg", "LeftUpLeg", (B.LEFT_KNEE,), DOWN),
    _JointSpec("LeftFoot", "LeftLeg", (B.LEFT_ANKLE,), DOWN),
    _JointSpec("RightHipJoint", "Hips", _MID_HIPS, None),
    _JointSpec("RightUpLeg", "RightHipJoint", (B.RIGHT_HIP,), RIGHT),
    _JointSpec("RightLeg", "RightUpLeg", (B.RIGHT_KNEE,), DOWN),
    _JointSpec("RightFoot", "RightLeg", (B.RIGHT_ANKLE,), DOWN),
)
# End Sites: joint -> (points, T-pose direction)
_END_SITES: dict[str, tuple[_Point, tuple[int, int, int]]] = {
    "Head": ((B.NOSE,), FORWARD),
    "LeftHand": ((B.LEFT_INDEX, B.LEFT_PINKY), LEFT),
    "RightHand": ((B.RIGHT_INDEX, B.RIGHT_PINKY), RIGHT),
    "LeftFoot": ((B.LEFT_FOOT_INDEX,), FORWARD),
    "RightFoot": ((B.RIGHT_FOOT_INDEX,), FORWARD),
}
# Joints whose children all start at one point get a twist from a second direction (a body-wide line).
_TWIST_FROM: dict[str, tuple[_Point, _Point]] = {
    "Hips": ((B.LEFT_HIP,), (B.RIGHT_HIP,)),
    "Spine": ((B.LEFT_SHOULDER,), (B.RIGHT_SHOULDER,)),
}
JOINT_NAMES: tuple[str, ...] = tuple(j.name for j in _JOINTS)


@dataclass
class BvhExportOptions:
    root_motion: bool = False  # move the root along the hip centre's world position (MediaPipe: ~0)
    end_sites: bool = True


@dataclass
class BvhJoint:
    name: str
    parent: int  # -1 for the root
    offset: np.ndarray  # (3,)
    channels: list[str]
    end_site: np.ndarray | None = None  # (3,) offset of the End Site, when present


@dataclass
class BvhMotion:
    """A parsed BVH: joints in file order (parents before children), motion (frames, channels), frame time."""

    joints: list[BvhJoint]
    frames: np.ndarray  # (F, total channels) float64
    frame_time_s: float
    channel_start: list[int] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time_s if self.frame_time_s > 0 else 0.0

    def index(self, name: str) -> int:
        for i, j in enumerate(self.joints):
            if j.name == name:
                return i
        raise InputError("bvh.joint", f"no joint named {name!r}", limit=[j.name for j in self.joints], actual=name)

    def local_transforms(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """Per joint (J, 3, 3) local rotations and (J, 3) local translations of one frame."""
        n = len(self.joints)
        rots = np.tile(np.eye(3), (n, 1, 1))
        trans = np.zeros((n, 3))
        row = self.frames[frame]
        for i, j in enumerate(self.joints):
            r = np.eye(3)
            t = j.offset.astype(np.float64).copy()
            pos_channels = {}
            for k, ch in enumerate(j.channels):
                v = float(row[self.channel_start[i] + k])
                axis = ch[0].upper()
                if ch.lower().endswith("rotation"):
                    r = r @ _axis_rotation(axis, math.radians(v))
                else:
                    pos_channels[axis] = v
            # Position channels give the joint's translation (the common reading: the root's OFFSET is 0).
            for a, v in pos_channels.items():
                t["XYZ".index(a)] = v
            rots[i], trans[i] = r, t
        return rots, trans

    def global_transforms(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """Per joint (J, 3, 3) world rotations and (J, 3) world positions (forward kinematics)."""
        local_r, local_t = self.local_transforms(frame)
        n = len(self.joints)
        gr = np.zeros((n, 3, 3))
        gp = np.zeros((n, 3))
        for i, j in enumerate(self.joints):
            if j.parent < 0:
                gr[i], gp[i] = local_r[i], local_t[i]
            else:
                gr[i] = gr[j.parent] @ local_r[i]
                gp[i] = gp[j.parent] + gr[j.parent] @ local_t[i]
        return gr, gp

    def positions(self) -> np.ndarray:
        """(F, J, 3) joint positions in the file's units."""
        return np.stack([self.global_transforms(f)[1] for f in range(len(self.frames))]) if len(self.frames) \
            else np.zeros((0, len(self.joints), 3))

    def end_site_positions(self) -> dict[str, np.ndarray]:
        """Joint name -> (F, 3) position of its End Site."""
        out: dict[str, list[np.ndarray]] = {j.name: [] for j in self.joints if j.end_site is not None}
        for f in range(len(self.frames)):
            gr, gp = self.global_transforms(f)
            for i, j in enumerate(self.joints):
                if j.end_site is not None:
                    out[j.name].append(gp[i] + gr[i] @ j.end_site)
        return {k: np.array(v) for k, v in out.items()}


def _axis_rotation(axis: str, rad: float) -> np.ndarray:
    c, s = math.cos(rad), math.sin(rad)
    if axis == "X":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "Y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    if axis == "Z":
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    raise InputError("bvh.channel", "unknown rotation axis", limit="X|Y|Z", actual=axis)


def euler_zxy_deg(r: np.ndarray) -> tuple[float, float, float]:
    """(z, x, y) degrees with ``r == Rz(z) @ Rx(x) @ Ry(y)`` (the order of ``Zrotation Xrotation Yrotation``)."""
    sx = float(np.clip(r[2, 1], -1.0, 1.0))
    x = math.asin(sx)
    if abs(sx) < 1.0 - 1e-9:
        y = math.atan2(-r[2, 0], r[2, 2])
        z = math.atan2(-r[0, 1], r[1, 1])
    else:  # gimbal lock: x = +-90 degrees; put the whole remaining turn into z
        y = 0.0
        z = math.atan2(r[1, 0], r[0, 0])
    return math.degrees(z), math.degrees(x), math.degrees(y)


# --- export ----------------------------------------------------------------------------------------------


def _points_cm(world: np.ndarray) -> np.ndarray:
    return world[:, :3].astype(np.float64) * METRES_TO_CM * _WORLD_TO_BVH


def _point(p: np.ndarray, idx: _Point) -> np.ndarray:
    return p[list(idx)].mean(axis=0)


def _joint_positions(p: np.ndarray) -> dict[str, np.ndarray]:
    pos = {j.name: _point(p, j.point) for j in _JOINTS}
    for name, (idx, _d) in _END_SITES.items():
        pos[name + "/End"] = _point(p, idx)
    return pos


def _valid_frames(seq: SkeletonSequence) -> list[int]:
    return [i for i, f in enumerate(seq.frames)
            if f.present and f.world is not None and np.isfinite(f.world[:, :3]).all()]


def rest_bone_lengths_cm(seq: SkeletonSequence) -> dict[str, float]:
    """Median length (cm) of the bone ending at each joint / End Site (key ``<joint>/End``)."""
    valid = _valid_frames(seq)
    if not valid:
        raise InputError("bvh.no_frames", "the sequence has no frame with world landmarks", limit=">= 1", actual=0)
    samples: dict[str, list[float]] = {}
    for i in valid:
        world = seq.frames[i].world
        if world is None:
            continue
        pos = _joint_positions(_points_cm(world))
        for j in _JOINTS:
            if j.parent is not None and j.rest_dir is not None:
                samples.setdefault(j.name, []).append(float(np.linalg.norm(pos[j.name] - pos[j.parent])))
        for name in _END_SITES:
            samples.setdefault(name + "/End", []).append(float(np.linalg.norm(pos[name + "/End"] - pos[name])))
    return {k: float(np.median(v)) for k, v in samples.items()}


def _rest_offsets(lengths: dict[str, float]) -> dict[str, np.ndarray]:
    off: dict[str, np.ndarray] = {}
    for j in _JOINTS:
        off[j.name] = np.zeros(3) if j.rest_dir is None else np.array(j.rest_dir, float) * lengths[j.name]
    for name, (_idx, d) in _END_SITES.items():
        off[name + "/End"] = np.array(d, float) * lengths[name + "/End"]
    return off


def _unit(v: np.ndarray) -> np.ndarray | None:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 else None


def _align(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking unit vector ``a`` onto unit vector ``b``."""
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    if c < -1.0 + 1e-9:  # opposite: turn half way round any axis perpendicular to a
        axis = np.cross(a, [1.0, 0.0, 0.0])
        if np.linalg.norm(axis) < 1e-6:
            axis = np.cross(a, [0.0, 1.0, 0.0])
        axis /= np.linalg.norm(axis)
        return 2.0 * np.outer(axis, axis) - np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


def _frame_from(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray | None:
    """An orthonormal frame (columns) whose first axis is ``primary`` and second lies towards ``secondary``."""
    a = _unit(primary)
    if a is None:
        return None
    b = _unit(secondary - np.dot(secondary, a) * a)
    if b is None:
        return None
    return np.stack([a, b, np.cross(a, b)], axis=1)


def _children(name: str) -> list[str]:
    return [j.name for j in _JOINTS if j.parent == name] + ([name + "/End"] if name in _END_SITES else [])


def _global_rotations(pos: dict[str, np.ndarray], rest: dict[str, np.ndarray], p: np.ndarray,
                      previous: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """World rotation of every joint taking its T-pose offsets onto this frame's bone directions."""
    out: dict[str, np.ndarray] = {}
    for j in _JOINTS:
        kids = [c for c in _children(j.name) if np.linalg.norm(rest[c]) > 0]
        r: np.ndarray | None = None
        if kids:
            # All non-zero children of a joint start at one point (see the module docstring): one direction.
            cur = _unit(pos[kids[0]] - pos[j.name])
            rd = _unit(rest[kids[0]])
            if cur is not None and rd is not None:
                if j.name in _TWIST_FROM:
                    left, right = _TWIST_FROM[j.name]
                    f_cur = _frame_from(cur, _point(p, left) - _point(p, right))
                    f_rest = _frame_from(rd, np.array(LEFT, float))
                    r = f_cur @ f_rest.T if f_cur is not None and f_rest is not None else None
                if r is None:
                    r = _align(rd, cur)
        elif j.parent is not None:
            r = out.get(j.parent)  # a zero-offset joint with zero-offset children follows its parent
        out[j.name] = r if r is not None else previous.get(j.name, np.eye(3))
    return out


def export_bvh(seq: SkeletonSequence, path: str | pathlib.Path | None = None,
               options: BvhExportOptions | None = None) -> str:
    """BVH text of ``seq``'s 3D world landmarks (written to ``path`` when given)."""
    opts = options or BvhExportOptions()
    if seq.fps <= 0:
        raise InputError("bvh.fps", "the sequence has no frame rate", limit="> 0", actual=seq.fps)
    lengths = rest_bone_lengths_cm(seq)
    rest = _rest_offsets(lengths)
    lines = ["HIERARCHY"]
    _write_joint(lines, "Hips", rest, 0, opts)
    lines += ["MOTION", f"Frames: {len(seq.frames)}", f"Frame Time: {1.0 / seq.fps:.8f}"]
    previous: dict[str, np.ndarray] = {}
    last_root = np.zeros(3)
    for f in seq.frames:
        if f.present and f.world is not None and np.isfinite(f.world[:, :3]).all():
            p = _points_cm(f.world)
            pos = _joint_positions(p)
            g = _global_rotations(pos, rest, p, previous)
            previous = g
            last_root = pos["Hips"] if opts.root_motion else np.zeros(3)
        else:
            g = previous or {j.name: np.eye(3) for j in _JOINTS}
        values = [*last_root]
        for j in _JOINTS:
            parent_r = g[j.parent] if j.parent is not None else np.eye(3)
            values += euler_zxy_deg(parent_r.T @ g[j.name])
        lines.append(" ".join(f"{v:.5f}" for v in values))
    text = "\n".join(lines) + "\n"
    if path is not None:
        from motion.storage.atomic import atomic_write_bytes

        atomic_write_bytes(pathlib.Path(path), text.encode())
    return text


def _write_joint(lines: list[str], name: str, rest: dict[str, np.ndarray], depth: int,
                 opts: BvhExportOptions) -> None:
    pad = "\t" * depth
    spec = next(j for j in _JOINTS if j.name == name)
    lines.append(f"{pad}{'ROOT' if spec.parent is None else 'JOINT'} {name}")
    lines.append(f"{pad}{{")
    o = rest[name]
    lines.append(f"{pad}\tOFFSET {o[0]:.5f} {o[1]:.5f} {o[2]:.5f}")
    if spec.parent is None:
        lines.append(f"{pad}\tCHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation")
    else:
        lines.append(f"{pad}\tCHANNELS 3 Zrotation Xrotation Yrotation")
    for child in [j.name for j in _JOINTS if j.parent == name]:
        _write_joint(lines, child, rest, depth + 1, opts)
    if name in _END_SITES and opts.end_sites:
        e = rest[name + "/End"]
        lines += [f"{pad}\tEnd Site", f"{pad}\t{{", f"{pad}\t\tOFFSET {e[0]:.5f} {e[1]:.5f} {e[2]:.5f}", f"{pad}\t}}"]
    lines.append(f"{pad}}}")


def reference_positions_cm(seq: SkeletonSequence, frame: int) -> dict[str, np.ndarray]:
    """The source joint positions (cm, BVH axes) rebuilt with the T-pose bone lengths: what FK must give back."""
    world = seq.frames[frame].world
    if world is None:
        raise InputError("bvh.no_frames", "the frame has no world landmarks", limit="world", actual=None)
    rest = _rest_offsets(rest_bone_lengths_cm(seq))
    pos = _joint_positions(_points_cm(world))
    out: dict[str, np.ndarray] = {"Hips": np.zeros(3)}
    for j in _JOINTS[1:]:
        if j.parent is None:
            continue
        d = _unit(pos[j.name] - pos[j.parent])
        length = float(np.linalg.norm(rest[j.name]))
        out[j.name] = out[j.parent] + (d * length if d is not None and length > 0 else 0.0)
    for name in _END_SITES:
        d = _unit(pos[name + "/End"] - pos[name])
        out[name + "/End"] = out[name] + (d * float(np.linalg.norm(rest[name + "/End"])) if d is not None else 0.0)
    return out


# --- import ----------------------------------------------------------------------------------------------


def parse_bvh(text: str) -> BvhMotion:
    """Parses BVH text (HIERARCHY + MOTION)."""
    tokens = text.split()
    pos = 0

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise InputError("bvh.syntax", "unexpected end of file", limit="complete BVH", actual=pos)
        t = tokens[pos]
        pos += 1
        return t

    def expect(word: str) -> None:
        t = take()
        if t != word:
            raise InputError("bvh.syntax", f"expected {word!r}", limit=word, actual=t)

    def number() -> float:
        t = take()
        try:
            return float(t)
        except ValueError as e:
            raise InputError("bvh.syntax", "expected a number", limit="number", actual=t) from e

    joints: list[BvhJoint] = []
    expect("HIERARCHY")
    expect("ROOT")
    stack: list[int] = []
    name = take()
    while True:
        expect("{")
        expect("OFFSET")
        offset = np.array([number(), number(), number()])
        channels: list[str] = []
        if tokens[pos] == "CHANNELS":
            take()
            n = int(number())
            channels = [take() for _ in range(n)]
        for ch in channels:
            if ch not in ("Xposition", "Yposition", "Zposition", "Xrotation", "Yrotation", "Zrotation"):
                raise InputError("bvh.channel", "unknown channel", limit="[XYZ](position|rotation)", actual=ch)
        joints.append(BvhJoint(name, stack[-1] if stack else -1, offset, channels))
        stack.append(len(joints) - 1)
        # Close finished joints and End Sites until the next JOINT (or MOTION) begins.
        while True:
            t = take()
            if t == "JOINT":
                name = take()
                break
            if t == "End":
                take()  # "Site"
                expect("{")
                expect("OFFSET")
                joints[stack[-1]].end_site = np.array([number(), number(), number()])
                expect("}")
            elif t == "}":
                stack.pop()
                if not stack:
                    break
            else:
                raise InputError("bvh.syntax", "unexpected token in HIERARCHY", limit="JOINT|End|}", actual=t)
        if not stack:
            break
    expect("MOTION")
    expect("Frames:")
    n_frames = int(number())
    expect("Frame")
    expect("Time:")
    frame_time = number()
    starts, total = [], 0
    for j in joints:
        starts.append(total)
        total += len(j.channels)
    values = tokens[pos:pos + n_frames * total]
    if len(values) != n_frames * total:
        raise InputError("bvh.frames", "motion data is shorter than Frames x channels",
                         limit=n_frames * total, actual=len(values))
    try:
        data = np.array(values, dtype=np.float64).reshape(n_frames, total)
    except ValueError as e:
        raise InputError("bvh.syntax", "motion data holds a non-number", limit="numbers", actual=str(e)) from e
    return BvhMotion(joints, data, frame_time, starts)


def read_bvh(path: str | pathlib.Path) -> BvhMotion:
    return parse_bvh(pathlib.Path(path).read_text())
