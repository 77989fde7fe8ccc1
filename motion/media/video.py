"""Reference videos: probe (container facts) and validate (the product spec)."""

from __future__ import annotations

import pathlib
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

import av
import av.container

from motion.errors import InputError, NotFoundError

VIDEO_EXTENSIONS = {".mp4": "mp4", ".mov": "mov", ".m4v": "mp4"}
# PyAV's demuxer for ISO-BMFF files (MP4 and QuickTime MOV share it).
_ISOBMFF_DEMUXER = "mov"
MAX_FPS = 60.0


@dataclass(frozen=True)
class VideoLimits:
    """The product spec for reference videos."""

    min_duration_s: float = 3.0
    max_duration_s: float = 30.0
    max_bytes: int = 50 * 1024 * 1024
    min_side_px: int = 340
    max_side_px: int = 3850
    # Frame-time rounding: a 3 s clip at 30 fps may report 2.9997 s.
    duration_tolerance_s: float = 0.02


@dataclass(frozen=True)
class VideoInfo:
    width: int  # display size: rotation applied
    height: int
    fps: float  # average frame rate
    duration_s: float
    frame_count: int
    codec: str
    has_audio: bool
    audio_codec: str
    rotation_deg: int  # counter-clockwise rotation a player applies (display matrix)
    size_bytes: int
    container: str  # "mp4" | "mov" | other demuxer name

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "video", **asdict(self)}


def open_input(path: pathlib.Path) -> av.container.InputContainer:
    """Opens a media file, turning demuxer failures into `video.corrupt`."""
    try:
        return av.open(str(path), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise InputError("video.corrupt", f"container cannot be opened: {exc}", actual=type(exc).__name__) from None


def stream_rotation_deg(stream: av.video.stream.VideoStream) -> int:
    """Counter-clockwise display rotation of a stream, snapped to a multiple of 90 (0 if none)."""
    tag = stream.metadata.get("rotate")
    if tag is not None:
        try:
            # The legacy `rotate` tag is clockwise.
            return int(round(-float(tag) / 90.0)) * 90 % 360
        except ValueError:
            return 0
    return 0


def _first_frame_rotation(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    """Decodes the first frame (checks the stream decodes) and returns its display rotation."""
    try:
        for frame in container.decode(stream):
            return int(round(frame.rotation / 90.0)) * 90 % 360
    except av.error.FFmpegError as exc:
        raise InputError("video.corrupt", f"video stream does not decode: {exc}", actual=type(exc).__name__) from None
    raise InputError("video.corrupt", "video stream has no decodable frame", actual=0)


def probe_video(path: str | pathlib.Path) -> VideoInfo:
    """Container facts of a video (no product limits). Raises `video.corrupt` / `video.no_video_stream`.

    Demuxes every packet of the video stream (no decoding) so that truncated files are caught
    and the frame count is exact; decodes only the first frame.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise NotFoundError(f"video not found: {path}", path=str(path))
    size = path.stat().st_size
    with open_input(path) as container:
        if not container.streams.video:
            raise InputError("video.no_video_stream", "file has no video stream", limit=1, actual=0)
        stream = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        codec = stream.codec_context.name if stream.codec_context is not None else ""
        demuxer = container.format.name.split(",")[0]
        container_name = demuxer
        if demuxer == _ISOBMFF_DEMUXER:
            brand = container.metadata.get("major_brand", "").strip()
            container_name = "mov" if brand == "qt" else "mp4"
        rotation = _first_frame_rotation(container, stream) or stream_rotation_deg(stream)
        container.seek(0)
        packets = 0
        last_end = None
        first_pts = None
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                packets += 1
                if packet.pts is not None:
                    first_pts = packet.pts if first_pts is None else min(first_pts, packet.pts)
                    end = packet.pts + (packet.duration or 0)
                    last_end = end if last_end is None else max(last_end, end)
        except av.error.FFmpegError as exc:
            raise InputError("video.corrupt", f"container is damaged: {exc}", actual=type(exc).__name__) from None
        if stream.frames and packets < stream.frames:
            raise InputError("video.corrupt", "video is truncated (fewer packets than the index lists)",
                             limit=stream.frames, actual=packets)
        if packets == 0:
            raise InputError("video.corrupt", "video stream has no frames", actual=0)
        tb = stream.time_base or Fraction(1, 1)
        if stream.duration:
            duration_s = float(stream.duration * tb)
        elif last_end is not None and first_pts is not None:
            duration_s = float((last_end - first_pts) * tb)
        elif container.duration:
            duration_s = container.duration / 1_000_000
        else:
            duration_s = 0.0
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else (packets / duration_s if duration_s > 0 else 0.0)
        width, height = stream.codec_context.width, stream.codec_context.height
        if rotation in (90, 270):
            width, height = height, width
        return VideoInfo(
            width=width,
            height=height,
            fps=round(fps, 6),
            duration_s=round(duration_s, 6),
            frame_count=packets,
            codec=codec,
            has_audio=audio is not None,
            audio_codec=audio.codec_context.name if audio is not None and audio.codec_context is not None else "",
            rotation_deg=rotation,
            size_bytes=size,
            container=container_name,
        )


def validate_video(path: str | pathlib.Path, limits: VideoLimits | None = None) -> VideoInfo:
    """Checks a reference video against the product spec and returns its info.

    Rule order (the first broken rule is reported): extension (`video.format`), file size
    (`video.max_bytes`, checked before anything is decoded, so a 60 MB file of garbage reports its
    size), container opens (`video.corrupt`), content matches the extension
    (`video.extension_mismatch`: e.g. WebM/AVI/PNG data named .mp4), a video stream exists
    (`video.no_video_stream`), stream integrity (`video.corrupt`), duration
    (`video.min_duration_s`, `video.max_duration_s`) and frame sides (`video.side_px`).
    """
    limits = limits or VideoLimits()
    path = pathlib.Path(path)
    if not path.is_file():
        raise NotFoundError(f"video not found: {path}", path=str(path))
    ext = path.suffix.lower()
    if ext not in VIDEO_EXTENSIONS:
        raise InputError("video.format", f"reference video must be MP4 or MOV, got {ext or 'no extension'!r}",
                         limit="mp4|mov", actual=ext)
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise InputError("video.max_bytes", f"video is {size} bytes, over the {limits.max_bytes} byte limit",
                         limit=limits.max_bytes, actual=size)
    with open_input(path) as container:
        demuxer = container.format.name.split(",")[0]
    if demuxer != _ISOBMFF_DEMUXER:
        raise InputError("video.extension_mismatch", f"file content is {demuxer!r} but the name ends in {ext}",
                         limit="mp4|mov", actual=demuxer)
    info = probe_video(path)
    if info.duration_s < limits.min_duration_s - limits.duration_tolerance_s:
        raise InputError("video.min_duration_s",
                         f"video lasts {info.duration_s:.2f} s; it must last at least {limits.min_duration_s:g} s",
                         limit=limits.min_duration_s, actual=info.duration_s)
    if info.duration_s > limits.max_duration_s + limits.duration_tolerance_s:
        raise InputError("video.max_duration_s",
                         f"video lasts {info.duration_s:.2f} s; it must last at most {limits.max_duration_s:g} s",
                         limit=limits.max_duration_s, actual=info.duration_s)
    for side in (info.width, info.height):
        if not limits.min_side_px <= side <= limits.max_side_px:
            raise InputError("video.side_px",
                             f"video is {info.width}x{info.height}; sides must be "
                             f"{limits.min_side_px}..{limits.max_side_px} px",
                             limit=f"{limits.min_side_px}..{limits.max_side_px}", actual=side)
    return info
