"""Encoding: H.264 yuv420p faststart MP4 (default), VP9+alpha WebM or ProRes 4444 MOV for transparency.

Outputs are deterministic (same frames and options -> same bytes): the RGB->YUV conversion is
bit-exact, x264 runs with a fixed thread count (its output depends on the thread count, not on
timing or the CPU's SIMD flavour) and without mb-tree (see `_open_container`), and the muxers
write no creation times or library version strings (`fflags=+bitexact`). Files are written under
a temporary name beside the target and renamed on success, so nothing half-written is ever left
behind. Determinism is tested for H.264; VP9 and ProRes outputs are not promised byte-stable.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from types import TracebackType
from typing import cast

import av
import av.container
import av.video.stream
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation, VideoReformatter

from motion.errors import InputError
from motion.media.audio import AudioCarrier

_NTSC_RATES = (Fraction(24000, 1001), Fraction(30000, 1001), Fraction(60000, 1001))
_CONTAINER_BY_SUFFIX = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".webm": "webm"}
_BT709 = 1  # AVCOL_SPC_BT709 / AVCOL_PRI_BT709 / AVCOL_TRC_BT709
# swscale's SIMD paths round differently per CPU; bit-exact mode makes the RGB->YUV conversion the
# same on every machine, so outputs are byte-identical everywhere. ACCURATE_RND on top of it changes
# nothing for RGB/RGBA -> yuv420p without scaling (the same bytes, tested on noise and rendered frames:
# tests/media/test_encode.py) and costs ~1.6 ms more a 720x1244 frame, so it is left out.
_SWS_FLAGS = Interpolation.BILINEAR | Interpolation.BITEXACT


def exact_fps(fps: float | Fraction | int) -> Fraction:
    """A rational frame rate: NTSC rates snap to n*1000/1001, others to the closest small fraction."""
    if isinstance(fps, Fraction):
        rate = fps
    else:
        rate = Fraction(fps).limit_denominator(1001)
        for ntsc in _NTSC_RATES:
            if abs(float(fps) - float(ntsc)) < 1e-3:
                rate = ntsc
    if rate <= 0 or rate > 240:
        raise InputError("output.fps", "output frame rate must be in (0, 240]", limit="(0, 240]", actual=float(rate))
    return rate


@dataclass(frozen=True)
class EncoderOptions:
    """Quality/speed knobs; the defaults suit a 2-core CPU node."""

    # 20 without mb-tree matches the PSNR of 18 with it (measured on a 720p real clip: 39.84 vs
    # 39.76 dB, at ~1.4x the bytes).
    crf: int = 20
    preset: str = "veryfast"
    # Byte-identical output for identical input (mb-tree off, see `_open_container`); False turns
    # x264's mb-tree back on: ~20% smaller files at equal PSNR, but repeat encodes may differ.
    deterministic: bool = True
    # Fixed, not "auto": x264's bitstream depends on the thread count, and determinism must not
    # depend on the machine's core count.
    threads: int = 4
    # Segment-friendly H.264: every segment opens with an IDR frame, GOPs are closed and the
    # stream headers are identical, so segments rendered in parallel concatenate without re-encoding.
    segment: bool = False
    keyint_s: float = 2.0


def _container_format(path: pathlib.Path, codec: str, alpha: bool) -> tuple[str, str]:
    """(muxer, codec) for an output path and request."""
    suffix = path.suffix.lower()
    fmt = _CONTAINER_BY_SUFFIX.get(suffix)
    if fmt is None:
        raise InputError("output.format", f"output must be .mp4, .mov or .webm, got {suffix!r}",
                         limit="mp4|mov|webm", actual=suffix)
    if alpha:
        if codec in ("prores", "prores_ks"):
            codec = "prores_ks"
            if fmt != "mov":
                raise InputError("output.format", "ProRes 4444 with alpha is written as .mov", limit=".mov", actual=suffix)
        else:
            codec = "libvpx-vp9"
            if fmt != "webm":
                raise InputError("output.format", "transparent output is VP9 WebM: name it .webm (or ask for ProRes .mov)",
                                 limit=".webm", actual=suffix)
    elif fmt == "webm" and codec == "libx264":
        codec = "libvpx-vp9"
    return fmt, codec


class VideoWriter:
    """Writes RGB (or RGBA with alpha) frames to a video file; a context manager.

    Sizes must be even (4:2:0 chroma): callers round their frame size, we do not pad silently.
    The reference audio (`audio_from`) is copied without re-encoding when the container takes its
    codec, else re-encoded (AAC; Opus in WebM), and trimmed to
    [audio_start_s, audio_start_s + audio_duration_s) and to the video's length.
    """

    def __init__(
        self,
        path: str | pathlib.Path,
        width: int,
        height: int,
        fps: float | Fraction,
        audio_from: str | pathlib.Path | None = None,
        audio_start_s: float = 0.0,
        audio_duration_s: float | None = None,
        codec: str = "libx264",
        alpha: bool = False,
        options: EncoderOptions | None = None,
    ) -> None:
        self.path = pathlib.Path(path)
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise InputError("output.even_size_px", f"frame size {width}x{height} must be positive and even",
                             limit="even", actual=f"{width}x{height}")
        self.width, self.height = width, height
        self.fps = exact_fps(fps)
        self.alpha = alpha
        self.options = options or EncoderOptions()
        self.format, self.codec = _container_format(self.path, codec, alpha)
        self.frames_written = 0
        self._audio_from = pathlib.Path(audio_from) if audio_from is not None else None
        self._audio_start_s = audio_start_s
        self._audio_duration_s = audio_duration_s
        self._container: av.container.OutputContainer | None = None
        self._audio: AudioCarrier | None = None
        self._tmp: pathlib.Path | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._reformatter = VideoReformatter()

    # -- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> VideoWriter:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".part", dir=self.path.parent)
        os.close(fd)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; the output is an ordinary file
        self._tmp = pathlib.Path(tmp)
        try:
            self._open_container()
        except BaseException:
            self.abort()
            raise

    def _open_container(self) -> None:
        if self._tmp is None:
            raise RuntimeError("VideoWriter.open() sets the temporary path first")
        container_options = {"fflags": "+bitexact"}
        if self.format in ("mp4", "mov"):
            container_options["movflags"] = "+faststart"
        self._container = av.open(str(self._tmp), mode="w", format=self.format, options=container_options)
        stream = cast(av.video.stream.VideoStream, self._container.add_stream(self.codec, rate=self.fps))
        stream.width, stream.height = self.width, self.height
        stream.time_base = 1 / self.fps
        stream.codec_context.time_base = 1 / self.fps
        stream.codec_context.flags |= 0x00800000  # AV_CODEC_FLAG_BITEXACT: no encoder version in headers
        opts = self.options
        if self.codec == "libx264":
            stream.pix_fmt = "yuv420p"
            stream.codec_context.thread_count = opts.threads
            # mb-tree off when deterministic: with it, x264 (as bundled with PyAV) reads uninitialised
            # heap memory, so a later encode in the same process can differ from the first (measured:
            # 2-6 variants in 8 runs, identical output when malloc zero-fills; none in 25 runs
            # without mb-tree).
            params = [f"threads={opts.threads}", f"mbtree={0 if opts.deterministic else 1}"]
            if opts.segment:
                keyint = max(1, round(float(self.fps) * opts.keyint_s))
                params += [f"keyint={keyint}", "open-gop=0"]
            stream.options = {"crf": str(opts.crf), "preset": opts.preset, "x264-params": ":".join(params)}
        elif self.codec == "libvpx-vp9":
            stream.pix_fmt = "yuva420p" if self.alpha else "yuv420p"
            stream.codec_context.thread_count = opts.threads
            # Good-quality constant-quality VP9 at a speed a CPU node can afford.
            stream.options = {"crf": "30", "b": "0", "deadline": "good", "cpu-used": "5", "row-mt": "1",
                              "auto-alt-ref": "0" if self.alpha else "1"}
        elif self.codec == "prores_ks":
            stream.pix_fmt = "yuva444p10le" if self.alpha else "yuv422p10le"
            stream.options = {"profile": "4" if self.alpha else "2", "vendor": "apl0"}
        elif self.codec.endswith("_nvenc"):
            # GPU nodes: NVENC constant-quality; no B-frame reordering so segments join cleanly.
            stream.pix_fmt = "yuv420p"
            nv: dict[str, object] = {"preset": "p5", "rc": "vbr", "cq": str(opts.crf + 1), "b": "0", "bf": "0"}
            if opts.segment:
                nv |= {"g": str(max(1, round(float(self.fps) * opts.keyint_s))), "forced-idr": "1"}
            stream.options = nv
        else:
            stream.pix_fmt = "yuv420p"
        # BT.709 is what players assume for HD; tag it so they do not guess.
        cc = stream.codec_context
        cc.colorspace = _BT709
        cc.color_primaries = _BT709
        cc.color_trc = _BT709
        cc.color_range = 1  # limited (tv) range
        self._stream = stream
        if self._audio_from is not None:
            self._audio = AudioCarrier(self._audio_from, self._container, self.format,
                                       self._audio_start_s, self._audio_duration_s)

    def write(self, image: np.ndarray) -> None:
        """Encodes one (H, W, 3) RGB or (H, W, 4) RGBA uint8 frame."""
        if self._container is None or self._stream is None:
            raise RuntimeError("VideoWriter is not open (use it as a context manager)")
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
            raise InputError("output.frame", "frames must be (H, W, 3|4) uint8", limit="uint8 HxWx3|4",
                             actual=f"{image.dtype} {image.shape}")
        if image.shape[:2] != (self.height, self.width):
            raise InputError("output.frame_size_px", "frame size differs from the writer's",
                             limit=f"{self.width}x{self.height}", actual=f"{image.shape[1]}x{image.shape[0]}")
        if image.shape[2] == 4 and not self.alpha:
            image = image[:, :, :3]
        fmt = "rgba" if image.shape[2] == 4 else "rgb24"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=fmt)
        frame = self._reformatter.reformat(frame, format=self._stream.pix_fmt, dst_colorspace=Colorspace.ITU709,
                                           dst_color_range=ColorRange.MPEG, interpolation=_SWS_FLAGS, threads=1)
        frame.pts = self.frames_written
        frame.time_base = self._stream.codec_context.time_base
        frame.duration = 1
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1
        if self._audio is not None:
            self._audio.pump(self.frames_written / float(self.fps))

    @property
    def duration_s(self) -> float:
        return float(self.frames_written / self.fps)

    def close(self) -> pathlib.Path:
        """Flushes, finishes the audio, and moves the file into place."""
        if self._container is None or self._stream is None:
            return self.path
        if self.frames_written == 0:
            self.abort()
            raise InputError("output.no_frames", "no frame was written; nothing to encode", limit=">= 1", actual=0)
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            if self._audio is not None:
                self._audio.finish(self.duration_s)
            self._container.close()
            self._container = None
            if self._tmp is not None:
                os.replace(self._tmp, self.path)
            self._tmp = None
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Drops the partial output."""
        if self._audio is not None:
            self._audio.close()
            self._audio = None
        if self._container is not None:
            try:
                self._container.close()
            except av.error.FFmpegError:
                pass  # already failing; the temp file is removed below
            self._container = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None
