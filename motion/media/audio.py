"""Carries a reference video's audio into an output file: copied when the container accepts the codec,
re-encoded otherwise, always trimmed to a time window and interleaved with the video as it is written.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from fractions import Fraction
from typing import cast

import av
import av.audio.stream
import av.container
import numpy as np

from motion.media.video import open_input

# Audio codecs each output container takes as they are (no re-encoding).
COPYABLE_AUDIO = {
    "mp4": {"aac", "mp3", "alac", "opus", "flac", "ac3", "eac3"},
    "mov": {"aac", "mp3", "alac", "pcm_s16le", "pcm_s24le", "pcm_s16be", "pcm_s24be", "pcm_f32le"},
    "webm": {"opus", "vorbis"},
}
# What an audio stream is re-encoded to when it cannot be copied.
FALLBACK_AUDIO = {"mp4": ("aac", "fltp"), "mov": ("aac", "fltp"), "webm": ("libopus", "s16")}
_FALLBACK_RATES = {"libopus": 48000}


class AudioCarrier:
    """Reads audio from `source` in [start_s, start_s + duration_s) and muxes it into `output`.

    `pump(until_s)` writes what lies before an output time (call it as video is written so the
    file stays interleaved); `finish(end_s)` writes the rest up to the video's end and flushes.
    Copied audio is trimmed to whole packets (plus one pre-roll packet the decoder needs, hidden
    by the MP4 edit list); re-encoded audio is trimmed to the sample.
    """

    def __init__(
        self,
        source: pathlib.Path,
        output: av.container.OutputContainer,
        out_format: str,
        start_s: float = 0.0,
        duration_s: float | None = None,
    ) -> None:
        self._input = open_input(source)
        self._output = output
        self.active = bool(self._input.streams.audio)
        self.copied = False
        self._start_s = max(0.0, start_s)
        self._limit_s = float("inf") if duration_s is None else max(0.0, duration_s)
        self._next: tuple[float, av.Packet] | None = None
        self._done = False
        if not self.active:
            self._input.close()
            return
        self._in_stream = self._input.streams.audio[0]
        # Output time 0 is source time `start_s` on the source's *video* clock, so audio that
        # starts late (or early) in the source keeps its offset to the picture.
        video = self._input.streams.video[0] if self._input.streams.video else None
        self._origin_s = float(video.start_time * video.time_base) if video and video.start_time is not None \
            and video.time_base else 0.0
        name = self._in_stream.codec_context.name
        self.copied = name in COPYABLE_AUDIO.get(out_format, set())
        if self.copied:
            self._out_stream = output.add_stream_from_template(self._in_stream)
            self._packets: Iterator[tuple[float, av.Packet]] = self._copy_packets()
            return
        codec, fmt = FALLBACK_AUDIO[out_format]
        in_cc = self._in_stream.codec_context
        self._rate = _FALLBACK_RATES.get(codec, in_cc.sample_rate or 48000)
        layout = "stereo" if (in_cc.channels or 2) >= 2 else "mono"
        self._enc = cast(av.audio.stream.AudioStream, output.add_stream(codec, rate=self._rate))
        self._enc.layout = layout
        self._enc.format = fmt
        self._enc.bit_rate = 160_000
        self._out_stream = self._enc
        self._resampler = av.AudioResampler(format=fmt, layout=layout, rate=self._rate)
        self._fifo = av.AudioFifo()
        self._decoded: Iterator[av.AudioFrame] = self._input.decode(self._in_stream)
        self._skip: int | None = None  # samples to drop (or, negative, silence to insert); set on the first frame
        self._written = 0
        self._eof = False

    # -- copy ----------------------------------------------------------------------------------------
    def _copy_packets(self) -> Iterator[tuple[float, av.Packet]]:
        tb = self._in_stream.time_base or Fraction(1, self._in_stream.codec_context.sample_rate or 48000)
        start_pts = int(round((self._origin_s + self._start_s) / tb))
        shift: int | None = None
        preroll: av.Packet | None = None
        for packet in self._input.demux(self._in_stream):
            if packet.pts is None or packet.size == 0:
                continue
            if shift is None:
                if packet.pts < start_pts - (packet.duration or 0) // 2:
                    preroll = packet  # AAC and friends need the packet before the cut to decode it
                    continue
                shift = start_pts
                if preroll is not None and preroll.pts is not None and preroll.pts < shift:
                    yield 0.0, self._retime(preroll, shift)
            rel_s = float((packet.pts - shift) * tb)
            if rel_s >= self._limit_s:
                return
            yield rel_s, self._retime(packet, shift)

    def _retime(self, packet: av.Packet, shift: int) -> av.Packet:
        packet.pts = packet.pts - shift if packet.pts is not None else None
        packet.dts = packet.dts - shift if packet.dts is not None else packet.pts
        packet.stream = self._out_stream
        return packet

    def _pump_copy(self, until_s: float, final: bool) -> None:
        while True:
            if self._next is None:
                if self._done:
                    return
                try:
                    self._next = next(self._packets)
                except StopIteration:
                    self._done = True
                    return
            t_s, packet = self._next
            if t_s >= (self._limit_s if final else until_s):
                if final:  # past the video's end: dropped
                    self._done = True
                    self._next = None
                return
            self._output.mux(packet)
            self._next = None

    # -- re-encode -----------------------------------------------------------------------------------
    def _fill(self, samples: int) -> None:
        """Decodes until the FIFO holds `samples` samples of the window (or the source ends)."""
        while self._fifo.samples < samples and not self._eof:
            try:
                frame = next(self._decoded)
                if self._skip is None:
                    first_s = frame.time if frame.time is not None else self._origin_s
                    self._skip = int(round((self._origin_s + self._start_s - first_s) * self._rate))
                    if self._skip < 0:  # the source's audio starts after the window: lead with silence
                        self._fifo.write(self._silence(-self._skip))
                        self._skip = 0
                frame.pts = None
                chunks = self._resampler.resample(frame)
            except StopIteration:
                self._eof = True
                chunks = self._resampler.resample(None)
            for chunk in chunks:
                chunk.pts = None
                self._fifo.write(chunk)
            if self._skip and self._fifo.samples:
                take = min(self._skip, self._fifo.samples)
                self._fifo.read(take)
                self._skip -= take

    def _silence(self, samples: int) -> av.AudioFrame:
        fmt = self._enc.format.name
        layout = self._enc.layout.name
        channels = self._enc.layout.nb_channels
        planar = self._enc.format.is_planar
        dtype = {"fltp": np.float32, "flt": np.float32, "s16": np.int16, "s16p": np.int16}[fmt]
        shape = (channels, samples) if planar else (1, samples * channels)
        frame = av.AudioFrame.from_ndarray(np.zeros(shape, dtype), format=fmt, layout=layout)
        frame.sample_rate = self._rate
        return frame

    def _encode(self, frame: av.AudioFrame | None) -> None:
        if frame is not None:
            frame.pts = self._written
            frame.time_base = Fraction(1, self._rate)
            self._written += frame.samples
        for packet in self._enc.encode(frame):
            self._output.mux(packet)

    def _pump_encode(self, until_s: float, final: bool) -> None:
        if self._done:
            return
        size = self._enc.codec_context.frame_size or 1024
        target = int(round(min(until_s, self._limit_s) * self._rate))
        # Whole encoder frames only: a short frame is allowed once, as the last one.
        while self._written + size <= target:
            self._fill(size)
            if self._fifo.samples < size:
                break
            self._encode(self._fifo.read(size))
        if final:
            rest = target - self._written
            if rest > 0:
                self._fill(rest)
                if self._fifo.samples:
                    self._encode(self._fifo.read(min(rest, self._fifo.samples)))
            self._encode(None)
            self._done = True

    # -- public --------------------------------------------------------------------------------------
    def pump(self, until_s: float, final: bool = False) -> None:
        """Muxes the audio that starts before output time `until_s`."""
        if not self.active:
            return
        if self.copied:
            self._pump_copy(until_s, final)
        else:
            self._pump_encode(until_s, final)

    def finish(self, end_s: float) -> None:
        """Writes the audio up to the video's end (`end_s`) and flushes the encoder."""
        if self.active:
            self._limit_s = min(self._limit_s, end_s)
            self.pump(self._limit_s, final=True)
        self.close()

    def close(self) -> None:
        self._input.close()
