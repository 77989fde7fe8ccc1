"""Fast paths of the render stage's video output: packed I420 shader, RGBA encode route, route choice."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from motion.media import EncoderOptions, VideoWriter
from services.render.encode import AVBackedFrame, encode_frames, rgba_frame_array
from services.render.layers import RigModel
from services.render.raster import Rasterizer
from services.render.renderer import Renderer, RenderOptions, render_video
from tests.render.synthetic import wave_sequence

W_PX, H_PX = 240, 360  # W % 8 == 0: the packed I420 target applies


def _i420(pack: bool) -> np.ndarray:
    rng = np.random.default_rng(7)
    tex = rng.integers(0, 256, (2, 64, 64, 4), dtype=np.uint8)
    tex[..., :3] = (tex[..., :3].astype(np.uint16) * tex[..., 3:] // 255).astype(np.uint8)  # premultiplied
    bg = rng.integers(0, 256, (H_PX, W_PX, 4), dtype=np.uint8)
    bg[..., 3] = 255
    # Two layers of two triangles each, overlapping, covering most of the frame at odd offsets.
    quad = np.array([[5.5, 3.25], [230.0, 10.0], [12.0, 350.0], [235.0, 340.5]])
    pos = np.concatenate([quad, quad * 0.7 + 30.0])
    uvs = np.array([[0, 0], [1, 0], [0, 1], [1, 1]] * 2, dtype=np.float64)
    ids = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    idx = np.array([[0, 1, 2], [1, 3, 2], [4, 5, 6], [5, 7, 6]], dtype=np.int32)
    with Rasterizer(W_PX, H_PX, tex, uvs, ids, bg, pack_i420=pack) as ras:
        return ras.draw_i420(pos, idx).copy()


def test_packed_i420_equals_r8_shader_bytes_with_width_multiple_of_8() -> None:
    packed, plain = _i420(True), _i420(False)
    assert packed.shape == plain.shape == (H_PX * 3 // 2, W_PX)
    assert int(plain[H_PX:].std()) > 0 and int(plain[:H_PX].std()) > 0  # real content, not a flat frame
    assert np.array_equal(packed, plain)


def test_rgba_frames_encode_to_rgb_route_bytes_with_frame_writer(tmp_path: pathlib.Path) -> None:
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (96, 128, 4), dtype=np.uint8) for _ in range(4)]
    opts = EncoderOptions(segment=True, preset="ultrafast")
    ref = tmp_path / "rgb.mp4"
    with VideoWriter(ref, 128, 96, 10, options=opts) as w:
        for f in frames:
            w.write(np.ascontiguousarray(f[..., :3]))
    out = tmp_path / "rgba.mp4"
    stats = encode_frames(iter(frames), out, 128, 96, 10, options=opts)
    assert stats.frames == 4
    assert out.read_bytes() == ref.read_bytes()


def test_av_backed_frames_encode_to_copied_frame_bytes_with_frame_writer(tmp_path: pathlib.Path) -> None:
    rng = np.random.default_rng(5)
    frames = [rng.integers(0, 256, (96, 128, 4), dtype=np.uint8) for _ in range(4)]
    backed = []
    for f in frames:
        arr = rgba_frame_array(128, 96)
        assert isinstance(arr, AVBackedFrame) and arr.av_frame is not None  # 512-byte rows: no padding
        arr[...] = f
        backed.append(arr)
    # The writer converts the PyAV frame behind the array: same pixels, so the same bytes as a copied array.
    assert np.array_equal(backed[0].av_frame.to_ndarray(format="rgba"), frames[0])
    opts = EncoderOptions(segment=True, preset="ultrafast")
    a, b = tmp_path / "copied.mp4", tmp_path / "backed.mp4"
    encode_frames(iter(frames), a, 128, 96, 10, options=opts)
    encode_frames(iter(backed), b, 128, 96, 10, options=opts)
    assert b.read_bytes() == a.read_bytes()
    # A view sliced from it is not backed (its pixels are not the frame's), so it is copied as usual.
    assert getattr(backed[0][:48], "av_frame", None) is None


def test_raster_read_into_array_gives_read_pixels_with_out_buffer(rig, model: RigModel) -> None:  # type: ignore[no-untyped-def]
    seq = wave_sequence(3)
    with Renderer(rig, RenderOptions(resolution="720p", width=W_PX, height=H_PX), model=model) as r:
        plain = [f.copy() for f in r.render_frames(seq)]
        into = list(r.render_frames(seq, out=lambda: rgba_frame_array(W_PX, H_PX)))
        assert all(isinstance(f, AVBackedFrame) for f in into)
        assert all(np.array_equal(a, b) for a, b in zip(plain, into, strict=True))
        assert int(plain[1].std()) > 0
        with pytest.raises(ValueError, match="writable C-contiguous"):
            r._raster.read(out=np.zeros((H_PX, W_PX, 3), dtype=np.uint8))


def test_render_video_is_byte_identical_across_routes_runs_with_same_inputs(
        rig, model: RigModel, tmp_path: pathlib.Path) -> None:  # type: ignore[no-untyped-def]
    seq = wave_sequence(6)
    opts = RenderOptions(resolution="720p", width=W_PX, height=H_PX,
                         encoder=EncoderOptions(segment=True, preset="ultrafast"))
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    render_video(rig, seq, a, opts, model=model)
    render_video(rig, seq, b, opts, model=model)
    assert a.read_bytes() == b.read_bytes()


def test_i420_shader_route_is_not_preferred_with_llvmpipe(rig, model: RigModel) -> None:  # type: ignore[no-untyped-def]
    with Renderer(rig, RenderOptions(resolution="720p", width=W_PX, height=H_PX), model=model) as r:
        assert r.supports_i420
        if not r._raster.software:
            pytest.skip("a GPU renderer: the shader route is the preferred one there")
        assert not r.prefers_i420


def test_downscaled_textures_match_full_size_sampling_with_minified_output(
        rig, model: RigModel) -> None:  # type: ignore[no-untyped-def]
    """Textures drawn at half size are area-averaged once on upload; the frame must match what sampling the
    full-size texture gives (up to filtering differences), and be repeatable."""
    from services.render import raster

    seq = wave_sequence(4)
    opts = RenderOptions(resolution="720p", width=96, height=144)
    with Renderer(rig, opts, model=model) as r:
        assert r.geometry.scale < 0.6  # the case under test: the character is drawn smaller than it is
        small = r.render_frame(seq, 2).copy()
        again = r.render_frame(seq, 2).copy()
        tex = np.stack([layer.texture_premul for layer in model.layers])
        assert raster.downscale_textures(tex, r.geometry.scale).shape[1] < tex.shape[1]
    original = raster.downscale_textures
    try:
        raster.downscale_textures = lambda t, s: t  # the full-size texture, sampled bilinearly
        with Renderer(rig, opts, model=model) as r:
            full = r.render_frame(seq, 2).copy()
    finally:
        raster.downscale_textures = original
    assert np.array_equal(small, again)
    assert float(small[..., :3].std()) > 5.0
    diff = np.abs(small.astype(np.int16) - full.astype(np.int16))
    assert float(diff.mean()) < 4.0, float(diff.mean())


def test_downscale_textures_keeps_size_with_scale_at_least_one() -> None:
    from services.render.raster import downscale_textures

    tex = np.zeros((2, 40, 30, 4), np.uint8)
    assert downscale_textures(tex, 1.0) is tex
    assert downscale_textures(tex, 2.5) is tex
    assert downscale_textures(tex, 0.5).shape == (2, 20, 15, 4)


def test_gil_free_blit_and_readback_match_moderngl_with_background(
        rig, model: RigModel, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import services.render.raster as raster

    seq = wave_sequence(4)
    opts = RenderOptions(resolution="720p", width=W_PX, height=H_PX, background="solid:#3366aa")

    def frames() -> list[np.ndarray]:
        with Renderer(rig, opts, model=model) as r:
            return [f.copy() for f in r.render_frames(seq, out=lambda: rgba_frame_array(W_PX, H_PX))]

    calls = {"blit": 0, "read": 0}
    blit, read = raster._blit_nogil, raster._read_rgba_nogil

    def counted_blit(*a):  # type: ignore[no-untyped-def]
        calls["blit"] += 1
        return blit(*a)

    def counted_read(*a):  # type: ignore[no-untyped-def]
        calls["read"] += 1
        return read(*a)

    monkeypatch.setattr(raster, "_blit_nogil", counted_blit)
    monkeypatch.setattr(raster, "_read_rgba_nogil", counted_read)
    ours = frames()
    assert calls == {"blit": 4, "read": 4}
    assert raster._gl_proc("glBlitFramebuffer", *[raster._I] * 8, raster._U, raster._U) is not None
    # The same frames through moderngl's own copy and read (the fallback where EGL lacks the entry points).
    monkeypatch.setattr(raster, "_blit_nogil", lambda *a: False)
    monkeypatch.setattr(raster, "_read_rgba_nogil", lambda *a: False)
    theirs = frames()
    assert tuple(int(c) for c in ours[0][2, 2, :3]) == (0x33, 0x66, 0xAA)  # the background is there
    assert all(np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True))
