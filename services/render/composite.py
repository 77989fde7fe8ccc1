"""Output frame geometry and backgrounds (keep / solid / image / transparent)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum

import cv2
import numpy as np

from motion.errors import InputError

RESOLUTION_SHORT_SIDE_PX = {"720p": 720, "1080p": 1080}


class BackgroundMode(IntEnum):
    KEEP = 1
    SOLID = 2
    IMAGE = 3
    TRANSPARENT = 4


@dataclass(frozen=True)
class Background:
    mode: BackgroundMode
    color_rgb: tuple[int, int, int] = (0, 0, 0)
    image_path: str = ""

    @classmethod
    def parse(cls, spec: str) -> Background:
        """``keep`` | ``solid:#RRGGBB`` | ``image:PATH`` | ``transparent``."""
        s = spec.strip()
        if s == "keep":
            return cls(BackgroundMode.KEEP)
        if s == "transparent":
            return cls(BackgroundMode.TRANSPARENT)
        if s.startswith("solid:"):
            m = re.fullmatch(r"#?([0-9a-fA-F]{6})", s[6:])
            if not m:
                raise InputError("render.background", "solid background needs a colour #RRGGBB",
                                 limit="#RRGGBB", actual=s[6:])
            v = int(m.group(1), 16)
            return cls(BackgroundMode.SOLID, color_rgb=((v >> 16) & 255, (v >> 8) & 255, v & 255))
        if s.startswith("image:") and len(s) > 6:
            return cls(BackgroundMode.IMAGE, image_path=s[6:])
        raise InputError("render.background", "unknown background mode",
                         limit="keep|solid:#RRGGBB|image:PATH|transparent", actual=spec)


@dataclass(frozen=True)
class FrameGeometry:
    """Where the character image lands in the output frame: out = image_px * scale + offset."""

    width_px: int
    height_px: int
    scale: float
    offset_px: tuple[float, float]


def _even(v: float) -> int:
    return max(2, int(round(v / 2.0)) * 2)


def frame_geometry(image_w: int, image_h: int, resolution: str, width_px: int = 0,
                   height_px: int = 0) -> FrameGeometry:
    """Short side 720/1080 keeping the character image's aspect ratio (even sizes), unless a size is given."""
    if resolution not in RESOLUTION_SHORT_SIDE_PX:
        raise InputError("render.resolution", "unknown resolution", limit="720p|1080p", actual=resolution)
    if width_px < 0 or height_px < 0 or width_px % 2 or height_px % 2:
        raise InputError("render.frame_size_px", "frame width/height must be even and >= 0",
                         limit="even", actual=[width_px, height_px])
    short = RESOLUTION_SHORT_SIDE_PX[resolution]
    if width_px and height_px:
        w, h = width_px, height_px
    elif image_w <= image_h:
        w, h = short, _even(short * image_h / image_w)
    else:
        w, h = _even(short * image_w / image_h), short
    if width_px and not height_px:
        w, h = width_px, _even(width_px * image_h / image_w)
    if height_px and not width_px:
        w, h = _even(height_px * image_w / image_h), height_px
    scale = min(w / image_w, h / image_h)
    return FrameGeometry(w, h, scale, ((w - image_w * scale) / 2.0, (h - image_h * scale) / 2.0))


def _cover(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """Scales to cover w x h and centre-crops (no distortion)."""
    ih, iw = img.shape[:2]
    s = max(w / iw, h / ih)
    nw, nh = max(w, round(iw * s)), max(h, round(ih * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    big = cv2.resize(img, (nw, nh), interpolation=interp)
    x0, y0 = (nw - w) // 2, (nh - h) // 2
    return np.ascontiguousarray(big[y0:y0 + h, x0:x0 + w])


def background_image(bg: Background, geom: FrameGeometry, keep_rgb: np.ndarray) -> np.ndarray | None:
    """The background as an opaque (H, W, 4) premultiplied image, or None for transparent output."""
    w, h = geom.width_px, geom.height_px
    if bg.mode == BackgroundMode.TRANSPARENT:
        return None
    if bg.mode == BackgroundMode.SOLID:
        out = np.empty((h, w, 4), np.uint8)
        out[..., :3] = bg.color_rgb
        out[..., 3] = 255
        return out
    if bg.mode == BackgroundMode.IMAGE:
        from motion.media import read_image  # media owns image decoding (orientation, formats)

        rgb = read_image(bg.image_path)[..., :3]
        rgb = _cover(rgb, w, h)
    else:
        # The character's own (hole-filled) background, placed exactly like the character.
        m = np.array([[geom.scale, 0, geom.offset_px[0]], [0, geom.scale, geom.offset_px[1]]], np.float64)
        interp = cv2.INTER_AREA if geom.scale < 1 else cv2.INTER_LINEAR
        rgb = cv2.warpAffine(keep_rgb, m, (w, h), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    out = np.empty((h, w, 4), np.uint8)
    out[..., :3] = rgb
    out[..., 3] = 255
    return out
