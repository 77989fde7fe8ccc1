"""Temporal smoothing as in MediaPipe's pose_landmark_filtering graph: One-Euro filters on landmark
coordinates (optionally scaled by the object size) and a low-pass filter on visibility."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuroParams:
    min_cutoff: float
    beta: float
    derivate_cutoff: float = 1.0
    disable_value_scaling: bool = False


# Constants of pose_landmark_filtering.pbtxt.
BODY_IMAGE_FILTER = OneEuroParams(min_cutoff=0.05, beta=80.0)
BODY_WORLD_FILTER = OneEuroParams(min_cutoff=0.1, beta=40.0, disable_value_scaling=True)
BODY_AUX_FILTER = OneEuroParams(min_cutoff=0.01, beta=10.0)
VISIBILITY_ALPHA = 0.1
DEFAULT_FREQUENCY_HZ = 30.0


def _alpha(cutoff_hz: float, freq_hz: float) -> float:
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    te = 1.0 / freq_hz
    return 1.0 / (1.0 + tau / te)


class OneEuroFilter:
    """Vectorised One-Euro filter over an array of values (one_euro_filter.cc semantics)."""

    def __init__(self, params: OneEuroParams) -> None:
        self.params = params
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t_s: float | None = None

    def __call__(self, value: np.ndarray, timestamp_s: float, value_scale: float = 1.0) -> np.ndarray:
        v = np.asarray(value, dtype=np.float64)
        if self._x is None or self._t_s is None or self._dx is None:
            self._x, self._dx, self._t_s = v.copy(), np.zeros_like(v), timestamp_s
            return v.astype(np.float32)
        dt = timestamp_s - self._t_s
        if dt <= 0:
            # Same or earlier timestamp: nothing to filter against, keep the value (MediaPipe does too).
            return v.astype(np.float32)
        freq = 1.0 / dt
        scale = 1.0 if self.params.disable_value_scaling else value_scale
        dx = (v - self._x) * scale * freq
        a_d = _alpha(self.params.derivate_cutoff, freq)
        edx = a_d * dx + (1 - a_d) * self._dx
        cutoff = self.params.min_cutoff + self.params.beta * np.abs(edx)
        tau = 1.0 / (2.0 * math.pi * cutoff)
        a = 1.0 / (1.0 + tau * freq)
        x = a * v + (1 - a) * self._x
        self._x, self._dx, self._t_s = x, edx, timestamp_s
        return x.astype(np.float32)


class LowPassFilter:
    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self._y: np.ndarray | None = None

    def reset(self) -> None:
        self._y = None

    def __call__(self, value: np.ndarray) -> np.ndarray:
        v = np.asarray(value, dtype=np.float64)
        self._y = v.copy() if self._y is None else self.alpha * v + (1 - self.alpha) * self._y
        return self._y.astype(np.float32)


class LandmarkSmoother:
    """Smooths (N, 5) landmarks: One-Euro on x, y, z (scaled by 1/object size), low-pass on visibility."""

    def __init__(self, params: OneEuroParams, visibility_alpha: float | None = VISIBILITY_ALPHA) -> None:
        self._coords = OneEuroFilter(params)
        self._vis = LowPassFilter(visibility_alpha) if visibility_alpha is not None else None

    def reset(self) -> None:
        self._coords.reset()
        if self._vis is not None:
            self._vis.reset()

    def __call__(self, lms: np.ndarray, timestamp_s: float, object_scale_px: float = 1.0) -> np.ndarray:
        out = np.array(lms, dtype=np.float32, copy=True)
        scale = 1.0 / object_scale_px if object_scale_px > 0 else 1.0
        out[:, :3] = self._coords(lms[:, :3], timestamp_s, value_scale=scale)
        if self._vis is not None and lms.shape[1] > 3:
            out[:, 3] = self._vis(lms[:, 3])
        return out
