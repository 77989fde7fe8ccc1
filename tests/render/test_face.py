"""Face warps (blink, jaw) on the synthetic character, rendered through the real EGL rasteriser."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from motion.skeleton import Face, FaceExpression, SkeletonFrame, SkeletonSequence
from services.render.face import FaceRig, face_pose, face_rig
from services.render.renderer import Renderer, RenderOptions
from tests.render.synthetic import H_PX, W_PX, make_character, posed_frame

SCALE = 2  # output pixels per character pixel
SKIN = np.array([240, 190, 150], np.float64)


def _face_landmarks() -> np.ndarray:
    """A 468-point face mesh for the synthetic head: only the points the renderer reads are placed."""
    lm = np.zeros((468, 5), np.float32)
    lm[:, :2] = (120, 50)
    lm[:, 3:] = 1.0
    points = {33: (107, 44), 133: (117, 44), 159: (112, 41), 145: (112, 47),  # subject's right eye
              263: (133, 44), 362: (123, 44), 386: (128, 41), 374: (128, 47),  # left eye
              61: (113, 60), 291: (127, 60), 13: (120, 59.5), 14: (120, 60.5), 152: (120, 70)}
    for i, xy in points.items():
        lm[i, :2] = xy
    return lm


def _rig(with_face: bool = True):  # type: ignore[no-untyped-def]
    rig = make_character()
    # A drawn mouth (dark red line) for the jaw to open.
    cv2.line(rig.texture_rgba, (113, 60), (127, 60), (120, 30, 30, 255), 2)
    if with_face:
        rig.face = _face_landmarks()
    return rig


def _seq(expressions: list[FaceExpression]) -> SkeletonSequence:
    frames = []
    for i, ex in enumerate(expressions):
        f: SkeletonFrame = posed_frame(i, 12.0, 0.0, 0.0, 0.0)
        f.face = Face(landmarks=_face_landmarks(), score=1.0, expression=ex)
        frames.append(f)
    return SkeletonSequence(fps=12.0, width=W_PX, height=H_PX, frames=frames, space="character_pixels")


def _render(rig, seq: SkeletonSequence) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    opts = RenderOptions(background="solid:#203040", width=W_PX * SCALE, height=H_PX * SCALE)
    with Renderer(rig, opts) as r:
        return [f.copy() for f in r.render_frames(seq)]


def _box(centre: tuple[float, float], half_w: float, half_h: float) -> tuple[slice, slice]:
    x, y = centre
    return (slice(int((y - half_h) * SCALE), int(np.ceil((y + half_h) * SCALE)) + 1),
            slice(int((x - half_w) * SCALE), int(np.ceil((x + half_w) * SCALE)) + 1))


def _dark(img: np.ndarray) -> int:
    return int((img[..., :3].astype(np.int32).sum(-1) < 3 * 70).sum())


NEUTRAL = FaceExpression()
BLINK = FaceExpression(left_eye_open=0.0, right_eye_open=0.0)
JAW = FaceExpression(jaw_open=1.0)


def test_face_rig_none_with_small_or_missing_face() -> None:
    assert face_rig(None) is None
    assert face_rig(_face_landmarks(), scale=0.5) is None  # 10 px eyes -> 5 px in the output
    assert isinstance(face_rig(_face_landmarks(), scale=1.0), FaceRig)


def test_render_identical_with_neutral_expression() -> None:
    with_face = _render(_rig(True), _seq([NEUTRAL]))[0]
    without = _render(_rig(False), _seq([NEUTRAL]))[0]
    assert np.array_equal(with_face, without)


def test_blink_covers_eyes_with_skin_with_closed_eyes() -> None:
    open_img, shut_img = _render(_rig(), _seq([NEUTRAL, BLINK]))
    fr = face_rig(_face_landmarks(), SCALE)
    assert fr is not None
    for eye in (fr.left_eye, fr.right_eye):
        box = _box(eye.centre_px, 4.0, 3.0)
        assert _dark(open_img[box]) >= 20  # the drawn pupil
        assert _dark(shut_img[box]) == 0
        mean = np.median(shut_img[box][..., :3].reshape(-1, 3), axis=0)
        assert np.abs(mean - SKIN).max() < 25


def test_blink_half_closure_shrinks_eye_with_half_open_eyes() -> None:
    half = FaceExpression(left_eye_open=0.35, right_eye_open=0.35)
    open_img, half_img, shut_img = _render(_rig(), _seq([NEUTRAL, half, BLINK]))
    fr = face_rig(_face_landmarks(), SCALE)
    assert fr is not None
    box = _box(fr.left_eye.centre_px, 6.0, 5.0)
    assert _dark(open_img[box]) > _dark(half_img[box]) > _dark(shut_img[box])


def test_jaw_open_grows_mouth_dark_area_with_open_jaw() -> None:
    shut, opened = _render(_rig(), _seq([NEUTRAL, JAW]))
    box = _box((120, 63), 9.0, 8.0)
    assert _dark(opened[box]) > _dark(shut[box]) + 40
    # The drop is JAW_DROP of the 10 px mouth->chin distance: ~3 texture px = 6 output px of dark gap.
    col = opened[:, 120 * SCALE, :3].astype(np.int32).sum(-1) < 3 * 70
    rows = np.nonzero(col[50 * SCALE:75 * SCALE])[0]
    assert 6 <= len(rows) <= 12


@pytest.mark.parametrize("expr", [BLINK, JAW, FaceExpression(jaw_open=1.0, left_eye_open=0.0)])
def test_face_warp_changes_only_face_region_with_expression(expr: FaceExpression) -> None:
    neutral, moved = _render(_rig(), _seq([NEUTRAL, expr]))
    diff = np.abs(neutral.astype(np.int32) - moved.astype(np.int32)).max(axis=-1) > 0
    assert diff.any()
    ys, xs = np.nonzero(diff)
    # Eye regions and the mouth region (down to 1.6x the chin distance below the mouth line).
    assert xs.min() >= 104 * SCALE and xs.max() <= 136 * SCALE
    assert ys.min() >= 38 * SCALE and ys.max() <= 77 * SCALE


def test_render_is_deterministic_with_face_warps() -> None:
    seq = _seq([BLINK, JAW, FaceExpression(jaw_open=0.6, left_eye_open=0.2, right_eye_open=0.5)])
    a = _render(_rig(), seq)
    b = _render(_rig(), seq)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_face_pose_swaps_eyes_with_mirrored_frame() -> None:
    fr = face_rig(_face_landmarks())
    assert fr is not None
    f = _seq([FaceExpression(left_eye_open=0.0, right_eye_open=1.0)]).frames[0]
    assert face_pose(fr, f).left_closure == 1.0 and face_pose(fr, f).right_closure == 0.0
    f.mirrored = True
    assert face_pose(fr, f).left_closure == 0.0 and face_pose(fr, f).right_closure == 1.0


def test_pipelined_frames_equal_single_frames_with_changing_face_warps() -> None:
    """render_frames draws frame i + 1's inputs while frame i rasterises; uniforms set for the next frame
    must not leak into the one in flight (RGBA and the I420 route)."""
    seq = _seq([BLINK, NEUTRAL, JAW, FaceExpression(jaw_open=0.6, left_eye_open=0.2), NEUTRAL, BLINK])
    opts = RenderOptions(background="solid:#203040", width=W_PX * SCALE, height=H_PX * SCALE)
    with Renderer(_rig(), opts) as r:
        assert r._face_triangles > 0
        for i420 in (False, True):
            streamed = [f.copy() for f in r.render_frames(seq, i420=i420)]
            single = [r.render_frame(seq, i, i420=i420).copy() for i in range(len(seq.frames))]
            assert all(np.array_equal(a, b) for a, b in zip(streamed, single, strict=True))
            assert not np.array_equal(streamed[0], streamed[1])  # the warps really differ frame to frame
