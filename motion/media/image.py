"""Character images: cheap header checks, structural checks (PNG CRCs, JPEG end marker) and decoding.

OpenCV decodes; it applies the JPEG EXIF orientation when reading colour images, so widths and
heights reported here are the ones a viewer shows.
"""

from __future__ import annotations

import pathlib
import struct
import zlib
from dataclasses import asdict, dataclass
from enum import IntEnum
from typing import Any

import cv2
import numpy as np

from motion.errors import InputError, NotFoundError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8\xff"
IMAGE_EXTENSIONS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}

# Start-of-frame markers of the JPEG flavours (baseline, progressive, lossless, ...), not DHT/JPG/DAC.
_JPEG_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_EXIF_SWAPS_SIDES = {5, 6, 7, 8}


class PngColorType(IntEnum):
    GRAY = 0
    RGB = 2
    PALETTE = 3
    GRAY_ALPHA = 4
    RGBA = 6


@dataclass(frozen=True)
class ImageLimits:
    """The product spec for character images."""

    min_side_px: int = 300
    max_bytes: int = 10 * 1024 * 1024
    # Aspect ratio as long side / short side: 2:5 .. 5:2 means at most 2.5.
    max_aspect_ratio: float = 2.5
    # Guards decoding memory (a small PNG can declare a gigantic canvas).
    max_pixels: int = 100_000_000
    # JPEG data in a .png file (or the reverse) is common in the wild and both are allowed formats,
    # so by default the content decides; strict mode reports `image.extension_mismatch`.
    strict_extension: bool = False


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str
    has_alpha: bool
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "image", **asdict(self)}


def sniff_image_format(head: bytes) -> str | None:
    """'png' / 'jpeg' from the magic bytes, None when the content is neither."""
    if head.startswith(PNG_SIGNATURE):
        return "png"
    if head.startswith(JPEG_SOI):
        return "jpeg"
    return None


def _png_header(data: bytes) -> tuple[int, int, bool]:
    """(width, height, has_alpha) after checking every chunk's CRC and that IEND is present."""
    pos = len(PNG_SIGNATURE)
    width = height = 0
    has_alpha = False
    seen_ihdr = seen_iend = False
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        body_end = pos + 8 + length
        if body_end + 4 > len(data):
            raise InputError("image.corrupt", "PNG is truncated (a chunk runs past the end of the file)",
                             limit=body_end + 4, actual=len(data))
        (crc,) = struct.unpack(">I", data[body_end : body_end + 4])
        if zlib.crc32(data[pos + 4 : body_end]) != crc:
            raise InputError("image.corrupt", f"PNG chunk {ctype!r} has a bad CRC", actual=pos)
        if ctype == b"IHDR":
            width, height = struct.unpack(">II", data[pos + 8 : pos + 16])
            has_alpha = data[pos + 17] in (PngColorType.GRAY_ALPHA, PngColorType.RGBA)
            seen_ihdr = True
        elif ctype == b"tRNS":
            has_alpha = True
        elif ctype == b"IEND":
            seen_iend = True
            break
        pos = body_end + 4
    if not seen_ihdr:
        raise InputError("image.corrupt", "PNG has no IHDR header chunk")
    if not seen_iend:
        raise InputError("image.corrupt", "PNG is truncated (no IEND chunk)", actual=len(data))
    return width, height, has_alpha


def _jpeg_header(data: bytes) -> tuple[int, int, int]:
    """(width, height, exif_orientation) from the SOF segment; checks the end-of-image marker."""
    pos = 2
    width = height = 0
    orientation = 1
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise InputError("image.corrupt", "JPEG marker structure is broken", actual=pos)
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (seg_len,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        seg = data[pos + 4 : pos + 2 + seg_len]
        if marker == 0xE1 and seg.startswith(b"Exif\x00\x00"):
            orientation = _exif_orientation(seg[6:])
        if marker in _JPEG_SOF_MARKERS:
            if len(seg) < 5:
                raise InputError("image.corrupt", "JPEG frame header is truncated")
            height, width = struct.unpack(">HH", seg[1:5])
            break
        pos += 2 + seg_len
    if width == 0 or height == 0:
        raise InputError("image.corrupt", "JPEG has no frame header (dimensions unknown)")
    # A complete JPEG ends with EOI (some writers add padding after it).
    if data.rstrip(b"\x00").rfind(b"\xff\xd9") < len(data.rstrip(b"\x00")) - 2:
        raise InputError("image.corrupt", "JPEG is truncated (no end-of-image marker)", actual=len(data))
    return width, height, orientation


def _exif_orientation(tiff: bytes) -> int:
    """The EXIF Orientation tag (1..8) from a TIFF block; 1 when absent or unreadable."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return 1
    endian = "<" if tiff[:2] == b"II" else ">"
    (ifd,) = struct.unpack(endian + "I", tiff[4:8])
    if ifd + 2 > len(tiff):
        return 1
    (count,) = struct.unpack(endian + "H", tiff[ifd : ifd + 2])
    for i in range(count):
        entry = ifd + 2 + 12 * i
        if entry + 12 > len(tiff):
            break
        tag, _typ, _n = struct.unpack(endian + "HHI", tiff[entry : entry + 8])
        if tag == 0x0112:
            (value,) = struct.unpack(endian + "H", tiff[entry + 8 : entry + 10])
            return int(value) if 1 <= value <= 8 else 1
    return 1


def _read_checked(path: pathlib.Path, limits: ImageLimits) -> tuple[bytes, ImageInfo]:
    if not path.is_file():
        raise NotFoundError(f"image not found: {path}", path=str(path))
    ext = path.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        raise InputError("image.format", f"character image must be JPG or PNG, got {ext or 'no extension'!r}",
                         limit="jpg|jpeg|png", actual=ext)
    size = path.stat().st_size
    # Size first: never read a huge upload into memory.
    if size > limits.max_bytes:
        raise InputError("image.max_bytes", f"image is {size} bytes, over the {limits.max_bytes} byte limit",
                         limit=limits.max_bytes, actual=size)
    data = path.read_bytes()
    fmt = sniff_image_format(data[:16])
    if fmt is None:
        raise InputError("image.format", "file is not a JPG or PNG image (unknown content)",
                         limit="jpeg|png", actual=data[:8].hex())
    if fmt != IMAGE_EXTENSIONS[ext] and limits.strict_extension:
        raise InputError("image.extension_mismatch", f"file content is {fmt} but the name ends in {ext}",
                         limit=IMAGE_EXTENSIONS[ext], actual=fmt)
    if fmt == "png":
        width, height, has_alpha = _png_header(data)
    else:
        width, height, orientation = _jpeg_header(data)
        has_alpha = False
        if orientation in _EXIF_SWAPS_SIDES:
            width, height = height, width
    if width * height > limits.max_pixels:
        raise InputError("image.max_pixels", f"image declares {width}x{height} pixels",
                         limit=limits.max_pixels, actual=width * height)
    return data, ImageInfo(width=width, height=height, format=fmt, has_alpha=has_alpha, size_bytes=size)


def _check_geometry(info: ImageInfo, limits: ImageLimits) -> None:
    short, long = sorted((info.width, info.height))
    if short < limits.min_side_px:
        raise InputError("image.min_side_px",
                         f"image is {info.width}x{info.height}; each side must be >= {limits.min_side_px} px",
                         limit=limits.min_side_px, actual=short)
    ratio = long / short
    if ratio > limits.max_aspect_ratio + 1e-9:
        raise InputError("image.aspect_ratio",
                         f"image aspect ratio {info.width}:{info.height} is outside 2:5..5:2",
                         limit=limits.max_aspect_ratio, actual=round(ratio, 4))


def _decode(data: bytes, fmt: str) -> np.ndarray:
    buf = np.frombuffer(data, np.uint8)
    # JPEG has no alpha: IMREAD_COLOR applies the EXIF orientation. PNG keeps its alpha channel.
    flags = cv2.IMREAD_COLOR if fmt == "jpeg" else cv2.IMREAD_UNCHANGED
    img = cv2.imdecode(buf, flags)
    if img is None:
        raise InputError("image.corrupt", f"{fmt} data could not be decoded")
    if img.dtype == np.uint16:
        img = (img.astype(np.uint16) >> 8).astype(np.uint8)
    if img.ndim == 2:
        return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_GRAY2RGB))
    if img.shape[2] == 4:
        return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA))
    if img.shape[2] == 2:  # gray + alpha
        rgb = cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2RGB)
        return np.ascontiguousarray(np.dstack([rgb, img[:, :, 1]]))
    return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))


def validate_image(path: str | pathlib.Path, limits: ImageLimits | None = None) -> ImageInfo:
    """Checks a character image against the product spec and returns its info.

    Rule order (the first broken rule is reported): extension (`image.format`), file size
    (`image.max_bytes`, before reading), content type (`image.format`; `image.extension_mismatch`
    only with `strict_extension`, else a JPEG named .png is read as the JPEG it is),
    structure (`image.corrupt`: PNG chunk CRCs/IEND, JPEG end marker), `image.max_pixels`,
    `image.min_side_px`, `image.aspect_ratio`, then a full decode (`image.corrupt`).
    """
    limits = limits or ImageLimits()
    path = pathlib.Path(path)
    data, info = _read_checked(path, limits)
    _check_geometry(info, limits)
    img = _decode(data, info.format)
    h, w = img.shape[:2]
    if (w, h) != (info.width, info.height):
        raise InputError("image.corrupt", f"decoded size {w}x{h} differs from the header's",
                         limit=f"{info.width}x{info.height}", actual=f"{w}x{h}")
    return info


def read_image(path: str | pathlib.Path) -> np.ndarray:
    """(H, W, 3) RGB uint8, or (H, W, 4) RGBA uint8 when the PNG has alpha; EXIF orientation applied."""
    path = pathlib.Path(path)
    data, info = _read_checked(path, ImageLimits(max_bytes=1 << 62))
    img = _decode(data, info.format)
    if img.shape[2] == 4 and not info.has_alpha:
        img = np.ascontiguousarray(img[:, :, :3])
    return img
