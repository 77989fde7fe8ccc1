"""Joins encoded segments without re-encoding: packets are remuxed with shifted timestamps.

Segments must share their encoding parameters (codec, size, stream headers) and each must open
with a keyframe and have closed GOPs, as `VideoWriter(..., options=EncoderOptions(segment=True))`
writes them; the joined file then decodes to exactly the frames of the segments in turn.
Only the segments' video is taken; sound comes from `audio_from` (the reference), trimmed to the
joined length, exactly as `VideoWriter` would add it.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
from collections.abc import Sequence
from fractions import Fraction

import av

from motion.errors import InputError, NotFoundError
from motion.media.audio import AudioCarrier
from motion.media.video import open_input


def _signature(stream: av.video.stream.VideoStream) -> tuple[object, ...]:
    cc = stream.codec_context
    return (cc.name, cc.width, cc.height, cc.pix_fmt, bytes(cc.extradata or b""), stream.time_base)


def concat_segments(
    paths: Sequence[str | pathlib.Path],
    out_path: str | pathlib.Path,
    audio_from: str | pathlib.Path | None = None,
    audio_start_s: float = 0.0,
) -> pathlib.Path:
    """Concatenates MP4 segments into `out_path` (faststart MP4), optionally adding the reference audio."""
    if not paths:
        raise InputError("concat.segments", "no segments to join", limit=">= 1", actual=0)
    seg_paths = [pathlib.Path(p) for p in paths]
    for p in seg_paths:
        if not p.is_file():
            raise NotFoundError(f"segment not found: {p}", path=str(p))
    out_path = pathlib.Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".part", dir=out_path.parent)
    os.close(fd)
    os.chmod(tmp_name, 0o644)  # mkstemp makes it owner-only; the output is an ordinary file
    tmp = pathlib.Path(tmp_name)
    audio: AudioCarrier | None = None
    try:
        with open_input(seg_paths[0]) as first:
            if not first.streams.video:
                raise InputError("video.no_video_stream", f"segment {seg_paths[0].name} has no video", actual=0)
            reference = _signature(first.streams.video[0])
            fmt = "mov" if out_path.suffix.lower() == ".mov" else "mp4"
            options = {"movflags": "+faststart", "fflags": "+bitexact"}
            with av.open(str(tmp), mode="w", format=fmt, options=options) as output:
                out_stream = output.add_stream_from_template(first.streams.video[0])
                if audio_from is not None:
                    audio = AudioCarrier(pathlib.Path(audio_from), output, fmt, audio_start_s)
                offset = Fraction(0)  # seconds already written
                for index, seg_path in enumerate(seg_paths):
                    offset = _copy_segment(seg_path, index, reference, out_stream, output, offset, audio)
                if audio is not None:
                    audio.finish(float(offset))
                    audio = None
        os.replace(tmp, out_path)
    except BaseException:
        if audio is not None:
            audio.close()
        tmp.unlink(missing_ok=True)
        raise
    return out_path


def _copy_segment(
    seg_path: pathlib.Path,
    index: int,
    reference: tuple[object, ...],
    out_stream: av.video.stream.VideoStream,
    output: av.container.OutputContainer,
    offset_s: Fraction,
    audio: AudioCarrier | None,
) -> Fraction:
    """Remuxes one segment's video packets at `offset_s`; returns the offset after it."""
    with open_input(seg_path) as seg:
        if not seg.streams.video:
            raise InputError("video.no_video_stream", f"segment {seg_path.name} has no video", actual=0)
        stream = seg.streams.video[0]
        if _signature(stream) != reference:
            raise InputError("concat.mismatch", f"segment {index} ({seg_path.name}) was encoded differently",
                             limit="same codec, size and stream headers as segment 0", actual=seg_path.name)
        tb = stream.time_base or Fraction(1, 90000)
        shift = int(offset_s / tb)
        origin = stream.start_time or 0
        seg_end = 0
        first = True
        for packet in seg.demux(stream):
            if packet.size == 0 or packet.pts is None:
                continue
            if first and not packet.is_keyframe:
                raise InputError("concat.keyframe", f"segment {index} ({seg_path.name}) does not open with a keyframe",
                                 actual=seg_path.name)
            first = False
            pts = packet.pts - origin
            seg_end = max(seg_end, pts + (packet.duration or 0))
            packet.pts = pts + shift
            packet.dts = (packet.dts - origin + shift) if packet.dts is not None else packet.pts
            packet.stream = out_stream
            output.mux(packet)
            if audio is not None:
                audio.pump(float((packet.dts or 0) * tb))
        if stream.duration:
            seg_end = max(seg_end, stream.duration)
        return offset_s + Fraction(seg_end) * tb
