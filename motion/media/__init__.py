"""Media I/O through PyAV: probe, validate, decode, encode, join segments.

Inputs are checked against the product spec (`validate_image`, `validate_video`) and every
broken rule raises `motion.errors.InputError` with a stable rule id, the limit and the value found.
"""

from motion.media.concat import concat_segments
from motion.media.decode import VideoFrame, iter_frames
from motion.media.encode import EncoderOptions, VideoWriter, exact_fps
from motion.media.image import ImageInfo, ImageLimits, read_image, validate_image
from motion.media.video import VideoInfo, VideoLimits, probe_video, validate_video

__all__ = [
    "EncoderOptions",
    "ImageInfo",
    "ImageLimits",
    "VideoFrame",
    "VideoInfo",
    "VideoLimits",
    "VideoWriter",
    "concat_segments",
    "exact_fps",
    "iter_frames",
    "probe_video",
    "read_image",
    "validate_image",
    "validate_video",
]
