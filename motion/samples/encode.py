"""A byte-deterministic MP4 writer for the sample kit (H.264 yuv420p + optional AAC from PCM).

Why not ``motion.media.VideoWriter``: writing the same frames twice with it gave different H.264
bytes in some runs (seen 2026-11-24, threads=1 and 4; identical input planes, decoded pictures
off by one level in a macroblock). The cause traced here is x264's macroblock-tree rate control
(floating point that other libraries' FPU state perturbs): with ``no-mbtree`` 32 of 32 writes were
identical, without it 5 of 16 differed. This writer also zeroes row padding, runs x264 on one thread
and encodes the audio from samples in memory. Files appear atomically (temp name, then rename).
"""

from __future__ import annotations

import os
import pathlib
import tempfile
from fractions import Fraction
from types import TracebackType

import av
import av.container
import numpy as np

_AAC_FRAME = 1024
_BITEXACT = 0x00800000  # AV_CODEC_FLAG_BITEXACT: no encoder version strings


class SampleVideoWriter:
    """Writes (H, W, 3) RGB uint8 frames to an H.264 MP4; ``audio`` is mono float samples in [-1, 1]."""

    def __init__(self, path: str | pathlib.Path, width: int, height: int, fps: float,
                 audio: np.ndarray | None = None, audio_rate_hz: int = 44100, crf: int = 18) -> None:
        self.path = pathlib.Path(path)
        self.width, self.height = width, height
        self.fps = Fraction(fps).limit_denominator(1001)
        self.crf = crf
        self._audio = None if audio is None else np.asarray(audio, np.float32).reshape(1, -1)
        self._audio_rate_hz = audio_rate_hz
        self._audio_pos = 0
        self.frames_written = 0
        self._tmp: pathlib.Path | None = None
        self._container: av.container.OutputContainer | None = None

    def __enter__(self) -> SampleVideoWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".part", dir=self.path.parent)
        os.close(fd)
        self._tmp = pathlib.Path(tmp)
        try:
            self._open()
        except BaseException:
            self._abort()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self._abort()
            return
        try:
            self._finish()
        except BaseException:
            self._abort()
            raise

    def _open(self) -> None:
        self._container = av.open(str(self._tmp), mode="w", format="mp4",
                                  options={"fflags": "+bitexact", "movflags": "+faststart"})
        v = self._container.add_stream("libx264", rate=self.fps)
        v.width, v.height, v.pix_fmt = self.width, self.height, "yuv420p"
        v.codec_context.time_base = 1 / self.fps
        v.codec_context.thread_count = 1
        v.codec_context.flags |= _BITEXACT
        v.options = {"crf": str(self.crf), "preset": "veryfast", "x264-params": "threads=1:no-mbtree=1"}
        self._video = v
        if self._audio is not None:
            a = self._container.add_stream("aac", rate=self._audio_rate_hz)
            a.layout = "mono"
            a.format = "fltp"
            a.bit_rate = 128_000
            a.codec_context.flags |= _BITEXACT
            self._audio_stream = a

    def _zero_padded(self, rgb: np.ndarray) -> av.VideoFrame:
        src = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(
            format="yuv420p", dst_colorspace="ITU709")
        out = av.VideoFrame(self.width, self.height, "yuv420p")
        for p_src, p_dst in zip(src.planes, out.planes, strict=True):
            rows = p_dst.buffer_size // p_dst.line_size
            full = np.zeros((rows, p_dst.line_size), np.uint8)
            data = np.frombuffer(memoryview(p_src), np.uint8).reshape(-1, p_src.line_size)
            h = min(data.shape[0], rows)
            full[:h, :p_dst.width] = data[:h, :p_dst.width]
            p_dst.update(full.tobytes())
        return out

    def write(self, rgb: np.ndarray) -> None:
        if self._container is None:
            raise RuntimeError("SampleVideoWriter is not open (use it as a context manager)")
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"frames must be ({self.height}, {self.width}, 3) uint8, got {rgb.dtype} {rgb.shape}")
        frame = self._zero_padded(rgb)
        frame.pts = self.frames_written
        for packet in self._video.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1
        self._pump_audio(self.frames_written / float(self.fps))

    def _pump_audio(self, until_s: float, final: bool = False) -> None:
        if self._audio is None or self._container is None:
            return
        total = self._audio.shape[1]
        limit = total if final else min(total, int(until_s * self._audio_rate_hz))
        while self._audio_pos < limit and (final or self._audio_pos + _AAC_FRAME <= limit):
            chunk = self._audio[:, self._audio_pos:self._audio_pos + _AAC_FRAME]
            if chunk.shape[1] < _AAC_FRAME:
                chunk = np.pad(chunk, ((0, 0), (0, _AAC_FRAME - chunk.shape[1])))
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="mono")
            frame.sample_rate = self._audio_rate_hz
            frame.pts = self._audio_pos
            for packet in self._audio_stream.encode(frame):
                self._container.mux(packet)
            self._audio_pos += _AAC_FRAME

    def _finish(self) -> None:
        if self._container is None or self._tmp is None:
            return
        for packet in self._video.encode(None):
            self._container.mux(packet)
        if self._audio is not None:
            # Audio never runs past the video.
            self._audio = self._audio[:, : int(self.frames_written / float(self.fps) * self._audio_rate_hz)]
            self._pump_audio(0.0, final=True)
            for packet in self._audio_stream.encode(None):
                self._container.mux(packet)
        self._container.close()
        self._container = None
        os.replace(self._tmp, self.path)
        self._tmp = None

    def _abort(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except av.error.FFmpegError:
                pass  # already failing; the temp file goes below
            self._container = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None
