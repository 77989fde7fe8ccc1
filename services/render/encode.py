"""Encoding rendered frames, overlapped with rendering: a writer thread drains a bounded queue.

PyAV releases the GIL while x264/libvpx encode, and llvmpipe rasterises in its own threads, so one
thread rendering and one encoding keep both cores of a small node busy.
"""

from __future__ import annotations

import pathlib
import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np

from motion.errors import InputError
from motion.media import EncoderOptions, VideoWriter

_DONE = object()


class _FrameWriter(VideoWriter):
    """VideoWriter that also takes frames already converted to packed I420 by the rasteriser.

    The renderer converts RGB to BT.709 limited-range I420 in a shader (see raster.py); re-converting
    here with swscale would cost more than rendering. TODO(media): a public ``write_i420`` on VideoWriter
    would let this subclass go (it uses the writer's stream and audio members).
    """

    def write(self, image: np.ndarray) -> None:
        if image.ndim != 2:
            super().write(image)
            return
        container, stream = self._container, self._stream
        if container is None or stream is None:
            raise RuntimeError("VideoWriter is not open (use it as a context manager)")
        if image.shape != (self.height * 3 // 2, self.width) or stream.pix_fmt != "yuv420p":
            raise InputError("output.frame", "I420 frames must be (H * 3/2, W) uint8 for a yuv420p stream",
                             limit=f"{self.height * 3 // 2}x{self.width}", actual=f"{image.shape} {stream.pix_fmt}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="yuv420p")
        frame.pts = self.frames_written
        frame.time_base = stream.codec_context.time_base
        frame.duration = 1
        for packet in stream.encode(frame):
            container.mux(packet)
        self.frames_written += 1
        if self._audio is not None:
            self._audio.pump(self.frames_written / float(self.fps))


@dataclass
class EncodeStats:
    frames: int = 0
    render_s: float = 0.0  # time spent producing frames (in the caller's thread)
    encode_s: float = 0.0  # time the writer thread spent encoding
    wall_s: float = 0.0
    errors: list[BaseException] = field(default_factory=list)


def encode_frames(frames: Iterable[np.ndarray], path: str | pathlib.Path, width_px: int, height_px: int,
                  fps: float | Fraction, *, audio_from: str | pathlib.Path | None = None,
                  audio_start_s: float = 0.0, audio_duration_s: float | None = None, alpha: bool = False,
                  options: EncoderOptions | None = None, queue_frames: int = 8) -> EncodeStats:
    """Writes ``frames`` (RGB/RGBA, or packed I420 from the rasteriser) to ``path``; frames are produced in
    this thread and encoded in another."""
    stats = EncodeStats()
    q: queue.Queue[object] = queue.Queue(maxsize=queue_frames)
    writer = _FrameWriter(path, width_px, height_px, fps, audio_from=audio_from, audio_start_s=audio_start_s,
                         audio_duration_s=audio_duration_s, alpha=alpha, options=options)

    def drain() -> None:
        try:
            while True:
                item = q.get()
                if item is _DONE:
                    return
                t0 = time.perf_counter()
                writer.write(item)  # type: ignore[arg-type]
                stats.encode_s += time.perf_counter() - t0
        except BaseException as exc:  # noqa: BLE001 - handed back to the producer thread
            stats.errors.append(exc)
            # Keep draining so the producer never blocks on a full queue.
            while q.get() is not _DONE:
                pass

    start = time.perf_counter()
    writer.open()
    thread = threading.Thread(target=drain, name="render-encode", daemon=True)
    thread.start()
    ok = False
    try:
        it = iter(frames)
        while True:
            t0 = time.perf_counter()
            try:
                frame = next(it)
            except StopIteration:
                break
            stats.render_s += time.perf_counter() - t0
            if stats.errors:
                break
            q.put(frame)
            stats.frames += 1
        ok = not stats.errors
    finally:
        q.put(_DONE)
        thread.join()
        if ok and not stats.errors:
            writer.close()
        else:
            writer.abort()
    if stats.errors:
        raise stats.errors[0]
    stats.wall_s = time.perf_counter() - start
    return stats
