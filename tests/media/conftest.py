"""Real media for the media tests, written with PyAV/OpenCV into tmp dirs (independent of motion.media)."""

from __future__ import annotations

import math
import pathlib
from collections.abc import Callable, Sequence
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest


def pattern_frame(width: int, height: int, index: int) -> np.ndarray:
    """Smooth moving gradient with a red marker in the top-left corner (orientation checks)."""
    y, x = np.mgrid[0:height, 0:width]
    r = ((x + 3 * index) % 256).astype(np.uint8)
    g = ((y * 255) // max(1, height - 1)).astype(np.uint8)
    b = np.full_like(r, (40 + 9 * index) % 256)
    img = np.dstack([r // 2, g, b])
    img[: height // 8, : width // 8] = (255, 0, 0)
    return np.ascontiguousarray(img)


def write_video(
    path: pathlib.Path,
    width: int = 352,
    height: int = 352,
    fps: int = 10,
    frames: int = 32,
    *,
    fmt: str | None = None,
    codec: str = "libx264",
    rotation_ccw_deg: int | None = None,
    timestamps_s: Sequence[float] | None = None,
    audio_codec: str | None = None,
    audio_s: float | None = None,
    audio_delay_s: float = 0.0,
    image_for: Callable[[int], np.ndarray] | None = None,
) -> pathlib.Path:
    """Encodes a test clip; `timestamps_s` gives variable frame times (ms time base)."""
    n = len(timestamps_s) if timestamps_s is not None else frames
    with av.open(str(path), mode="w", format=fmt) as out:
        vs = out.add_stream(codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"preset": "ultrafast", "crf": "20"} if codec == "libx264" else {}
        if timestamps_s is not None:
            vs.codec_context.time_base = Fraction(1, 1000)
        if rotation_ccw_deg is not None:
            vs.set_display_rotation(rotation_ccw_deg)
        aus = None
        if audio_codec is not None:
            aus = out.add_stream(audio_codec, rate=48000)
            aus.layout = "stereo"
        for i in range(n):
            img = image_for(i) if image_for else pattern_frame(width, height, i)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            if timestamps_s is not None:
                frame.pts = int(round(timestamps_s[i] * 1000))
                frame.time_base = Fraction(1, 1000)
            else:
                frame.pts = i
                frame.time_base = Fraction(1, fps)
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
        if aus is not None:
            _write_tone(out, aus, audio_s if audio_s is not None else n / fps, audio_delay_s)
    return path


def _write_tone(
    out: av.container.OutputContainer, stream: av.audio.stream.AudioStream, seconds: float, delay_s: float = 0.0
) -> None:
    rate = 48000
    fmt = stream.codec_context.format.name if stream.codec_context.format else "fltp"
    size = stream.codec_context.frame_size or 1024
    total = int(seconds * rate)
    t0 = 0
    while t0 < total:
        count = min(size, total - t0)
        t = (np.arange(t0, t0 + count) / rate).astype(np.float64)
        tone = 0.3 * np.sin(2 * math.pi * 440 * t) * (1 + 0.5 * np.sin(2 * math.pi * 0.7 * t))
        if fmt == "s16":
            data = (np.vstack([tone, tone]).T.reshape(1, -1) * 32767).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(data, format="s16", layout="stereo")
        else:
            frame = av.AudioFrame.from_ndarray(np.vstack([tone, tone]).astype(np.float32), format="fltp",
                                               layout="stereo")
        frame.sample_rate = rate
        frame.pts = t0 + int(delay_s * rate)
        for p in stream.encode(frame):
            out.mux(p)
        t0 += count
    for p in stream.encode(None):
        out.mux(p)


def write_png(path: pathlib.Path, img: np.ndarray, level: int = 3) -> pathlib.Path:
    bgr = cv2.cvtColor(img, cv2.COLOR_RGBA2BGRA if img.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), bgr, [cv2.IMWRITE_PNG_COMPRESSION, level]):
        raise OSError(f"could not write {path}")
    return path


def write_jpeg(path: pathlib.Path, img: np.ndarray, exif_orientation: int | None = None) -> pathlib.Path:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise OSError("jpeg encode failed")
    data = buf.tobytes()
    if exif_orientation is not None:
        # Minimal big-endian TIFF: one IFD with the Orientation tag (0x0112, SHORT, count 1).
        tiff = b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01" + b"\x01\x12\x00\x03\x00\x00\x00\x01"
        tiff += exif_orientation.to_bytes(2, "big") + b"\x00\x00" + b"\x00\x00\x00\x00"
        app1 = b"Exif\x00\x00" + tiff
        data = data[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + data[2:]
    path.write_bytes(data)
    return path


def listing(folder: pathlib.Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def rgb_image() -> Callable[[int, int], np.ndarray]:
    def make(width: int, height: int) -> np.ndarray:
        return pattern_frame(width, height, 0)

    return make
