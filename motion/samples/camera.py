"""Pinhole camera for the sample scene (world: x right, y up, z towards the camera)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PinholeCamera:
    """A level camera at ``(0, height_m, distance_m)`` looking along -z; no lens distortion.

    Camera space follows OpenCV: x right, y down, z forward (metres).
    """

    width_px: int
    height_px: int
    focal_px: float
    height_m: float = 1.0
    distance_m: float = 4.0

    @classmethod
    def framing(cls, width_px: int, height_px: int, visible_width_m: float = 1.8,
                visible_height_m: float = 2.45, height_m: float = 1.0, distance_m: float = 4.0) -> PinholeCamera:
        """The camera that shows at least ``visible_width_m`` x ``visible_height_m`` at the performer."""
        focal = min(width_px / visible_width_m, height_px / visible_height_m) * distance_m
        return cls(width_px, height_px, float(focal), height_m, distance_m)

    @property
    def cx(self) -> float:
        return self.width_px / 2.0

    @property
    def cy(self) -> float:
        return self.height_px / 2.0

    def to_camera(self, world: np.ndarray) -> np.ndarray:
        """(..., 3) world metres -> (..., 3) camera metres."""
        w = np.asarray(world, dtype=np.float64)
        out = np.empty_like(w)
        out[..., 0] = w[..., 0]
        out[..., 1] = self.height_m - w[..., 1]
        out[..., 2] = self.distance_m - w[..., 2]
        return out

    def project(self, world: np.ndarray) -> np.ndarray:
        """(..., 3) world metres -> (..., 2) pixels (x right, y down)."""
        c = self.to_camera(world)
        z = np.maximum(c[..., 2], 1e-3)
        return np.stack([self.cx + self.focal_px * c[..., 0] / z, self.cy + self.focal_px * c[..., 1] / z], axis=-1)

    def scale_px_per_m(self, world: np.ndarray) -> np.ndarray:
        """Pixels per metre at the depth of each point (for sphere radii)."""
        c = self.to_camera(world)
        return self.focal_px / np.maximum(c[..., 2], 1e-3)

    def towards_camera(self, world: np.ndarray) -> np.ndarray:
        """Unit vectors from points to the camera centre (world frame)."""
        eye = np.array([0.0, self.height_m, self.distance_m])
        d = eye - np.asarray(world, dtype=np.float64)
        return d / np.linalg.norm(d, axis=-1, keepdims=True)

    def to_dict(self) -> dict[str, float]:
        return {"width_px": self.width_px, "height_px": self.height_px, "focal_px": self.focal_px,
                "cx_px": self.cx, "cy_px": self.cy, "height_m": self.height_m, "distance_m": self.distance_m}
