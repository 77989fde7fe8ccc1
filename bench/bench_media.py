"""Media benchmark: decode and encode throughput (frames/s) at 720p and 1080p on this machine.

Content: the first frames of the real 1080x1920 video `videos/musepose__dance.mp4` from --data
(scaled with OpenCV to 720x1280 for 720p), cycled to the frame count; generated moving
gradients with noise when the data is absent (the result says which). Encode = our VideoWriter
(libx264 veryfast crf 20, mb-tree off, 4 threads, RGB in, bit-exact BT.709 conversion
included); decode = our
iter_frames (PyAV threaded decode + YUV->RGB + constant-rate resampling), plus the raw decoder rate
without RGB conversion. Run: `python -m bench --only media` (`--quick` for a smoke run).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import tempfile
import time
from fractions import Fraction
from typing import Any

import av
import cv2
import numpy as np

from motion.media import VideoWriter, iter_frames

SOURCE_VIDEO = "videos/musepose__dance.mp4"
SIZES = {"720p": (720, 1280), "1080p": (1080, 1920)}  # portrait, like the source and most references
FPS = 24


def _source_frames(data: pathlib.Path | None, count: int) -> tuple[list[np.ndarray], str]:
    path = data / SOURCE_VIDEO if data is not None else None
    if path is not None and path.is_file():
        frames = []
        for frame in iter_frames(path):
            frames.append(frame.rgb)
            if len(frames) == count:
                break
        return frames, f"real video {SOURCE_VIDEO} ({frames[0].shape[1]}x{frames[0].shape[0]})"
    rng = np.random.default_rng(0)
    h, w = SIZES["1080p"][1], SIZES["1080p"][0]
    y, x = np.mgrid[0:h, 0:w]
    frames = []
    for i in range(count):
        base = np.dstack([(x + 8 * i) % 256, (y // 8) % 256, (x + y + 4 * i) % 256]).astype(np.int16)
        noise = rng.integers(-12, 13, (h, w, 3), dtype=np.int16)
        frames.append(np.clip(base + noise, 0, 255).astype(np.uint8))
    return frames, "generated gradients with noise (real data absent)"


class _Clock:
    """Wall time and this process's CPU time (all threads): on a shared, loaded machine the wall
    rate drops while CPU ms per frame stays comparable."""

    def __enter__(self) -> _Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def _encode(path: pathlib.Path, frames: list[np.ndarray], total: int, codec: str) -> _Clock:
    h, w = frames[0].shape[:2]
    with _Clock() as clock, VideoWriter(path, w, h, FPS, codec=codec) as writer:
        for i in range(total):
            writer.write(frames[i % len(frames)])
    return clock


def _decode_rgb(path: pathlib.Path) -> tuple[_Clock, int]:
    with _Clock() as clock:
        n = sum(1 for _ in iter_frames(path))
    return clock, n


def _decode_raw(path: pathlib.Path) -> tuple[_Clock, int]:
    with av.open(str(path)) as c, _Clock() as clock:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        n = sum(1 for _ in c.decode(stream))
    return clock, n


def _nvenc_available() -> bool:
    try:
        ctx = av.CodecContext.create("h264_nvenc", "w")
        ctx.width, ctx.height, ctx.pix_fmt = 256, 256, "yuv420p"
        ctx.time_base = Fraction(1, FPS)
        ctx.open()
        return True
    except (av.error.FFmpegError, ValueError):
        return False


def run(args: argparse.Namespace | None = None) -> dict[str, Any]:
    quick = bool(getattr(args, "quick", False))
    data = getattr(args, "data", None)
    distinct = int(getattr(args, "media_distinct_frames", 0) or (12 if quick else 32))
    total = int(getattr(args, "media_frames", 0) or (36 if quick else 120))
    source, source_desc = _source_frames(pathlib.Path(data) if data else None, distinct)
    codecs = ["libx264"] + (["h264_nvenc"] if _nvenc_available() else [])
    out: dict[str, Any] = {"content": source_desc, "frames": total, "distinct_frames": len(source),
                           "cpu_count": os.cpu_count(), "load_avg_1min_at_start": round(os.getloadavg()[0], 2),
                           "encoder": "libx264 veryfast crf20 mbtree=0 threads=4 (deterministic)"}
    with tempfile.TemporaryDirectory(prefix="bench-media-") as tmp:
        for label, (w, h) in SIZES.items():
            frames = [f if f.shape[:2] == (h, w) else cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA)
                      for f in source]
            fig: dict[str, Any] = {"size": f"{w}x{h}"}
            for codec in codecs:
                path = pathlib.Path(tmp) / f"{label}_{codec}.mp4"
                key = "" if codec == "libx264" else f"_{codec}"
                enc = _encode(path, frames, total, codec)
                fig[f"encode_fps{key}"] = round(total / enc.wall, 1)
                fig[f"encode_cpu_ms_per_frame{key}"] = round(1000 * enc.cpu / total, 1)
                if codec == "libx264":
                    fig["mbit_per_s"] = round(path.stat().st_size * 8 / (total / FPS) / 1e6, 2)
                    dec, n = _decode_rgb(path)
                    fig["decode_rgb_fps"] = round(n / dec.wall, 1)
                    fig["decode_rgb_cpu_ms_per_frame"] = round(1000 * dec.cpu / max(n, 1), 1)
                    raw, n_raw = _decode_raw(path)
                    fig["decode_raw_fps"] = round(n_raw / raw.wall, 1)
                    fig["decode_raw_cpu_ms_per_frame"] = round(1000 * raw.cpu / max(n_raw, 1), 1)
                    if n != total:
                        fig["decode_frame_count_mismatch"] = n
            del frames
            out[label] = fig
            print(f"media {label} ({fig['size']}): encode {fig['encode_fps']} fps, decode->RGB "
                  f"{fig['decode_rgb_fps']} fps (raw {fig['decode_raw_fps']} fps)", flush=True)
    return out


if __name__ == "__main__":
    import json

    from bench.__main__ import parse_args

    print(json.dumps(run(parse_args()), indent=2))
