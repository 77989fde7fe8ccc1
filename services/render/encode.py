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
from av.video.reformatter import ColorRange, Colorspace

from motion.errors import InputError
from motion.media import EncoderOptions, VideoWriter
from motion.media.encode import _SWS_FLAGS

_DONE = object()


class AVBackedFrame(np.ndarray):
    """An (H, W, 4) RGBA array that is a view of a PyAV frame's own pixel buffer (see ``rgba_frame_array``):
    the writer converts that frame directly instead of copying the array into a new one."""

    av_frame: av.VideoFrame | None = None  # views sliced from it get the class default (None): copied


def rgba_frame_array(width_px: int, height_px: int) -> np.ndarray:
    """A writable (H, W, 4) uint8 array for one rendered RGBA frame, backed by a PyAV frame when its rows are
    unpadded, so the rasteriser reads pixels straight into the encoder's frame. Saves a 4-byte-per-pixel
    copy made while holding the GIL (from_ndarray: ~0.7 ms a 720x1244 frame, in the writer thread, stalling
    the rendering thread)."""
    frame = av.VideoFrame(width_px, height_px, "rgba")
    plane = frame.planes[0]
    if plane.line_size != width_px * 4:
        return np.empty((height_px, width_px, 4), dtype=np.uint8)
    arr = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(height_px, width_px, 4).view(AVBackedFrame)
    arr.av_frame = frame
    return arr


class _FrameWriter(VideoWriter):
    """VideoWriter that also takes packed I420 frames (converted by the rasteriser's shader) and opaque RGBA
    frames without the RGB copy.

    On llvmpipe the shader conversion costs more CPU than swscale does from RGBA (measured at 720x1080: ~9 ms
    against ~2.7 ms per frame), so opaque frames normally come as RGBA and are converted here, in the writer
    thread, overlapped with rendering; a GPU reads back 1.5 instead of 4 bytes per pixel with I420.
    The base class slices RGBA to RGB first: that copy plus swscale's rgb24 input path costs ~7 ms against
    ~2.7 ms from RGBA, which swscale converts to the same bytes (alpha is ignored for yuv420p).
    TODO(media): public ``write_i420``/RGBA fast paths on VideoWriter would let this subclass go (it uses the
    writer's stream, reformatter and audio members).
    """

    def write(self, image: np.ndarray) -> None:
        container, stream = self._container, self._stream
        if container is None or stream is None:
            raise RuntimeError("VideoWriter is not open (use it as a context manager)")
        if image.ndim == 3 and image.shape[2] == 4 and image.dtype == np.uint8 and not self.alpha \
                and stream.pix_fmt == "yuv420p":
            if image.shape[:2] != (self.height, self.width):
                raise InputError("output.frame_size_px", "frame size differs from the writer's",
                                 limit=f"{self.width}x{self.height}", actual=f"{image.shape[1]}x{image.shape[0]}")
            rgba = getattr(image, "av_frame", None)
            if rgba is None:
                rgba = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgba")
            # Same conversion as VideoWriter.write (fixed, bit-exact swscale flags): deterministic bytes.
            self._encode(self._reformatter.reformat(
                rgba, format="yuv420p", dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG,
                interpolation=_SWS_FLAGS, threads=1))
            return
        if image.ndim != 2:
            super().write(image)
            return
        if image.shape != (self.height * 3 // 2, self.width) or stream.pix_fmt != "yuv420p":
            raise InputError("output.frame", "I420 frames must be (H * 3/2, W) uint8 for a yuv420p stream",
                             limit=f"{self.height * 3 // 2}x{self.width}", actual=f"{image.shape} {stream.pix_fmt}")
        self._encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="yuv420p"))

    def _encode(self, frame: av.VideoFrame) -> None:
        container, stream = self._container, self._stream
        if container is None or stream is None:
            raise RuntimeError("VideoWriter is not open (use it as a context manager)")
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
