"""The in-memory ``CharacterRig``: a character image analysed for animation.

Joints are in the character image's pixels (x right, y down), named with BlazePose landmark names in
lower case (``left_shoulder``), plus derived joints: ``hip_center``, ``shoulder_center`` and, when
known, ``head_top``. Bones follow :data:`motion.skeleton.BODY_BONES` (the spine runs from
``hip_center`` to ``shoulder_center``, the neck from ``shoulder_center`` to ``nose``) plus a ``head``
bone (``nose`` -> ``head_top``) when the head top is known.

Images travel separately from the protobuf: ``save()`` stores the mask, texture and background as
content-addressed PNGs and the proto refers to them; ``to_bytes()`` is a self-contained container
(proto + embedded PNGs) for the in-process path.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from motion.errors import InputError
from motion.skeleton import BODY_BONES, N_FACE, N_HAND, landmark_name
from motion.v1 import common_pb2, rig_pb2

# Derived (virtual) joints.
HIP_CENTER = "hip_center"
SHOULDER_CENTER = "shoulder_center"
HEAD_TOP = "head_top"

FACINGS = ("front", "left", "right", "back")
_FACING_TO_PB = {
    "front": rig_pb2.FACING_FRONT, "left": rig_pb2.FACING_LEFT,
    "right": rig_pb2.FACING_RIGHT, "back": rig_pb2.FACING_BACK,
}
_PB_TO_FACING = {v: k for k, v in _FACING_TO_PB.items()}

# Container for to_bytes(): magic, then four length-prefixed blobs (proto, mask, texture, background).
_MAGIC = b"MCRIG\x00\x01\x00"
_LEN = struct.Struct("<Q")


def _virtual_name(index: int) -> str:
    # BODY_BONES uses -1 for the hip centre and -2 for the shoulder centre.
    if index == -1:
        return HIP_CENTER
    if index == -2:
        return SHOULDER_CENTER
    return landmark_name(index)


def _spine_parent(name: str, parent: int, child: int) -> tuple[str, str]:
    if name == "spine":
        return HIP_CENTER, SHOULDER_CENTER
    return _virtual_name(parent), _virtual_name(child)


# (bone name, parent joint, child joint) by joint name: BODY_BONES plus the head bone.
BONE_JOINTS: tuple[tuple[str, str, str], ...] = tuple(
    (name, *_spine_parent(name, p, c)) for name, p, c in BODY_BONES
) + (("head", "nose", HEAD_TOP),)


@dataclass
class RigBone:
    name: str
    parent_joint: str
    child_joint: str
    length_px: float
    rest_angle_rad: float  # atan2(dy, dx) of parent -> child in the image (y down)


def add_derived_joints(joints: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """Returns a copy with ``hip_center`` and ``shoulder_center`` added where both sides are known."""
    out = dict(joints)
    for centre, a, b in ((HIP_CENTER, "left_hip", "right_hip"),
                         (SHOULDER_CENTER, "left_shoulder", "right_shoulder")):
        if centre not in out and a in out and b in out:
            out[centre] = ((out[a][0] + out[b][0]) / 2.0, (out[a][1] + out[b][1]) / 2.0)
    return out


def build_bones(joints: dict[str, tuple[float, float]]) -> list[RigBone]:
    """Bones whose two joints are both known, with their rest length and angle."""
    bones: list[RigBone] = []
    for name, parent, child in BONE_JOINTS:
        if parent not in joints or child not in joints:
            continue
        (x0, y0), (x1, y1) = joints[parent], joints[child]
        dx, dy = float(x1 - x0), float(y1 - y0)
        bones.append(RigBone(name, parent, child, math.hypot(dx, dy), math.atan2(dy, dx)))
    return bones


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a (H,W) gray, (H,W,3) RGB or (H,W,4) RGBA uint8 array (deterministic)."""
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    # zlib level 1: a detailed 704x1216 character's three images take 110 ms instead of 440 ms at level 6 for
    # 15 % more bytes; the rig is built while pose runs, on the same cores.
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError(f"PNG encoding failed for an array of shape {image.shape}")
    return buf.tobytes()


def decode_png(data: bytes, channels: int) -> np.ndarray:
    """Decodes PNG bytes to (H,W) when channels == 1, else (H,W,channels) RGB/RGBA uint8."""
    flag = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_UNCHANGED
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flag)
    if img is None:
        raise InputError("rig.corrupt", "a rig image is not a readable PNG", actual=len(data))
    if channels == 1:
        return np.asarray(img, dtype=np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if channels == 3:
        return cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB)
    if img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2BGRA)
    return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)


def _points_to_pb(arr: np.ndarray | None) -> list[common_pb2.Keypoint]:
    if arr is None:
        return []
    a = np.asarray(arr, dtype=np.float32)
    pad = np.zeros((a.shape[0], 5), dtype=np.float32)
    pad[:, : min(5, a.shape[1])] = a[:, :5]
    return [common_pb2.Keypoint(x=float(r[0]), y=float(r[1]), z=float(r[2]), visibility=float(r[3]),
                                presence=float(r[4])) for r in pad]


def _points_from_pb(kps: Any) -> np.ndarray | None:
    if len(kps) == 0:
        return None
    return np.array([(k.x, k.y, k.z, k.visibility, k.presence) for k in kps], dtype=np.float32)


@dataclass
class CharacterRig:
    image_sha256: str
    width: int
    height: int
    joints: dict[str, tuple[float, float]]
    bones: list[RigBone]
    mask: np.ndarray  # (H, W) uint8, 0 or 255
    texture_rgba: np.ndarray  # (H, W, 4) uint8 cut-out, straight alpha, edges cleaned of background colour
    background_rgb: np.ndarray  # (H, W, 3) uint8, the image with the character's hole filled
    facing: str = "front"  # "front" | "left" | "right" | "back"
    height_px: float = 0.0  # top of head to lowest foot (mask extent along the body)
    mask_source: str = ""  # "alpha" | "segmentation" | "threshold" | "override"
    warnings: list[str] = field(default_factory=list)
    missing_parts: list[str] = field(default_factory=list)  # e.g. "legs" for a knee-up crop
    joint_sources: dict[str, str] = field(default_factory=dict)  # name -> "pose" | "override" | "derived"
    left_hand: np.ndarray | None = None  # (21, 5) image pixels, the character's anatomical left hand
    right_hand: np.ndarray | None = None  # (21, 5)
    face: np.ndarray | None = None  # (468, 5)
    options_digest: str = ""
    mesh_ref: common_pb2.ObjectRef | None = None  # opaque renderer data, set by the render service

    # ---- convenience ---------------------------------------------------------------------------------
    def joint(self, name: str) -> np.ndarray:
        """The joint as a float64 (2,) array; raises KeyError when the rig lacks it."""
        return np.asarray(self.joints[name], dtype=np.float64)

    def bone(self, name: str) -> RigBone | None:
        for b in self.bones:
            if b.name == name:
                return b
        return None

    @property
    def bone_lengths(self) -> dict[str, float]:
        return {b.name: b.length_px for b in self.bones}

    # ---- protobuf ------------------------------------------------------------------------------------
    def to_proto(self, mask_ref: common_pb2.ObjectRef | None = None,
                 texture_ref: common_pb2.ObjectRef | None = None,
                 background_ref: common_pb2.ObjectRef | None = None) -> rig_pb2.CharacterRig:
        """The rig as protobuf; images are ObjectRefs (left empty unless given, see ``save``)."""
        msg = rig_pb2.CharacterRig(
            image_sha256=self.image_sha256, width=self.width, height=self.height,
            facing=_FACING_TO_PB.get(self.facing, rig_pb2.FACING_UNSPECIFIED), height_px=self.height_px,
            mask_source=self.mask_source, warnings=list(self.warnings), options_digest=self.options_digest,
            missing_parts=list(self.missing_parts),
        )
        for name in sorted(self.joints):
            x, y = self.joints[name]
            msg.joints.append(rig_pb2.RigJoint(name=name, x=float(x), y=float(y),
                                               source=self.joint_sources.get(name, "")))
        for b in self.bones:
            msg.bones.append(rig_pb2.RigBone(name=b.name, parent_joint=b.parent_joint, child_joint=b.child_joint,
                                             length_px=b.length_px, rest_angle_rad=b.rest_angle_rad))
        for ref, target in ((mask_ref, msg.mask), (texture_ref, msg.texture), (background_ref, msg.background),
                            (self.mesh_ref, msg.mesh)):
            if ref is not None:
                target.CopyFrom(ref)
        msg.left_hand.extend(_points_to_pb(self.left_hand))
        msg.right_hand.extend(_points_to_pb(self.right_hand))
        msg.face.extend(_points_to_pb(self.face))
        return msg

    @classmethod
    def from_proto(cls, msg: rig_pb2.CharacterRig, mask: np.ndarray, texture_rgba: np.ndarray,
                   background_rgb: np.ndarray) -> CharacterRig:
        """Builds the rig from its proto and the three decoded images."""
        shape = (msg.height, msg.width)
        for label, img in (("mask", mask), ("texture", texture_rgba), ("background", background_rgb)):
            if img.shape[:2] != shape:
                raise InputError("rig.image_size", f"the rig's {label} image does not match the rig size",
                                 limit=list(shape), actual=list(img.shape[:2]))
        lh, rh, face = _points_from_pb(msg.left_hand), _points_from_pb(msg.right_hand), _points_from_pb(msg.face)
        return cls(
            image_sha256=msg.image_sha256, width=msg.width, height=msg.height,
            joints={j.name: (float(j.x), float(j.y)) for j in msg.joints},
            bones=[RigBone(b.name, b.parent_joint, b.child_joint, float(b.length_px), float(b.rest_angle_rad))
                   for b in msg.bones],
            mask=mask, texture_rgba=texture_rgba, background_rgb=background_rgb,
            facing=_PB_TO_FACING.get(msg.facing, "front"), height_px=float(msg.height_px),
            mask_source=msg.mask_source, warnings=list(msg.warnings), missing_parts=list(msg.missing_parts),
            joint_sources={j.name: j.source for j in msg.joints if j.source},
            left_hand=lh if lh is not None and len(lh) == N_HAND else None,
            right_hand=rh if rh is not None and len(rh) == N_HAND else None,
            face=face if face is not None and len(face) == N_FACE else None,
            options_digest=msg.options_digest,
            mesh_ref=msg.mesh if msg.HasField("mesh") else None,
        )

    # ---- object store --------------------------------------------------------------------------------
    def save(self, store: Any, prefix: str = "rigs") -> common_pb2.ObjectRef:
        """Stores the three PNGs and the proto content-addressed under ``prefix``; returns the proto's ref."""
        refs = [store.put_content_addressed(encode_png(img), f"{prefix}/images", ".png", "image/png")
                for img in (self.mask, self.texture_rgba, self.background_rgb)]
        data = self.to_proto(*refs).SerializeToString(deterministic=True)
        ref: common_pb2.ObjectRef = store.put_content_addressed(data, prefix, ".pb", "application/x-protobuf")
        return ref

    @classmethod
    def load(cls, store: Any, ref: Any) -> CharacterRig:
        """Reads a rig written by ``save`` (``ref`` is its ObjectRef or key)."""
        msg = rig_pb2.CharacterRig()
        msg.ParseFromString(store.get_bytes(ref))
        for label, r in (("mask", msg.mask), ("texture", msg.texture), ("background", msg.background)):
            if not r.key:
                raise InputError("rig.missing_image", f"the stored rig has no {label} image reference",
                                 limit="ObjectRef with a key", actual="")
        return cls.from_proto(msg, decode_png(store.get_bytes(msg.mask), 1),
                              decode_png(store.get_bytes(msg.texture), 4),
                              decode_png(store.get_bytes(msg.background), 3))

    # ---- self-contained bytes ------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """Proto + embedded PNGs in one blob (deterministic for the same rig)."""
        blobs = [self.to_proto().SerializeToString(deterministic=True), encode_png(self.mask),
                 encode_png(self.texture_rgba), encode_png(self.background_rgb)]
        return _MAGIC + b"".join(_LEN.pack(len(b)) + b for b in blobs)

    @classmethod
    def from_bytes(cls, data: bytes) -> CharacterRig:
        if not data.startswith(_MAGIC):
            raise InputError("rig.format", "not a CharacterRig container", limit=_MAGIC.hex(),
                             actual=data[: len(_MAGIC)].hex())
        pos, blobs = len(_MAGIC), []
        for _ in range(4):
            if pos + _LEN.size > len(data):
                raise InputError("rig.corrupt", "CharacterRig container is truncated", limit=pos + _LEN.size,
                                 actual=len(data))
            (n,) = _LEN.unpack_from(data, pos)
            pos += _LEN.size
            if pos + n > len(data):
                raise InputError("rig.corrupt", "CharacterRig container is truncated", limit=pos + n,
                                 actual=len(data))
            blobs.append(data[pos: pos + n])
            pos += n
        msg = rig_pb2.CharacterRig()
        msg.ParseFromString(blobs[0])
        return cls.from_proto(msg, decode_png(blobs[1], 1), decode_png(blobs[2], 4), decode_png(blobs[3], 3))
