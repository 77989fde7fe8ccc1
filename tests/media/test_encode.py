"""Encoding, audio carry-over, determinism, alpha outputs and segment joining, checked by decoding."""

from __future__ import annotations

import hashlib
import pathlib
from fractions import Fraction

import av
import numpy as np
import pytest

from motion.errors import InputError
from motion.media import EncoderOptions, VideoWriter, concat_segments, exact_fps, iter_frames, probe_video
from tests.media.conftest import listing, pattern_frame, write_video

W, H = 352, 288


def _encode(path: pathlib.Path, frames: range, **kw: object) -> pathlib.Path:
    with VideoWriter(path, W, H, kw.pop("fps", 10), **kw) as w:  # type: ignore[arg-type]
        for i in frames:
            w.write(pattern_frame(W, H, i))
    return path


def _top_level_boxes(data: bytes) -> list[str]:
    boxes, pos = [], 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        boxes.append(data[pos + 4 : pos + 8].decode("latin-1"))
        if size == 1:
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
        if size < 8:
            break
        pos += size
    return boxes


def _audio_packets(path: pathlib.Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def _nal_types(packet: bytes) -> list[int]:
    """NAL unit types of an MP4 (length-prefixed, 4-byte) H.264 packet."""
    types, pos = [], 0
    while pos + 4 < len(packet):
        size = int.from_bytes(packet[pos : pos + 4], "big")
        types.append(packet[pos + 4] & 0x1F)
        pos += 4 + size
    return types


def _decoded(path: pathlib.Path) -> list[np.ndarray]:
    return [f.rgb for f in iter_frames(path)]


def test_write_round_trips_frames_with_h264_faststart(tmp_path: pathlib.Path) -> None:
    path = _encode(tmp_path / "out.mp4", range(12))
    assert listing(tmp_path) == ["out.mp4"] and path.stat().st_mode & 0o777 == 0o644
    info = probe_video(path)
    assert (info.width, info.height, info.frame_count, info.codec, info.fps) == (W, H, 12, "h264", 10.0)
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"
    boxes = _top_level_boxes(path.read_bytes())
    assert boxes.index("moov") < boxes.index("mdat"), boxes
    for i, rgb in enumerate(_decoded(path)):
        diff = np.abs(rgb.astype(int) - pattern_frame(W, H, i).astype(int)).mean()
        assert diff < 3.0, (i, diff)


def test_write_is_deterministic_with_same_frames(tmp_path: pathlib.Path) -> None:
    digests = set()
    for k in range(4):
        path = _encode(tmp_path / f"{k}.mp4", range(15))
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
        # Churn the heap between encodes: uninitialised reads inside the encoder would show up here.
        churn = [np.random.default_rng(k).bytes(200_000) for _ in range(40)]
        del churn
    assert len(digests) == 1


def test_write_keeps_exact_rate_with_ntsc_fps(tmp_path: pathlib.Path) -> None:
    assert exact_fps(29.97) == Fraction(30000, 1001) and exact_fps(25) == Fraction(25)
    path = _encode(tmp_path / "ntsc.mp4", range(6), fps=29.97)
    with av.open(str(path)) as c:
        assert c.streams.video[0].average_rate == Fraction(30000, 1001)


def test_writer_rejects_odd_size_with_351px_width(tmp_path: pathlib.Path) -> None:
    with pytest.raises(InputError) as info:
        VideoWriter(tmp_path / "odd.mp4", 351, 288, 10)
    assert (info.value.rule, info.value.actual) == ("output.even_size_px", "351x288")
    assert listing(tmp_path) == []


def test_writer_leaves_nothing_with_failure_mid_encode(tmp_path: pathlib.Path) -> None:
    with pytest.raises(InputError), VideoWriter(tmp_path / "x.mp4", W, H, 10) as w:
        w.write(pattern_frame(W, H, 0))
        w.write(pattern_frame(W + 2, H, 1))  # wrong size: the writer aborts
    assert listing(tmp_path) == []


def test_write_copies_audio_without_reencode_with_aac_reference(tmp_path: pathlib.Path) -> None:
    ref = write_video(tmp_path / "ref.mp4", frames=40, audio_codec="aac", audio_s=4.0)
    out = _encode(tmp_path / "out.mp4", range(20), audio_from=ref)  # 2.0 s of video
    info = probe_video(out)
    assert info.has_audio and info.audio_codec == "aac"
    src, got = _audio_packets(ref), _audio_packets(out)
    assert got == src[: len(got)]  # the same bytes: copied, not re-encoded
    with av.open(str(out)) as c:
        a = c.streams.audio[0]
        audio_s = float(a.duration * a.time_base)
    assert 1.95 <= audio_s <= 2.0 + 1024 / 48000 + 1e-6  # trimmed to the video (packet granularity)


def test_write_trims_audio_start_with_offset_reference(tmp_path: pathlib.Path) -> None:
    ref = write_video(tmp_path / "ref.mp4", frames=40, audio_codec="aac", audio_s=4.0)
    out = _encode(tmp_path / "out.mp4", range(10), audio_from=ref, audio_start_s=1.0)
    src, got = _audio_packets(ref), _audio_packets(out)
    # The copy starts at the packet nearest 1.0 s (1024-sample AAC packets at 48 kHz) and is contiguous.
    start = src.index(got[0])
    assert abs(start * 1024 / 48000 - 1.0) <= 1024 / 48000
    assert got == src[start : start + len(got)] and len(got) >= 46


def test_write_reencodes_audio_to_aac_with_pcm_mov_reference(tmp_path: pathlib.Path) -> None:
    ref = write_video(tmp_path / "ref.mov", frames=40, audio_codec="pcm_s16le", audio_s=4.0)
    assert probe_video(ref).audio_codec == "pcm_s16le"
    out = _encode(tmp_path / "out.mp4", range(25), audio_from=ref)
    with av.open(str(out)) as c:
        a = c.streams.audio[0]
        assert a.codec_context.name == "aac"
        samples = sum(f.samples for f in c.decode(a))
    assert abs(samples / 48000 - 2.5) < 0.05


@pytest.mark.parametrize("audio_codec", ["aac", "pcm_s16le"])
def test_write_keeps_audio_offset_with_late_starting_audio(tmp_path: pathlib.Path, audio_codec: str) -> None:
    ref = write_video(tmp_path / "ref.mov", frames=40, audio_codec=audio_codec, audio_s=3.0, audio_delay_s=0.5)
    out = _encode(tmp_path / "out.mp4", range(20), audio_from=ref)
    with av.open(str(out)) as c:
        a = c.streams.audio[0]
        assert a.codec_context.name == "aac"
        chunks, first_s = [], None
        for f in c.decode(a):
            first_s = float(f.time) if first_s is None else first_s
            chunks.append(f.to_ndarray()[0])
    samples = np.concatenate(chunks)
    onset_s = first_s + int(np.argmax(np.abs(samples) > 0.02)) / 48000
    # The tone starts 0.5 s after the picture in the reference, and so it does in the output.
    assert abs(onset_s - 0.5) < 0.03, onset_s


def test_concat_matches_segments_frame_for_frame_with_three_segments(tmp_path: pathlib.Path) -> None:
    seg_opts = EncoderOptions(segment=True)
    bounds = [(0, 8), (8, 17), (17, 24)]
    segs = [_encode(tmp_path / f"seg{i}.mp4", range(a, b), options=seg_opts) for i, (a, b) in enumerate(bounds)]
    out = concat_segments(segs, tmp_path / "joined.mp4")
    joined = list(iter_frames(out))
    assert [f.index for f in joined] == list(range(24))
    assert joined[-1].timestamp_s == pytest.approx(2.3)
    expected = [rgb for s in segs for rgb in _decoded(s)]
    assert len(expected) == 24
    for i, (got, want) in enumerate(zip(joined, expected, strict=True)):
        np.testing.assert_array_equal(got.rgb, want, err_msg=f"frame {i}")
    # Remuxed, not re-encoded: the video packets are the segments' packets.
    with av.open(str(out)) as c:
        joined_packets = [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]
    seg_packets = []
    for s in segs:
        with av.open(str(s)) as c:
            packets = [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]
        assert 5 in _nal_types(packets[0])  # every segment opens with an IDR slice
        seg_packets += packets
    assert joined_packets == seg_packets
    boxes = _top_level_boxes(out.read_bytes())
    assert boxes.index("moov") < boxes.index("mdat")
    # And close to one single render of the same frames.
    single = _decoded(_encode(tmp_path / "single.mp4", range(24)))
    assert max(np.abs(a.rgb.astype(int) - b.astype(int)).mean() for a, b in zip(joined, single, strict=True)) < 2.0


def test_concat_adds_audio_with_reference(tmp_path: pathlib.Path) -> None:
    ref = write_video(tmp_path / "ref.mp4", frames=40, audio_codec="aac", audio_s=4.0)
    seg_opts = EncoderOptions(segment=True)
    segs = [_encode(tmp_path / f"s{i}.mp4", range(10 * i, 10 * i + 10), options=seg_opts) for i in range(2)]
    out = concat_segments(segs, tmp_path / "joined.mp4", audio_from=ref)
    info = probe_video(out)
    assert info.has_audio and info.frame_count == 20
    got = _audio_packets(out)
    assert got == _audio_packets(ref)[: len(got)] and abs(len(got) * 1024 / 48000 - 2.0) <= 0.05


def test_concat_rejects_mismatch_with_different_sizes(tmp_path: pathlib.Path) -> None:
    a = _encode(tmp_path / "a.mp4", range(3))
    with VideoWriter(tmp_path / "b.mp4", 384, 288, 10) as w:
        w.write(np.zeros((288, 384, 3), np.uint8))
    with pytest.raises(InputError) as info:
        concat_segments([a, tmp_path / "b.mp4"], tmp_path / "j.mp4")
    assert info.value.rule == "concat.mismatch"
    assert listing(tmp_path) == ["a.mp4", "b.mp4"]


def _rgba(i: int) -> np.ndarray:
    alpha = np.zeros((H, W), np.uint8)
    alpha[H // 4 : 3 * H // 4, W // 4 : 3 * W // 4] = 255
    return np.dstack([pattern_frame(W, H, i), alpha])


def test_write_keeps_alpha_with_vp9_webm(tmp_path: pathlib.Path) -> None:
    ref = write_video(tmp_path / "ref.mp4", frames=40, audio_codec="aac", audio_s=4.0)
    path = tmp_path / "alpha.webm"
    with VideoWriter(path, W, H, 10, alpha=True, audio_from=ref) as w:
        for i in range(4):
            w.write(_rgba(i))
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "vp9"
        assert c.streams.audio[0].codec_context.name == "opus"  # AAC cannot go into WebM: re-encoded
        # FFmpeg's native VP9 decoder drops alpha; libvpx reads the alpha side channel.
        dec = av.CodecContext.create("libvpx-vp9", "r")
        frames = [f for p in c.demux(stream) for f in dec.decode(p)]
    assert len(frames) == 4 and frames[0].format.name == "yuva420p"
    rgba = frames[0].to_ndarray(format="rgba")
    assert rgba[H // 2, W // 2, 3] > 240 and rgba[5, 5, 3] < 15


def test_write_keeps_alpha_with_prores_4444_mov(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "alpha.mov"
    with VideoWriter(path, W, H, 10, alpha=True, codec="prores_ks") as w:
        for i in range(3):
            w.write(_rgba(i))
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "prores"
        frame = next(c.decode(stream))
        assert frame.format.name.startswith("yuva444p")
        rgba = frame.to_ndarray(format="rgba")
    assert rgba[H // 2, W // 2, 3] > 250 and rgba[5, 5, 3] < 5


def test_writer_rejects_alpha_with_mp4_name(tmp_path: pathlib.Path) -> None:
    with pytest.raises(InputError) as info:
        VideoWriter(tmp_path / "a.mp4", W, H, 10, alpha=True)
    assert info.value.rule == "output.format"


def test_write_is_deterministic_with_copied_audio(tmp_path: pathlib.Path) -> None:
    ref = write_video(tmp_path / "ref.mp4", frames=40, audio_codec="aac", audio_s=4.0)
    a = _encode(tmp_path / "a.mp4", range(12), audio_from=ref)
    b = _encode(tmp_path / "b.mp4", range(12), audio_from=ref)
    assert a.read_bytes() == b.read_bytes()


def test_writer_rejects_close_with_no_frames(tmp_path: pathlib.Path) -> None:
    with pytest.raises(InputError) as info, VideoWriter(tmp_path / "empty.mp4", W, H, 10):
        pass
    assert info.value.rule == "output.no_frames"
    assert listing(tmp_path) == []


@pytest.mark.parametrize("fmt", ["rgba", "rgb24"])
def test_rgb_to_yuv_conversion_equals_accurate_rounding_with_bitexact_flags(fmt: str) -> None:
    # The writer converts with BITEXACT alone; ACCURATE_RND would cost ~1.6 ms a 720p frame for the same
    # bytes. If an FFmpeg build ever made them differ, outputs could differ between machines: this fails.
    import cv2
    from av.video.reformatter import ColorRange, Colorspace, Interpolation, VideoReformatter

    from motion.media.encode import _SWS_FLAGS

    assert not _SWS_FLAGS & Interpolation.ACCURATE_RND and _SWS_FLAGS & Interpolation.BITEXACT
    rng = np.random.default_rng(11)
    for blur in (1, 5, 15):  # pure noise to smooth gradients, odd sizes for the chroma edges
        img = cv2.GaussianBlur(rng.integers(0, 256, (362, 642, 4), dtype=np.uint8), (blur, blur), 0)
        src = img if fmt == "rgba" else np.ascontiguousarray(img[..., :3])
        outs = [VideoReformatter().reformat(
            av.VideoFrame.from_ndarray(src, format=fmt), format="yuv420p", dst_colorspace=Colorspace.ITU709,
            dst_color_range=ColorRange.MPEG, interpolation=flags, threads=1).to_ndarray()
            for flags in (_SWS_FLAGS, _SWS_FLAGS | Interpolation.ACCURATE_RND)]
        assert int(outs[0].std()) > 0
        assert np.array_equal(outs[0], outs[1])
