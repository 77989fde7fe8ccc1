"""Skeleton topology (BlazePose 33 body points, 21 hand points, 468 face points) and the in-memory
``SkeletonSequence`` shared by every stage, with conversions to protobuf and to the documented JSON form.

Every landmark array has shape (N, 5): x, y, z, visibility, presence. Image points are pixels of the
sequence's frame (z in the same scale as x); world points are metres with the origin at the hip centre.
"""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np

from motion.v1 import skeleton_pb2

N_BODY = 33
N_HAND = 21
N_FACE = 468
KP_DIM = 5  # x, y, z, visibility, presence

JSON_FORMAT = "motion-control/skeleton-sequence"
JSON_VERSION = 1


class BodyLandmark(IntEnum):
    NOSE = 0
    LEFT_EYE_INNER = 1
    LEFT_EYE = 2
    LEFT_EYE_OUTER = 3
    RIGHT_EYE_INNER = 4
    RIGHT_EYE = 5
    RIGHT_EYE_OUTER = 6
    LEFT_EAR = 7
    RIGHT_EAR = 8
    MOUTH_LEFT = 9
    MOUTH_RIGHT = 10
    LEFT_SHOULDER = 11
    RIGHT_SHOULDER = 12
    LEFT_ELBOW = 13
    RIGHT_ELBOW = 14
    LEFT_WRIST = 15
    RIGHT_WRIST = 16
    LEFT_PINKY = 17
    RIGHT_PINKY = 18
    LEFT_INDEX = 19
    RIGHT_INDEX = 20
    LEFT_THUMB = 21
    RIGHT_THUMB = 22
    LEFT_HIP = 23
    RIGHT_HIP = 24
    LEFT_KNEE = 25
    RIGHT_KNEE = 26
    LEFT_ANKLE = 27
    RIGHT_ANKLE = 28
    LEFT_HEEL = 29
    RIGHT_HEEL = 30
    LEFT_FOOT_INDEX = 31
    RIGHT_FOOT_INDEX = 32


class HandLandmark(IntEnum):
    WRIST = 0
    THUMB_CMC = 1
    THUMB_MCP = 2
    THUMB_IP = 3
    THUMB_TIP = 4
    INDEX_FINGER_MCP = 5
    INDEX_FINGER_PIP = 6
    INDEX_FINGER_DIP = 7
    INDEX_FINGER_TIP = 8
    MIDDLE_FINGER_MCP = 9
    MIDDLE_FINGER_PIP = 10
    MIDDLE_FINGER_DIP = 11
    MIDDLE_FINGER_TIP = 12
    RING_FINGER_MCP = 13
    RING_FINGER_PIP = 14
    RING_FINGER_DIP = 15
    RING_FINGER_TIP = 16
    PINKY_MCP = 17
    PINKY_PIP = 18
    PINKY_DIP = 19
    PINKY_TIP = 20


B = BodyLandmark
H = HandLandmark

BODY_CONNECTIONS: tuple[tuple[int, int], ...] = (
    (B.NOSE, B.LEFT_EYE_INNER), (B.LEFT_EYE_INNER, B.LEFT_EYE), (B.LEFT_EYE, B.LEFT_EYE_OUTER),
    (B.LEFT_EYE_OUTER, B.LEFT_EAR), (B.NOSE, B.RIGHT_EYE_INNER), (B.RIGHT_EYE_INNER, B.RIGHT_EYE),
    (B.RIGHT_EYE, B.RIGHT_EYE_OUTER), (B.RIGHT_EYE_OUTER, B.RIGHT_EAR), (B.MOUTH_LEFT, B.MOUTH_RIGHT),
    (B.LEFT_SHOULDER, B.RIGHT_SHOULDER), (B.LEFT_SHOULDER, B.LEFT_ELBOW), (B.LEFT_ELBOW, B.LEFT_WRIST),
    (B.LEFT_WRIST, B.LEFT_PINKY), (B.LEFT_WRIST, B.LEFT_INDEX), (B.LEFT_WRIST, B.LEFT_THUMB),
    (B.LEFT_PINKY, B.LEFT_INDEX), (B.RIGHT_SHOULDER, B.RIGHT_ELBOW), (B.RIGHT_ELBOW, B.RIGHT_WRIST),
    (B.RIGHT_WRIST, B.RIGHT_PINKY), (B.RIGHT_WRIST, B.RIGHT_INDEX), (B.RIGHT_WRIST, B.RIGHT_THUMB),
    (B.RIGHT_PINKY, B.RIGHT_INDEX), (B.LEFT_SHOULDER, B.LEFT_HIP), (B.RIGHT_SHOULDER, B.RIGHT_HIP),
    (B.LEFT_HIP, B.RIGHT_HIP), (B.LEFT_HIP, B.LEFT_KNEE), (B.LEFT_KNEE, B.LEFT_ANKLE),
    (B.LEFT_ANKLE, B.LEFT_HEEL), (B.LEFT_HEEL, B.LEFT_FOOT_INDEX), (B.LEFT_ANKLE, B.LEFT_FOOT_INDEX),
    (B.RIGHT_HIP, B.RIGHT_KNEE), (B.RIGHT_KNEE, B.RIGHT_ANKLE), (B.RIGHT_ANKLE, B.RIGHT_HEEL),
    (B.RIGHT_HEEL, B.RIGHT_FOOT_INDEX), (B.RIGHT_ANKLE, B.RIGHT_FOOT_INDEX),
)

HAND_CONNECTIONS: tuple[tuple[int, int], ...] = (
    (H.WRIST, H.THUMB_CMC), (H.THUMB_CMC, H.THUMB_MCP), (H.THUMB_MCP, H.THUMB_IP), (H.THUMB_IP, H.THUMB_TIP),
    (H.WRIST, H.INDEX_FINGER_MCP), (H.INDEX_FINGER_MCP, H.INDEX_FINGER_PIP),
    (H.INDEX_FINGER_PIP, H.INDEX_FINGER_DIP), (H.INDEX_FINGER_DIP, H.INDEX_FINGER_TIP),
    (H.INDEX_FINGER_MCP, H.MIDDLE_FINGER_MCP), (H.MIDDLE_FINGER_MCP, H.MIDDLE_FINGER_PIP),
    (H.MIDDLE_FINGER_PIP, H.MIDDLE_FINGER_DIP), (H.MIDDLE_FINGER_DIP, H.MIDDLE_FINGER_TIP),
    (H.MIDDLE_FINGER_MCP, H.RING_FINGER_MCP), (H.RING_FINGER_MCP, H.RING_FINGER_PIP),
    (H.RING_FINGER_PIP, H.RING_FINGER_DIP), (H.RING_FINGER_DIP, H.RING_FINGER_TIP),
    (H.RING_FINGER_MCP, H.PINKY_MCP), (H.WRIST, H.PINKY_MCP), (H.PINKY_MCP, H.PINKY_PIP),
    (H.PINKY_PIP, H.PINKY_DIP), (H.PINKY_DIP, H.PINKY_TIP),
)

# The 12 limb joints used for PCK accuracy figures.
LIMB_JOINTS: tuple[int, ...] = (
    B.LEFT_SHOULDER, B.RIGHT_SHOULDER, B.LEFT_ELBOW, B.RIGHT_ELBOW, B.LEFT_WRIST, B.RIGHT_WRIST,
    B.LEFT_HIP, B.RIGHT_HIP, B.LEFT_KNEE, B.RIGHT_KNEE, B.LEFT_ANKLE, B.RIGHT_ANKLE,
)

# The body's bones as (name, parent joint, child joint); the rig and the retargeter share this list.
BODY_BONES: tuple[tuple[str, int, int], ...] = (
    ("spine", -1, -1),  # hip centre -> shoulder centre (virtual joints, see hip_center/shoulder_center)
    ("neck", -2, B.NOSE),  # shoulder centre -> nose
    ("left_upper_arm", B.LEFT_SHOULDER, B.LEFT_ELBOW),
    ("left_forearm", B.LEFT_ELBOW, B.LEFT_WRIST),
    ("right_upper_arm", B.RIGHT_SHOULDER, B.RIGHT_ELBOW),
    ("right_forearm", B.RIGHT_ELBOW, B.RIGHT_WRIST),
    ("left_thigh", B.LEFT_HIP, B.LEFT_KNEE),
    ("left_shin", B.LEFT_KNEE, B.LEFT_ANKLE),
    ("right_thigh", B.RIGHT_HIP, B.RIGHT_KNEE),
    ("right_shin", B.RIGHT_KNEE, B.RIGHT_ANKLE),
)


def landmark_name(index: int) -> str:
    return BodyLandmark(index).name.lower()


def _empty(n: int) -> np.ndarray:
    return np.zeros((n, KP_DIM), dtype=np.float32)


@dataclass
class FaceExpression:
    jaw_open: float = 0.0
    left_eye_open: float = 1.0
    right_eye_open: float = 1.0
    head_yaw_deg: float = 0.0
    head_pitch_deg: float = 0.0
    head_roll_deg: float = 0.0


@dataclass
class Hand:
    landmarks: np.ndarray  # (21, 5) pixels
    handedness: str = "left"  # the performer's anatomical hand: "left" or "right"
    score: float = 0.0
    world: np.ndarray | None = None  # (21, 5) metres


@dataclass
class Face:
    landmarks: np.ndarray  # (468, 5) pixels
    score: float = 0.0
    expression: FaceExpression = field(default_factory=FaceExpression)


@dataclass
class SkeletonFrame:
    index: int
    timestamp_s: float
    present: bool = False
    body: np.ndarray | None = None  # (33, 5) pixels
    world: np.ndarray | None = None  # (33, 5) metres
    left_hand: Hand | None = None
    right_hand: Hand | None = None
    face: Face | None = None
    score: float = 0.0
    track_id: int = 0
    left_foot_contact: bool = False
    right_foot_contact: bool = False
    body_yaw_deg: float = 0.0
    mirrored: bool = False

    @staticmethod
    def missing(index: int, timestamp_s: float) -> SkeletonFrame:
        return SkeletonFrame(index=index, timestamp_s=timestamp_s, present=False)


SPACE_VIDEO = "video_pixels"
SPACE_CHARACTER = "character_pixels"
_SPACE_TO_PB = {
    SPACE_VIDEO: skeleton_pb2.COORDINATE_SPACE_VIDEO_PIXELS,
    SPACE_CHARACTER: skeleton_pb2.COORDINATE_SPACE_CHARACTER_PIXELS,
}
_PB_TO_SPACE = {v: k for k, v in _SPACE_TO_PB.items()}


@dataclass
class SkeletonSequence:
    fps: float
    width: int
    height: int
    frames: list[SkeletonFrame] = field(default_factory=list)
    source_sha256: str = ""
    space: str = SPACE_VIDEO
    options_digest: str = ""
    trimmed_s: float = 0.0
    source_duration_s: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def duration_s(self) -> float:
        return len(self.frames) / self.fps if self.fps > 0 else 0.0

    def body_array(self) -> np.ndarray:
        """(T, 33, 5) body landmarks; frames without a person are NaN."""
        out = np.full((len(self.frames), N_BODY, KP_DIM), np.nan, dtype=np.float32)
        for i, f in enumerate(self.frames):
            if f.present and f.body is not None:
                out[i] = f.body
        return out

    # ---- protobuf -------------------------------------------------------------------------
    def to_proto(self) -> skeleton_pb2.SkeletonSequence:
        msg = skeleton_pb2.SkeletonSequence(
            fps=self.fps, width=self.width, height=self.height, source_sha256=self.source_sha256,
            space=_SPACE_TO_PB.get(self.space, skeleton_pb2.COORDINATE_SPACE_UNSPECIFIED),
            options_digest=self.options_digest, trimmed_s=self.trimmed_s,
            source_duration_s=self.source_duration_s, warnings=list(self.warnings),
        )
        msg.frames.extend(_frame_to_proto(f) for f in self.frames)
        return msg

    @classmethod
    def from_proto(cls, msg: skeleton_pb2.SkeletonSequence) -> SkeletonSequence:
        return cls(
            fps=msg.fps, width=msg.width, height=msg.height, source_sha256=msg.source_sha256,
            space=_PB_TO_SPACE.get(msg.space, SPACE_VIDEO), options_digest=msg.options_digest,
            trimmed_s=msg.trimmed_s, source_duration_s=msg.source_duration_s, warnings=list(msg.warnings),
            frames=[_frame_from_proto(f) for f in msg.frames],
        )

    def to_bytes(self) -> bytes:
        return self.to_proto().SerializeToString(deterministic=True)

    @classmethod
    def from_bytes(cls, data: bytes) -> SkeletonSequence:
        msg = skeleton_pb2.SkeletonSequence()
        msg.ParseFromString(data)
        return cls.from_proto(msg)

    # ---- JSON -----------------------------------------------------------------------------
    def to_json_dict(self) -> dict[str, Any]:
        return {
            "format": JSON_FORMAT, "version": JSON_VERSION, "fps": self.fps, "width": self.width,
            "height": self.height, "space": self.space, "source_sha256": self.source_sha256,
            "options_digest": self.options_digest, "trimmed_s": self.trimmed_s,
            "source_duration_s": self.source_duration_s, "warnings": list(self.warnings),
            "body_landmarks": [b.name.lower() for b in BodyLandmark],
            "frames": [_frame_to_json(f) for f in self.frames],
        }

    @classmethod
    def from_json_dict(cls, d: dict[str, Any]) -> SkeletonSequence:
        if d.get("format") != JSON_FORMAT:
            from motion.errors import InputError

            raise InputError("skeleton.format", f"not a {JSON_FORMAT} document", limit=JSON_FORMAT,
                             actual=d.get("format"))
        return cls(
            fps=float(d["fps"]), width=int(d["width"]), height=int(d["height"]),
            space=d.get("space", SPACE_VIDEO), source_sha256=d.get("source_sha256", ""),
            options_digest=d.get("options_digest", ""), trimmed_s=float(d.get("trimmed_s", 0.0)),
            source_duration_s=float(d.get("source_duration_s", 0.0)), warnings=list(d.get("warnings", [])),
            frames=[_frame_from_json(f) for f in d["frames"]],
        )

    def save_json(self, path: str | pathlib.Path) -> None:
        from motion.storage.atomic import atomic_write_bytes

        atomic_write_bytes(pathlib.Path(path), json.dumps(self.to_json_dict(), separators=(",", ":")).encode())

    @classmethod
    def load_json(cls, path: str | pathlib.Path) -> SkeletonSequence:
        return cls.from_json_dict(json.loads(pathlib.Path(path).read_text()))


# ---- helpers --------------------------------------------------------------------------------------------

# Keypoint's five float fields on the wire: tag bytes (field << 3 | fixed32) each followed by 4 bytes.
_KP_FIELD_TAGS = np.array([(1 << 3) | 5, (2 << 3) | 5, (3 << 3) | 5, (4 << 3) | 5, (5 << 3) | 5], dtype=np.uint8)
_KP_BYTES = 5 * 5  # every field written (explicit zeros parse to the same message as omitted ones)


def _kps_wire(arr: np.ndarray | None, field_number: int) -> bytes:
    """The wire bytes of a ``repeated Keypoint`` field holding ``arr`` (N, 5), built with numpy: parsing them
    into the message (``MergeFromString``) is C work, where constructing 468 Keypoint objects per face in
    Python made serialising a 10 s sequence take ~0.2 s. The message, hence its serialisation, is the same
    as with one Keypoint object per row (float64 input rounds to float32 in both)."""
    if arr is None or len(arr) == 0:
        return b""
    values = np.ascontiguousarray(np.asarray(arr)[:, :KP_DIM], dtype="<f4")
    n = len(values)
    rec = np.empty((n, 2 + _KP_BYTES), dtype=np.uint8)
    rec[:, 0] = (field_number << 3) | 2  # length-delimited sub-message
    rec[:, 1] = _KP_BYTES
    fields = rec[:, 2:].reshape(n, 5, 5)
    fields[:, :, 0] = _KP_FIELD_TAGS
    fields[:, :, 1:] = values.view(np.uint8).reshape(n, 5, 4)
    return rec.tobytes()


def _kps_from_pb(kps: Any, n: int) -> np.ndarray | None:
    if len(kps) == 0:
        return None
    return np.array([(k.x, k.y, k.z, k.visibility, k.presence) for k in kps], dtype=np.float32)


_HANDED_PB = {"left": skeleton_pb2.HANDEDNESS_LEFT, "right": skeleton_pb2.HANDEDNESS_RIGHT}
_PB_HANDED = {v: k for k, v in _HANDED_PB.items()}


def _hand_to_pb(h: Hand | None) -> skeleton_pb2.Hand:
    if h is None:
        return skeleton_pb2.Hand(present=False)
    msg = skeleton_pb2.Hand(present=True, handedness=_HANDED_PB.get(h.handedness, skeleton_pb2.HANDEDNESS_UNSPECIFIED),
                            score=h.score)
    msg.MergeFromString(_kps_wire(h.landmarks, 4) + _kps_wire(h.world, 5))
    return msg


def _hand_from_pb(m: skeleton_pb2.Hand) -> Hand | None:
    if not m.present:
        return None
    lm = _kps_from_pb(m.landmarks, N_HAND)
    return Hand(landmarks=lm if lm is not None else _empty(N_HAND), handedness=_PB_HANDED.get(m.handedness, "left"),
                score=m.score, world=_kps_from_pb(m.world_landmarks, N_HAND))


def _frame_to_proto(f: SkeletonFrame) -> skeleton_pb2.SkeletonFrame:
    msg = skeleton_pb2.SkeletonFrame(
        index=f.index, timestamp_s=f.timestamp_s, present=f.present,
        left_hand=_hand_to_pb(f.left_hand), right_hand=_hand_to_pb(f.right_hand),
        score=f.score, track_id=f.track_id, left_foot_contact=f.left_foot_contact,
        right_foot_contact=f.right_foot_contact, body_yaw_deg=f.body_yaw_deg, mirrored=f.mirrored,
    )
    msg.MergeFromString(_kps_wire(f.body, 4) + _kps_wire(f.world, 5))
    if f.face is not None:
        e = f.face.expression
        face = skeleton_pb2.Face(
            present=True, score=f.face.score,
            expression=skeleton_pb2.FaceExpression(
                jaw_open=e.jaw_open, left_eye_open=e.left_eye_open, right_eye_open=e.right_eye_open,
                head_yaw_deg=e.head_yaw_deg, head_pitch_deg=e.head_pitch_deg, head_roll_deg=e.head_roll_deg))
        face.MergeFromString(_kps_wire(f.face.landmarks, 3))
        msg.face.CopyFrom(face)
    return msg


def _frame_from_proto(m: skeleton_pb2.SkeletonFrame) -> SkeletonFrame:
    face = None
    if m.face.present:
        e = m.face.expression
        lm = _kps_from_pb(m.face.landmarks, N_FACE)
        face = Face(landmarks=lm if lm is not None else _empty(N_FACE), score=m.face.score,
                    expression=FaceExpression(e.jaw_open, e.left_eye_open, e.right_eye_open, e.head_yaw_deg,
                                              e.head_pitch_deg, e.head_roll_deg))
    return SkeletonFrame(
        index=m.index, timestamp_s=m.timestamp_s, present=m.present, body=_kps_from_pb(m.body, N_BODY),
        world=_kps_from_pb(m.world, N_BODY), left_hand=_hand_from_pb(m.left_hand),
        right_hand=_hand_from_pb(m.right_hand), face=face, score=m.score, track_id=m.track_id,
        left_foot_contact=m.left_foot_contact, right_foot_contact=m.right_foot_contact,
        body_yaw_deg=m.body_yaw_deg, mirrored=m.mirrored,
    )


def _arr_to_json(arr: np.ndarray | None) -> list[list[float]] | None:
    if arr is None:
        return None
    return np.round(arr.astype(np.float64), 4).tolist()


def _arr_from_json(v: Any) -> np.ndarray | None:
    if v is None:
        return None
    return np.asarray(v, dtype=np.float32).reshape(-1, KP_DIM)


def _hand_to_json(h: Hand | None) -> dict[str, Any] | None:
    if h is None:
        return None
    return {"handedness": h.handedness, "score": round(float(h.score), 4),
            "landmarks": _arr_to_json(h.landmarks), "world": _arr_to_json(h.world)}


def _hand_from_json(d: dict[str, Any] | None) -> Hand | None:
    if d is None:
        return None
    lm = _arr_from_json(d["landmarks"])
    return Hand(landmarks=lm if lm is not None else _empty(N_HAND), handedness=d.get("handedness", "left"),
                score=float(d.get("score", 0.0)), world=_arr_from_json(d.get("world")))


def _frame_to_json(f: SkeletonFrame) -> dict[str, Any]:
    d: dict[str, Any] = {"index": f.index, "t": round(f.timestamp_s, 6), "present": f.present}
    if not f.present:
        return d
    d.update({
        "score": round(float(f.score), 4), "track_id": f.track_id, "body": _arr_to_json(f.body),
        "world": _arr_to_json(f.world), "left_hand": _hand_to_json(f.left_hand),
        "right_hand": _hand_to_json(f.right_hand),
        "left_foot_contact": f.left_foot_contact, "right_foot_contact": f.right_foot_contact,
        "body_yaw_deg": round(float(f.body_yaw_deg), 3), "mirrored": f.mirrored,
    })
    if f.face is not None:
        d["face"] = {"score": round(float(f.face.score), 4), "landmarks": _arr_to_json(f.face.landmarks),
                     "expression": {k: round(float(v), 4) for k, v in vars(f.face.expression).items()}}
    return d


def _frame_from_json(d: dict[str, Any]) -> SkeletonFrame:
    f = SkeletonFrame(index=int(d["index"]), timestamp_s=float(d["t"]), present=bool(d["present"]))
    if not f.present:
        return f
    f.score = float(d.get("score", 0.0))
    f.track_id = int(d.get("track_id", 0))
    f.body = _arr_from_json(d.get("body"))
    f.world = _arr_from_json(d.get("world"))
    f.left_hand = _hand_from_json(d.get("left_hand"))
    f.right_hand = _hand_from_json(d.get("right_hand"))
    f.left_foot_contact = bool(d.get("left_foot_contact", False))
    f.right_foot_contact = bool(d.get("right_foot_contact", False))
    f.body_yaw_deg = float(d.get("body_yaw_deg", 0.0))
    f.mirrored = bool(d.get("mirrored", False))
    if d.get("face") is not None:
        fd = d["face"]
        lm = _arr_from_json(fd["landmarks"])
        f.face = Face(landmarks=lm if lm is not None else _empty(N_FACE), score=float(fd.get("score", 0.0)),
                      expression=FaceExpression(**fd.get("expression", {})))
    return f
