"""Skeleton overlay drawing, so a person can check an extraction against the video."""

from __future__ import annotations

import pathlib
from types import TracebackType

import cv2
import numpy as np

from motion.media import VideoWriter
from motion.skeleton import BODY_CONNECTIONS, HAND_CONNECTIONS, SkeletonFrame

# RGB colours: performer's left side warm, right side cool, so a left/right swap is visible at a glance.
LEFT_RGB = (255, 140, 0)
RIGHT_RGB = (0, 170, 255)
CENTRE_RGB = (240, 240, 240)
FACE_RGB = (120, 255, 120)
MIN_VISIBILITY = 0.3


def _side_colour(a: int, b: int) -> tuple[int, int, int]:
    # BlazePose: odd indices >= 1 are the performer's left (1..3, 7, 9, 11, ...), even ones the right.
    if a == 0 or b == 0 or {a, b} in ({9, 10}, {11, 12}, {23, 24}):
        return CENTRE_RGB
    return LEFT_RGB if a % 2 == 1 else RIGHT_RGB


def draw_skeleton(rgb: np.ndarray, frame: SkeletonFrame) -> np.ndarray:
    """A copy of `rgb` with the body, hands and face points of `frame` drawn over it."""
    out = np.ascontiguousarray(rgb[:, :, :3]).copy()
    if not frame.present or frame.body is None:
        cv2.putText(out, "no person", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 60, 60), 2)
        return out
    thick = max(1, round(min(out.shape[:2]) / 300))
    if frame.face is not None:
        for x, y in frame.face.landmarks[:, :2].astype(int):
            cv2.circle(out, (int(x), int(y)), max(1, thick // 2), FACE_RGB, -1, cv2.LINE_AA)
    body = frame.body
    for a, b in BODY_CONNECTIONS:
        if body[a, 3] < MIN_VISIBILITY or body[b, 3] < MIN_VISIBILITY:
            continue
        pa, pb = body[a, :2].astype(int), body[b, :2].astype(int)
        cv2.line(out, (int(pa[0]), int(pa[1])), (int(pb[0]), int(pb[1])), _side_colour(a, b), thick + 1,
                 cv2.LINE_AA)
    for i, (x, y) in enumerate(body[:, :2].astype(int)):
        if body[i, 3] >= MIN_VISIBILITY:
            cv2.circle(out, (int(x), int(y)), thick + 2, (255, 255, 255), -1, cv2.LINE_AA)
    for hand, colour in ((frame.left_hand, LEFT_RGB), (frame.right_hand, RIGHT_RGB)):
        if hand is None:
            continue
        pts = hand.landmarks[:, :2].astype(int)
        for a, b in HAND_CONNECTIONS:
            cv2.line(out, (int(pts[a, 0]), int(pts[a, 1])), (int(pts[b, 0]), int(pts[b, 1])), colour, thick,
                     cv2.LINE_AA)
        for x, y in pts:
            cv2.circle(out, (int(x), int(y)), thick + 1, (255, 255, 255), -1, cv2.LINE_AA)
    return out


class OverlayWriter:
    """H.264 MP4 of overlay frames (even sizes: odd frame sides lose their last row/column)."""

    def __init__(self, path: str | pathlib.Path, width: int, height: int, fps: float) -> None:
        self.width, self.height = width - width % 2, height - height % 2
        self._writer = VideoWriter(pathlib.Path(path), self.width, self.height, fps)
        self._writer.__enter__()

    def write(self, rgb: np.ndarray) -> None:
        self._writer.write(np.ascontiguousarray(rgb[: self.height, : self.width, :3]))

    def close(self) -> None:
        self._writer.__exit__(None, None, None)

    def __enter__(self) -> OverlayWriter:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
