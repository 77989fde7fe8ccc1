"""Small real media files for the gateway tests (encoded with PyAV / OpenCV, never mocked)."""

from __future__ import annotations

import pathlib
from fractions import Fraction

import av
import cv2
import numpy as np


def write_image(path: pathlib.Path, width: int = 340, height: int = 420, seed: int = 0) -> pathlib.Path:
    """A PNG or JPEG (by suffix) with a simple figure on a plain background."""
    rng = np.random.default_rng(seed)
    img = np.full((height, width, 3), 235, np.uint8)
    colour = tuple(int(c) for c in rng.integers(30, 200, size=3))
    cx = width // 2
    cv2.circle(img, (cx, height // 6), max(8, height // 14), colour, -1)
    cv2.rectangle(img, (cx - width // 10, height // 4), (cx + width // 10, height * 3 // 5), colour, -1)
    cv2.line(img, (cx - width // 10, height // 4), (cx - width // 4, height // 2), colour, 8)
    cv2.line(img, (cx + width // 10, height // 4), (cx + width // 4, height // 2), colour, 8)
    cv2.line(img, (cx - width // 20, height * 3 // 5), (cx - width // 8, height * 19 // 20), colour, 10)
    cv2.line(img, (cx + width // 20, height * 3 // 5), (cx + width // 8, height * 19 // 20), colour, 10)
    ok, data = cv2.imencode(path.suffix, img[:, :, ::-1])
    if not ok:
        raise RuntimeError(f"could not encode {path}")
    path.write_bytes(data.tobytes())
    return path


def write_video(path: pathlib.Path, width: int = 340, height: int = 340, seconds: float = 3.0,
                fps: int = 10) -> pathlib.Path:
    """An H.264 MP4 of a moving block (valid container, real frames)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(int(round(seconds * fps))):
            frame = np.full((height, width, 3), 200, np.uint8)
            x = int((width - 60) * i / max(1, seconds * fps - 1))
            frame[height // 3: height // 3 + 60, x: x + 60] = (40, 90, 160)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def trim_video(src: pathlib.Path, dst: pathlib.Path, seconds: float, fps: int, short_side_px: int) -> pathlib.Path:
    """Re-encodes the first `seconds` of a real clip at a low frame rate and size (keeps it fast)."""
    with av.open(str(src)) as inp:
        vin = inp.streams.video[0]
        scale = short_side_px / min(vin.codec_context.width, vin.codec_context.height)
        width = int(round(vin.codec_context.width * scale / 2)) * 2
        height = int(round(vin.codec_context.height * scale / 2)) * 2
        with av.open(str(dst), "w") as out:
            stream = out.add_stream("libx264", rate=Fraction(fps))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            n_out = int(round(seconds * fps))
            written = 0
            for frame in inp.decode(vin):
                if frame.time is None or written >= n_out:
                    if written >= n_out:
                        break
                    continue
                if frame.time + 1e-6 < written / fps:
                    continue
                small = np.asarray(cv2.resize(frame.to_ndarray(format="rgb24"), (width, height),
                                              interpolation=cv2.INTER_AREA), dtype=np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(small, format="rgb24")):
                    out.mux(packet)
                written += 1
            for packet in stream.encode():
                out.mux(packet)
    return dst
