"""Bounded-memory decoding: one RGB frame at a time, rotation applied, resampled to a constant rate."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from av.video.reformatter import Colorspace, VideoReformatter

from motion.errors import InputError, NotFoundError
from motion.media.encode import exact_fps
from motion.media.video import MAX_FPS, open_input, stream_rotation_deg

# colorspace tag (AVColorSpace) -> the matrix swscale must use to turn the YUV back into RGB.
_BT709 = 1


@dataclass(frozen=True)
class VideoFrame:
    index: int  # output frame index at the constant output rate
    timestamp_s: float  # index / fps
    rgb: np.ndarray  # (H, W, 3) uint8, display orientation


def frame_to_rgb(frame: av.VideoFrame, reformatter: VideoReformatter | None = None) -> np.ndarray:
    """RGB with the matrix the stream declares (BT.709 when tagged, BT.601 otherwise, like players)."""
    if frame.format.name == "rgb24":
        return frame.to_ndarray()
    src = Colorspace.ITU709 if int(frame.colorspace) == _BT709 else Colorspace.ITU601
    # A kept reformatter reuses its swscale context across frames of one stream.
    rgb = (reformatter or VideoReformatter()).reformat(frame, format="rgb24", src_colorspace=src)
    return rgb.to_ndarray()


def rotate_rgb(rgb: np.ndarray, rotation_deg: int) -> np.ndarray:
    """Applies a counter-clockwise display rotation (multiple of 90)."""
    k = (rotation_deg // 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k=k)) if k else rgb


def _output_fps(stream: av.video.stream.VideoStream, fps: float | Fraction | None) -> Fraction:
    if fps is not None:
        if fps <= 0:
            raise InputError("video.fps", "output frame rate must be positive", limit="> 0", actual=fps)
        return exact_fps(fps)
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate:
        raise InputError("video.corrupt", "video frame rate is unknown", actual=None)
    rate = Fraction(rate)
    return rate if rate <= MAX_FPS else Fraction(int(MAX_FPS))


def iter_frames(
    path: str | pathlib.Path,
    fps: float | Fraction | None = None,
    max_duration_s: float | None = None,
    start_frame: int = 0,
) -> Iterator[VideoFrame]:
    """Yields frames at a constant `fps` (default: the average rate, capped at 60), rotation applied.

    Output frame k shows the source frame on screen at time k / fps (the latest one whose timestamp
    is at most a quarter output frame later), so variable frame rate sources are resampled by
    timestamp and frames are repeated or dropped as needed. Only the previous decoded frame is
    held, so memory does not grow with the video's length. `start_frame` seeks (to the keyframe
    before it) instead of decoding everything up to it.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise NotFoundError(f"video not found: {path}", path=str(path))
    if start_frame < 0:
        raise InputError("video.start_frame", "start frame must be >= 0", limit=0, actual=start_frame)
    with open_input(path) as container:
        if not container.streams.video:
            raise InputError("video.no_video_stream", "file has no video stream", limit=1, actual=0)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        out_fps = _output_fps(stream, fps)
        tb = stream.time_base or Fraction(1, 1)
        origin_s = float(stream.start_time * tb) if stream.start_time is not None else 0.0
        tolerance_s = 0.25 / float(out_fps)
        end_limit_s = float("inf") if max_duration_s is None else max_duration_s
        stream_end_s = float(stream.duration * tb) if stream.duration else None
        if start_frame > 0:
            target_pts = int((origin_s + start_frame / float(out_fps)) / tb)
            container.seek(target_pts, stream=stream, backward=True, any_frame=False)
        rotation_tag = stream_rotation_deg(stream)
        reformatter = VideoReformatter()

        k = start_frame
        prev_rgb: np.ndarray | None = None
        prev_t = 0.0
        last_step_s = 1.0 / float(out_fps)
        try:
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                t = frame.time - origin_s
                # Emit every output slot the previous frame covers, up to this frame's start.
                while prev_rgb is not None and k / out_fps + tolerance_s < t:
                    ts = float(k / out_fps)
                    if ts >= end_limit_s:
                        return
                    yield VideoFrame(index=k, timestamp_s=ts, rgb=prev_rgb)
                    k += 1
                if prev_rgb is not None:
                    last_step_s = max(t - prev_t, 1e-6)
                rotation = int(round(frame.rotation / 90.0)) * 90 % 360 or rotation_tag
                prev_rgb = rotate_rgb(frame_to_rgb(frame, reformatter), rotation)
                prev_t = t
        except av.error.FFmpegError as exc:
            raise InputError("video.corrupt", f"video stream stopped decoding: {exc}",
                             actual=type(exc).__name__) from None
        if prev_rgb is None:
            return
        # The last frame stays on screen for its own duration (or the stream's end when known).
        end_s = prev_t + last_step_s
        if stream_end_s is not None and stream_end_s - origin_s > prev_t:
            end_s = stream_end_s - origin_s
        while k / out_fps + tolerance_s < end_s:
            ts = float(k / out_fps)
            if ts >= end_limit_s:
                return
            yield VideoFrame(index=k, timestamp_s=ts, rgb=prev_rgb)
            k += 1
