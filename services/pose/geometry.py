"""Geometry of the MediaPipe legacy pipelines, written from the constants in
../shared/reference/mediapipe-pipeline.md: SSD anchors, detection decode, weighted NMS, rotated ROIs,
crops, heatmap refinement and inverse projection.

Conventions: `Rect` is in image pixels (continuous coordinates, pixel i covers [i, i+1)), rotation in radians
(clockwise on screen, as MediaPipe's NormalizedRect). Detections are in normalised [0, 1] image coordinates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np


@dataclass(frozen=True)
class AnchorOptions:
    num_layers: int
    min_scale: float
    max_scale: float
    input_size_px: int
    strides: tuple[int, ...]
    anchor_offset: float = 0.5
    aspect_ratios: tuple[float, ...] = (1.0,)
    interpolated_scale_aspect_ratio: float = 1.0


POSE_ANCHORS = AnchorOptions(5, 0.1484375, 0.75, 224, (8, 16, 32, 32, 32))
PALM_ANCHORS = AnchorOptions(4, 0.1484375, 0.75, 192, (8, 16, 16, 16))
FACE_ANCHORS = AnchorOptions(4, 0.1484375, 0.75, 128, (8, 16, 16, 16))


def ssd_anchors(o: AnchorOptions) -> np.ndarray:
    """(N, 2) anchor centres (x, y), normalised; fixed anchor size (w = h = 1) as all these models use.

    Consecutive layers with the same stride share one feature map (SsdAnchorsCalculator); each layer adds one
    anchor per aspect ratio plus one interpolated-scale anchor when that ratio is > 0.
    """
    centers: list[np.ndarray] = []
    layer = 0
    n = o.num_layers
    while layer < n:
        per_cell = 0
        last = layer
        while last < n and o.strides[last] == o.strides[layer]:
            per_cell += len(o.aspect_ratios) + (1 if o.interpolated_scale_aspect_ratio > 0 else 0)
            last += 1
        stride = o.strides[layer]
        fm = int(math.ceil(o.input_size_px / stride))
        ys, xs = np.meshgrid(np.arange(fm), np.arange(fm), indexing="ij")
        cell = np.stack([(xs + o.anchor_offset) / fm, (ys + o.anchor_offset) / fm], axis=-1).reshape(-1, 2)
        centers.append(np.repeat(cell, per_cell, axis=0))
        layer = last
    return np.concatenate(centers).astype(np.float32)


@dataclass
class Detection:
    """Box (xmin, ymin, xmax, ymax) and keypoints (K, 2), normalised to the detector input or the image."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float

    @property
    def area(self) -> float:
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def decode_detections(
    raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, input_size_px: int,
    num_keypoints: int, min_score: float, score_clip: float = 100.0,
) -> list[Detection]:
    """TensorsToDetections: XYWH regressors relative to anchor centres in input pixels, sigmoid scores."""
    scores = _sigmoid(np.clip(raw_scores.reshape(-1), -score_clip, score_clip))
    keep = np.nonzero(scores >= min_score)[0]
    out: list[Detection] = []
    s = float(input_size_px)
    for i in keep:
        r = raw_boxes[i]
        ax, ay = anchors[i]
        xc = r[0] / s + ax
        yc = r[1] / s + ay
        w = r[2] / s
        h = r[3] / s
        kps = r[4:4 + 2 * num_keypoints].reshape(num_keypoints, 2) / s + anchors[i]
        out.append(Detection(np.array([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], np.float32),
                             kps.astype(np.float32), float(scores[i])))
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def weighted_nms(dets: list[Detection], min_suppression_iou: float = 0.3) -> list[Detection]:
    """WEIGHTED non-max suppression: each cluster of boxes overlapping the best one by more than the
    threshold is replaced by their score-weighted mean (boxes and keypoints); the best score is kept."""
    remaining = sorted(dets, key=lambda d: -d.score)
    out: list[Detection] = []
    while remaining:
        top = remaining[0]
        cluster = [d for d in remaining if iou(top.box, d.box) > min_suppression_iou or d is top]
        rest = [d for d in remaining if not (iou(top.box, d.box) > min_suppression_iou or d is top)]
        w = np.array([d.score for d in cluster], np.float32)
        total = float(w.sum())
        box = sum(d.box * d.score for d in cluster) / total
        kps = sum(d.keypoints * d.score for d in cluster) / total
        out.append(Detection(np.asarray(box, np.float32), np.asarray(kps, np.float32), top.score))
        remaining = rest
    return out


@dataclass(frozen=True)
class Letterbox:
    """Padding (normalised to the tensor) added to keep the aspect ratio when fitting an image to a tensor."""

    left: float
    top: float
    right: float
    bottom: float

    def remove(self, pts: np.ndarray) -> np.ndarray:
        """Tensor-normalised (…, 2) points -> image-normalised."""
        out = np.array(pts, dtype=np.float32, copy=True)
        out[..., 0] = (out[..., 0] - self.left) / (1.0 - self.left - self.right)
        out[..., 1] = (out[..., 1] - self.top) / (1.0 - self.top - self.bottom)
        return out


def letterbox_image(rgb: np.ndarray, size_px: int) -> tuple[np.ndarray, Letterbox]:
    """Whole image scaled into a size_px square, centred, zero border (ImageToTensor keep_aspect_ratio)."""
    h, w = rgb.shape[:2]
    scale = size_px / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
    out = np.zeros((size_px, size_px) + rgb.shape[2:], np.uint8)  # as many channels as the image (RGB/RGBA)
    x0, y0 = (size_px - nw) // 2, (size_px - nh) // 2
    out[y0:y0 + nh, x0:x0 + nw] = resized
    return out, Letterbox(x0 / size_px, y0 / size_px, (size_px - nw - x0) / size_px, (size_px - nh - y0) / size_px)


def detection_to_image(det: Detection, lb: Letterbox) -> Detection:
    box = lb.remove(det.box.reshape(2, 2)).reshape(4)
    return Detection(box, lb.remove(det.keypoints), det.score)


def normalize_radians(a: float) -> float:
    return a - 2 * math.pi * math.floor((a + math.pi) / (2 * math.pi))


@dataclass(frozen=True)
class Rect:
    """A rotated rectangle in image pixels (centre, size, rotation in radians)."""

    x_center: float
    y_center: float
    width: float
    height: float
    rotation: float = 0.0

    def transform(self, scale_x: float = 1.0, scale_y: float = 1.0, shift_x: float = 0.0, shift_y: float = 0.0,
                  square_long: bool = True) -> Rect:
        """RectTransformationCalculator: shift (in the rotated frame, fractions of size), square, scale."""
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        xs = self.width * shift_x * c - self.height * shift_y * s
        ys = self.width * shift_x * s + self.height * shift_y * c
        w, h = self.width, self.height
        if square_long:
            w = h = max(w, h)
        return Rect(self.x_center + xs, self.y_center + ys, w * scale_x, h * scale_y, self.rotation)

    @property
    def size_px(self) -> float:
        return (self.width + self.height) / 2.0

    def crop_matrix(self, out_w: int, out_h: int) -> np.ndarray:
        """2x3 affine mapping output-tensor pixel indices to source-image pixel indices (WARP_INVERSE_MAP)."""
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        a = np.array([[c * self.width / out_w, -s * self.height / out_h],
                      [s * self.width / out_w, c * self.height / out_h]], np.float64)
        t = np.array([self.x_center - 0.5 * (c * self.width - s * self.height),
                      self.y_center - 0.5 * (s * self.width + c * self.height)])
        # Index convention: pixel index i has its centre at continuous i + 0.5 on both sides.
        t = t + a @ np.array([0.5, 0.5]) - 0.5
        return np.concatenate([a, t[:, None]], axis=1)

    def crop(self, rgb: np.ndarray, out_w: int, out_h: int, border_zero: bool = False) -> np.ndarray:
        m = self.crop_matrix(out_w, out_h)
        return cv2.warpAffine(
            rgb, m, (out_w, out_h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT if border_zero else cv2.BORDER_REPLICATE,
        )

    def project(self, pts: np.ndarray) -> np.ndarray:
        """LandmarkProjection: ROI-normalised (…, >=2) points -> image pixels; z (column 2) scaled by width."""
        out = np.array(pts, dtype=np.float32, copy=True)
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        x0 = (pts[..., 0] - 0.5) * self.width
        y0 = (pts[..., 1] - 0.5) * self.height
        out[..., 0] = c * x0 - s * y0 + self.x_center
        out[..., 1] = s * x0 + c * y0 + self.y_center
        if pts.shape[-1] > 2:
            out[..., 2] = pts[..., 2] * self.width
        return out

    def unproject(self, pts_px: np.ndarray) -> np.ndarray:
        """Inverse of project for (…, 2) image pixels -> ROI-normalised."""
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        dx = pts_px[..., 0] - self.x_center
        dy = pts_px[..., 1] - self.y_center
        out = np.empty(pts_px.shape[:-1] + (2,), np.float32)
        out[..., 0] = (c * dx + s * dy) / self.width + 0.5
        out[..., 1] = (-s * dx + c * dy) / self.height + 0.5
        return out

    def outside(self, width: int, height: int) -> bool:
        """True when no part of the rectangle overlaps a width x height image (its rotated extent's bounding box
        lies wholly beyond one edge): a crop there shows only replicated border pixels."""
        c, s = abs(math.cos(self.rotation)), abs(math.sin(self.rotation))
        half_x = (c * self.width + s * self.height) / 2
        half_y = (s * self.width + c * self.height) / 2
        return (self.x_center + half_x <= 0 or self.x_center - half_x >= width
                or self.y_center + half_y <= 0 or self.y_center - half_y >= height)

    def with_rotation(self, rotation: float) -> Rect:
        return replace(self, rotation=rotation)


def rotation_from_points(p0: np.ndarray, p1: np.ndarray, target_rad: float) -> float:
    """Rotation making the p0 -> p1 vector point at target angle (pixels, y down)."""
    return normalize_radians(target_rad - math.atan2(-(float(p1[1]) - float(p0[1])), float(p1[0]) - float(p0[0])))


def alignment_rect(p0: np.ndarray, p1: np.ndarray, target_rad: float) -> Rect:
    """AlignmentPointsRectsCalculator: centre p0, side 2*|p1-p0|, rotation from p0 -> p1 (pixels)."""
    side = 2.0 * float(np.hypot(p1[0] - p0[0], p1[1] - p0[1]))
    return Rect(float(p0[0]), float(p0[1]), side, side, rotation_from_points(p0, p1, target_rad))


def refine_from_heatmap(landmarks: np.ndarray, heatmap: np.ndarray, kernel_size: int = 7,
                        min_confidence: float = 0.5) -> np.ndarray:
    """RefineLandmarksFromHeatmap on ROI-normalised landmarks (N, >=2) with heatmap logits (H, W, N).

    Vectorised over the landmarks (a per-landmark Python loop cost ~2 ms a frame): every landmark's
    kernel window is gathered at once straight from the heatmap (indices clamped), and the cells outside
    the heatmap get a confidence of exactly 0, so they add nothing, as in the calculator's clipped windows.
    Only the N x K x K window cells are touched (padding a float64 copy of the whole heatmap cost ~0.8 ms).
    """
    hm_h, hm_w, n = heatmap.shape
    out = np.array(landmarks, dtype=np.float32, copy=True)
    m = min(n, len(landmarks))
    if m == 0:
        return out
    off = (kernel_size - 1) // 2
    cc = (landmarks[:m, 0] * hm_w).astype(np.int64)  # int() truncation toward zero, as before
    cr = (landmarks[:m, 1] * hm_h).astype(np.int64)
    inside = (cc >= 0) & (cc < hm_w) & (cr >= 0) & (cr < hm_h)
    idx = np.nonzero(inside)[0]
    if idx.size == 0:
        return out
    k = np.arange(kernel_size) - off
    rows = cr[idx][:, None] + k[None, :]  # (M, K) heatmap rows of each window, some outside
    cols = cc[idx][:, None] + k[None, :]
    row_ok = (rows >= 0) & (rows < hm_h)
    col_ok = (cols >= 0) & (cols < hm_w)
    logits = heatmap[np.clip(rows, 0, hm_h - 1)[:, :, None], np.clip(cols, 0, hm_w - 1)[:, None, :],
                     idx[:, None, None]].astype(np.float64)  # (M, K, K)
    conf = 1.0 / (1.0 + np.exp(-logits))
    conf *= row_ok[:, :, None] & col_ok[:, None, :]
    total = conf.sum(axis=(1, 2))
    ok = (conf.max(axis=(1, 2)) >= min_confidence) & (total > 0)
    safe = np.where(total > 0, total, 1.0)
    x = (conf.sum(axis=1) * cols).sum(axis=1) / safe / hm_w
    y = (conf.sum(axis=2) * rows).sum(axis=1) / safe / hm_h
    sel = idx[ok]
    out[sel, 0] = x[ok]
    out[sel, 1] = y[ok]
    return out


def rotate_xy(pts: np.ndarray, rotation: float) -> np.ndarray:
    """WorldLandmarkProjection: rotate x, y of (…, >=2) points by the ROI rotation."""
    out = np.array(pts, dtype=np.float32, copy=True)
    c, s = math.cos(rotation), math.sin(rotation)
    out[..., 0] = c * pts[..., 0] - s * pts[..., 1]
    out[..., 1] = s * pts[..., 0] + c * pts[..., 1]
    return out


_HAND_PARTIAL = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)


def hand_landmarks_rect(px: np.ndarray) -> Rect:
    """HandLandmarksToRectCalculator + RectTransformation(2.0, shift_y -0.1): the next-frame hand ROI
    from (21, >=2) hand landmarks in pixels."""
    p0 = px[0, :2]
    p1 = ((px[6, :2] + px[14, :2]) / 2 + px[10, :2]) / 2
    rotation = rotation_from_points(p0, p1, math.pi / 2)
    pts = px[list(_HAND_PARTIAL), :2].astype(np.float64)
    centre = (pts.min(axis=0) + pts.max(axis=0)) / 2
    c, s = math.cos(-rotation), math.sin(-rotation)
    d = pts - centre
    rot = np.stack([c * d[:, 0] - s * d[:, 1], s * d[:, 0] + c * d[:, 1]], axis=1)
    lo, hi = rot.min(axis=0), rot.max(axis=0)
    mid = (lo + hi) / 2
    c2, s2 = math.cos(rotation), math.sin(rotation)
    cx = centre[0] + c2 * mid[0] - s2 * mid[1]
    cy = centre[1] + s2 * mid[0] + c2 * mid[1]
    return Rect(float(cx), float(cy), float(hi[0] - lo[0]), float(hi[1] - lo[1]), rotation).transform(
        2.0, 2.0, shift_y=-0.1)


def rects_close(prev: Rect, new: Rect, rotation_deg: float, translation: float, scale: float) -> bool:
    """RoiTrackingCalculator's rect test: keep the previous ROI when the new one differs by less than the
    rotation (degrees), the translation (fraction of the size) and the relative scale thresholds."""
    d_rot = abs(math.degrees(normalize_radians(new.rotation - prev.rotation)))
    size = max(prev.size_px, 1e-6)
    d_tr = math.hypot(new.x_center - prev.x_center, new.y_center - prev.y_center) / size
    d_sc = abs(new.size_px - prev.size_px) / size
    return d_rot < rotation_deg and d_tr < translation and d_sc < scale


def face_landmarks_rect(px: np.ndarray) -> Rect:
    """face_landmark_landmarks_to_roi: bounding box of the mesh, rotation from the eye corners 33 -> 263
    (target 0), scale 1.5, square."""
    lo, hi = px[:, :2].min(axis=0), px[:, :2].max(axis=0)
    return Rect(float(lo[0] + hi[0]) / 2, float(lo[1] + hi[1]) / 2, float(hi[0] - lo[0]), float(hi[1] - lo[1]),
                rotation_from_points(px[33, :2], px[263, :2], 0.0)).transform(1.5, 1.5)
