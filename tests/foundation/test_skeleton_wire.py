"""Skeleton serialisation: the numpy-built keypoint wire bytes give the same message and bytes as building
Keypoint objects one by one, including zeros, negative zero, NaN and float64 input."""

from __future__ import annotations

import numpy as np

from motion.skeleton import (
    Face,
    FaceExpression,
    Hand,
    SkeletonFrame,
    SkeletonSequence,
    _kps_wire,
)
from motion.v1 import common_pb2, skeleton_pb2


def _kps_to_pb(arr: np.ndarray) -> list[common_pb2.Keypoint]:
    """The reference: one Keypoint object per row."""
    return [common_pb2.Keypoint(x=float(r[0]), y=float(r[1]), z=float(r[2]), visibility=float(r[3]),
                                presence=float(r[4])) for r in arr]


def _points(rng: np.random.Generator, n: int, dtype: type = np.float32) -> np.ndarray:
    arr = rng.normal(0.0, 300.0, (n, 5)).astype(dtype)
    arr[::7, 2] = 0.0  # proto3 leaves zero fields off the wire
    arr[3, 1] = -0.0
    arr[5, 4] = np.nan
    return arr


def test_wire_keypoints_equal_object_keypoints_with_special_values() -> None:
    rng = np.random.default_rng(4)
    for dtype in (np.float32, np.float64):
        pts = _points(rng, 33, dtype)
        a = skeleton_pb2.SkeletonFrame()
        a.body.extend(_kps_to_pb(pts))
        b = skeleton_pb2.SkeletonFrame()
        b.MergeFromString(_kps_wire(pts, 4))
        assert a.SerializeToString(deterministic=True) == b.SerializeToString(deterministic=True)
        assert len(b.body) == 33
    assert _kps_wire(None, 4) == b"" and _kps_wire(np.zeros((0, 5)), 4) == b""


def test_sequence_round_trips_with_hands_face_and_missing_frames() -> None:
    rng = np.random.default_rng(5)
    frames = [SkeletonFrame.missing(0, 0.0)]
    for i in range(1, 4):
        frames.append(SkeletonFrame(
            index=i, timestamp_s=i / 30.0, present=True, body=_points(rng, 33), world=_points(rng, 33),
            left_hand=Hand(_points(rng, 21), "left", 0.9, _points(rng, 21)),
            right_hand=Hand(_points(rng, 21), "right", 0.8, None) if i % 2 else None,
            face=Face(_points(rng, 468), 0.7, FaceExpression(jaw_open=0.3, head_yaw_deg=-12.0)),
            score=0.95, track_id=1, mirrored=bool(i % 2)))
    seq = SkeletonSequence(fps=30.0, width=640, height=480, frames=frames)
    data = seq.to_bytes()
    back = SkeletonSequence.from_bytes(data)
    assert back.to_bytes() == data
    for f, g in zip(seq.frames, back.frames, strict=True):
        for name in ("body", "world"):
            x, y = getattr(f, name), getattr(g, name)
            assert (x is None) == (y is None)
            if x is not None:
                np.testing.assert_array_equal(x, y)  # NaN == NaN here; -0.0 == 0.0 numerically
        if f.face is not None:
            assert g.face is not None
            np.testing.assert_array_equal(f.face.landmarks, g.face.landmarks)
            assert g.face.expression.head_yaw_deg == -12.0
        assert (f.right_hand is None) == (g.right_hand is None)
        assert g.mirrored == f.mirrored
