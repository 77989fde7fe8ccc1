"""Renderer: EGL, skinning, rest pose fidelity, exact rig, determinism, chunks, layers, backgrounds, encoding."""

from __future__ import annotations

import hashlib
import pathlib

import av
import cv2
import numpy as np
import pytest

from motion.media import EncoderOptions, concat_segments
from services.render.check import bone_angle_errors_deg
from services.render.composite import frame_geometry
from services.render.layers import RigModel
from services.render.raster import create_context
from services.render.renderer import Renderer, RenderOptions, render_video
from services.render.skin import MAX_INFLUENCES, Part
from tests.render.synthetic import H_PX, W_PX, posed_frame, wave_sequence

SMALL = RenderOptions(resolution="720p", width=240, height=360)


def _decode(path: pathlib.Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_create_context_succeeds_with_egl_backend() -> None:
    ctx = create_context()
    try:
        assert ctx.version_code >= 330
    finally:
        ctx.release()


def test_skin_weights_are_normalised_and_bounded_with_synthetic_character(model: RigModel) -> None:
    assert {layer.part for layer in model.layers} == set(Part)
    for layer in model.layers:
        w = layer.skin.weight
        assert w.shape[1] <= MAX_INFLUENCES
        assert np.all(w >= 0)
        np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-9)


def test_render_rest_pose_matches_character_with_keep_background(rig, model: RigModel) -> None:  # type: ignore[no-untyped-def]
    with Renderer(rig, SMALL, model=model) as r:
        frame = r.render_frame(None, None)
    a = rig.texture_rgba[..., 3:4].astype(np.float64) / 255.0
    original = rig.texture_rgba[..., :3] * a + rig.background_rgb * (1 - a)
    diff = np.abs(frame[..., :3].astype(np.float64) - original)
    # Identity geometry (240x360 -> 240x360): only edge anti-aliasing may differ.
    assert diff.mean() < 2.0, diff.mean()
    assert np.percentile(diff, 99) < 60


def test_deformed_bones_follow_target_within_one_degree_mean_with_wave(model: RigModel) -> None:
    seq = wave_sequence(8)
    errors = [e for f in seq.frames for e in bone_angle_errors_deg(model, f).values()]
    assert len(errors) > 8 * 10
    assert float(np.mean(errors)) <= 1.0, float(np.mean(errors))


def test_render_is_byte_identical_with_same_inputs(rig, model: RigModel) -> None:  # type: ignore[no-untyped-def]
    seq = wave_sequence(4)
    digests = []
    for _ in range(2):
        with Renderer(rig, SMALL) as r:
            h = hashlib.sha256()
            for frame in r.render_frames(seq):
                h.update(frame.tobytes())
            digests.append(h.hexdigest())
    assert digests[0] == digests[1]


def test_render_range_equals_full_render_with_middle_chunk(rig, model: RigModel) -> None:  # type: ignore[no-untyped-def]
    seq = wave_sequence(8, behind_from=4)
    with Renderer(rig, SMALL, model=model) as r:
        full = list(r.render_frames(seq))
    with Renderer(rig, SMALL, model=model) as r:
        chunk = list(r.render_frames(seq, 3, 6))
    assert len(chunk) == 3
    for a, b in zip(full[3:6], chunk, strict=True):
        assert np.array_equal(a, b)
    assert not np.array_equal(full[0], full[7])  # the character really moves


def test_concat_segments_equal_single_render_with_lossless_encoding(rig, model: RigModel,  # type: ignore[no-untyped-def]
                                                                     tmp_path: pathlib.Path) -> None:
    seq = wave_sequence(9)
    opts = RenderOptions(resolution="720p", width=240, height=360, encoder=EncoderOptions(crf=0, segment=True))
    single = render_video(rig, seq, tmp_path / "single.mp4", opts, model=model)
    parts = [render_video(rig, seq, tmp_path / f"seg{i}.mp4", opts, start=a, end=b, model=model)
             for i, (a, b) in enumerate(((0, 4), (4, 9)))]
    joined = concat_segments(parts, tmp_path / "joined.mp4")
    a, b = _decode(single), _decode(joined)
    assert len(a) == len(b) == 9
    for fa, fb in zip(a, b, strict=True):
        assert np.array_equal(fa, fb)
    with av.open(str(joined)) as c:
        stream = c.streams.video[0]
        assert stream.average_rate is not None and c.duration is not None
        assert abs(float(stream.average_rate) - 12.0) < 1e-6
        assert abs(c.duration / 1e6 - 0.75) < 0.05


def _arm_pixel(rig, model, behind: bool) -> np.ndarray:  # type: ignore[no-untyped-def]
    # The left arm swung across the chest: at the chest, either the arm (front) or the torso (behind) shows.
    frame = posed_frame(0, 12.0, left_arm_deg=60, left_elbow_deg=40, right_arm_deg=0,
                        left_arm_z_m=0.3 if behind else -0.2)
    from motion.skeleton import SkeletonSequence

    seq = SkeletonSequence(fps=12.0, width=W_PX, height=H_PX, frames=[frame], space="character_pixels")
    with Renderer(rig, SMALL, model=model) as r:
        img = r.render_frame(seq, 0)
        verts = r.deformed_vertices(seq.frames[0])
    # A point on the deformed forearm axis, inside the trunk.
    layer_i = r.parts.index(Part.LEFT_ARM)
    arm = verts[r._vertex_offset[layer_i]:r._vertex_offset[layer_i + 1]]
    inside = arm[(arm[:, 0] > 100) & (arm[:, 0] < 140) & (arm[:, 1] > 110) & (arm[:, 1] < 190)]
    assert len(inside), "the posed arm must cross the torso"
    x, y = np.round(np.median(inside, axis=0)).astype(int)
    return img[y - 1:y + 2, x - 1:x + 2, :3].reshape(-1, 3).mean(axis=0)


def test_layer_order_flips_with_depth_of_arm(rig, model: RigModel) -> None:  # type: ignore[no-untyped-def]
    front = _arm_pixel(rig, model, behind=False)
    back = _arm_pixel(rig, model, behind=True)
    arm_colours = np.array([(200, 60, 60), (220, 120, 60)], dtype=np.float64)
    torso_colours = np.array([(230, 210, 70), (200, 80, 40)], dtype=np.float64)

    def nearest(c: np.ndarray, palette: np.ndarray) -> float:
        return float(np.min(np.abs(palette - c).sum(axis=1)))

    assert nearest(front, arm_colours) < nearest(front, torso_colours)
    assert nearest(back, torso_colours) < nearest(back, arm_colours)


@pytest.mark.parametrize("spec", ["solid:#10C020", "transparent", "keep", "image:BG"])
def test_render_uses_background_with_each_mode(rig, model: RigModel, spec: str,  # type: ignore[no-untyped-def]
                                               tmp_path: pathlib.Path) -> None:
    if spec == "image:BG":
        bg = np.zeros((100, 50, 3), np.uint8)
        bg[:] = (5, 6, 250)
        cv2.imwrite(str(tmp_path / "bg.png"), bg)  # BGR on disk: red 250
        spec = f"image:{tmp_path / 'bg.png'}"
    opts = RenderOptions(resolution="720p", width=240, height=360, background=spec)
    with Renderer(rig, opts, model=model) as r:
        img = r.render_frame(None, None)
    corner, chest = img[5, 5], img[150, 120]
    assert chest[3] == 255
    assert np.abs(chest[:3].astype(int) - rig.texture_rgba[150, 120, :3].astype(int)).max() <= 3
    if spec.startswith("solid"):
        assert tuple(corner) == (0x10, 0xC0, 0x20, 255)
    elif spec == "transparent":
        assert corner[3] == 0
    elif spec == "keep":
        assert np.abs(corner[:3].astype(int) - rig.background_rgb[5, 5].astype(int)).max() <= 3
    else:
        assert tuple(corner[:3]) == (250, 6, 5)


def test_render_video_writes_alpha_with_transparent_background(rig, model: RigModel,  # type: ignore[no-untyped-def]
                                                              tmp_path: pathlib.Path) -> None:
    opts = RenderOptions(resolution="720p", width=240, height=360, background="transparent")
    out = render_video(rig, wave_sequence(3), tmp_path / "alpha.webm", opts, model=model)
    with av.open(str(out)) as c:
        stream = c.streams.video[0]
        ctx = av.CodecContext.create("libvpx-vp9", "r")
        ctx.extradata = stream.codec_context.extradata
        frames = [f for p in c.demux(stream) for f in ctx.decode(p)]
    assert len(frames) == 3
    rgba = frames[0].to_ndarray(format="rgba")
    assert rgba[5, 5, 3] < 10 and rgba[150, 120, 3] > 245


def test_render_video_keeps_fps_and_frame_count_with_h264(rig, model: RigModel,  # type: ignore[no-untyped-def]
                                                         tmp_path: pathlib.Path) -> None:
    out = render_video(rig, wave_sequence(6), tmp_path / "out.mp4", SMALL, model=model)
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264"
        assert (s.codec_context.width, s.codec_context.height) == (240, 360)
        assert sum(1 for _ in c.decode(video=0)) == 6


def test_frame_geometry_keeps_aspect_with_resolution() -> None:
    g = frame_geometry(1000, 1500, "1080p")
    assert (g.width_px, g.height_px) == (1080, 1620)
    g = frame_geometry(1920, 1080, "720p")
    assert (g.width_px, g.height_px) == (1280, 720)


def test_msaa_render_matches_plain_render_closely_with_keep_background(rig, model: RigModel) -> None:  # type: ignore[no-untyped-def]
    seq = wave_sequence(3)
    with Renderer(rig, SMALL, model=model) as r:
        plain = r.render_frame(seq, 2)
    with Renderer(rig, RenderOptions(resolution="720p", width=240, height=360, samples=4), model=model) as r:
        msaa = r.render_frame(seq, 2)
    diff = np.abs(plain.astype(np.int16) - msaa.astype(np.int16))
    assert diff.mean() < 1.5
    assert msaa[..., 3].min() == 255


def test_i420_frames_match_rgb_conversion_with_bt709(rig, model: RigModel) -> None:  # type: ignore[no-untyped-def]
    seq = wave_sequence(3)
    with Renderer(rig, SMALL, model=model) as r:
        assert r.supports_i420
        rgb = r.render_frame(seq, 1)[..., :3]
        packed = r.render_frame(seq, 1, i420=True)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    ref = frame.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG").to_ndarray()
    assert packed.shape == ref.shape == (360 * 3 // 2, 240)
    diff = np.abs(packed.astype(np.int16) - ref.astype(np.int16))
    assert diff[:360].max() <= 2  # luma
    assert diff[360:].mean() < 2.0  # chroma (2x2 averaging differs slightly from swscale's filter)
