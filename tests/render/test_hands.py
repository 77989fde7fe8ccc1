"""Finger bones: exact bend transfer, hand-local skinning, and the rendered hand on the synthetic character."""

from __future__ import annotations

import numpy as np

from motion.skeleton import Hand, SkeletonFrame, SkeletonSequence
from services.render.hands import (
    FINGERS,
    MAX_BEND_RAD,
    HandRig,
    articulate,
    bend_angles,
    hand_rig,
    posed_rest_hand,
)
from services.render.renderer import Renderer, RenderOptions
from tests.render.synthetic import H_PX, W_PX, make_character, posed_frame


def make_hand(wrist: tuple[float, float], direction_deg: float, length_px: float,
              bends_deg: np.ndarray | None = None) -> np.ndarray:
    """21 hand landmarks (x, y, z, vis, presence): palm along ``direction_deg``, fingers bent by ``bends_deg``
    (5, 3) relative to their parent bones (the first bone relative to the palm axis)."""
    bends = np.zeros((5, 3)) if bends_deg is None else np.radians(bends_deg)
    a = np.radians(direction_deg)
    u = np.array([np.cos(a), np.sin(a)])
    v = np.array([-u[1], u[0]])
    w = np.asarray(wrist, np.float64)
    palm = 0.45 * length_px
    seg = 0.55 * length_px / 3.0
    out = np.zeros((21, 5), np.float32)
    out[:, 3:] = 1.0
    out[0, :2] = w
    bases = [w + 0.15 * palm * u - 0.35 * palm * v, w + palm * u - 0.3 * palm * v, w + palm * u - 0.1 * palm * v,
             w + palm * u + 0.1 * palm * v, w + 0.95 * palm * u + 0.3 * palm * v]
    for f, chain in enumerate(FINGERS):
        p = bases[f]
        out[chain[0], :2] = p
        ang = a + (-0.5 if f == 0 else 0.0)
        for k in range(3):
            ang += bends[f, k]
            p = p + seg * np.array([np.cos(ang), np.sin(ang)])
            out[chain[k + 1], :2] = p
    return out


def _rotate(points: np.ndarray, centre: np.ndarray, deg: float) -> np.ndarray:
    r = np.radians(deg)
    m = np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]])
    out = points.copy()
    out[:, :2] = centre + (points[:, :2] - centre) @ m.T
    return out


BENDS = np.array([[10, 20, 15], [30, -20, 25], [-25, 30, 10], [0, 10, 0], [-15, 30, 20]], np.float64)  # within MAX_BEND


def _grid(centre: np.ndarray, half_px: float, step_px: float = 1.0) -> np.ndarray:
    xs = np.arange(centre[0] - half_px, centre[0] + half_px + 1e-9, step_px)
    ys = np.arange(centre[1] - half_px, centre[1] + half_px + 1e-9, step_px)
    return np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)


def test_finger_bones_match_target_bends_exactly_with_rotated_target_hand() -> None:
    rest = make_hand((100, 100), 80.0, 60.0)
    # The target hand is turned as a whole and moved: only its finger bends may matter.
    target = _rotate(make_hand((300, 50), 80.0, 40.0, BENDS), np.array([300.0, 50.0]), -35.0)
    verts = _grid(np.array([100.0, 130.0]), 45.0, 3.0)
    hand = hand_rig("left", rest, verts, np.arange(len(verts)))
    assert hand is not None
    posed = posed_rest_hand(hand, target[:, :2])
    err = np.degrees(np.abs(bend_angles(posed) - bend_angles(target)))
    assert err.max() < 1e-4
    # Joint bends (all but the first bone, whose reference is the palm axis) are the ones the hand was built with.
    assert np.abs(np.degrees(bend_angles(posed))[:, 1:] - BENDS[:, 1:]).max() < 1e-3
    # Bones keep their rest lengths and the palm does not move.
    for chain in FINGERS:
        for k in range(3):
            a, b = chain[k], chain[k + 1]
            assert abs(np.hypot(*(posed[b] - posed[a])) - np.hypot(*(rest[b, :2] - rest[a, :2]))) < 1e-4
    assert np.array_equal(posed[[0, 1, 5, 9, 13, 17]], rest[[0, 1, 5, 9, 13, 17], :2])


def test_articulate_moves_fingertips_to_posed_tips_with_bent_target() -> None:
    rest = make_hand((100, 100), 90.0, 60.0)
    tips = rest[[4, 8, 12, 16, 20], :2].astype(np.float64)
    far = np.array([[100.0, 20.0], [20.0, 100.0], [180.0, 180.0]])
    verts = np.concatenate([tips, far, _grid(np.array([100.0, 125.0]), 30.0, 4.0)])
    hand = hand_rig("left", rest, verts, np.arange(len(verts)))
    assert hand is not None
    target = make_hand((0, 0), 90.0, 60.0, BENDS)
    out = articulate(verts, hand, target[:, :2])
    posed = posed_rest_hand(hand, target[:, :2])
    assert np.abs(out[:5] - posed[[4, 8, 12, 16, 20]]).max() < 1e-9
    assert np.array_equal(out[5:8], far)  # outside the hand region nothing moves


def test_articulate_is_identity_with_rest_bends() -> None:
    rest = make_hand((100, 100), 90.0, 60.0)
    verts = _grid(np.array([100.0, 125.0]), 30.0, 2.0)
    hand = hand_rig("left", rest, verts, np.arange(len(verts)))
    assert hand is not None
    target = _rotate(make_hand((10, 10), 90.0, 30.0), np.array([10.0, 10.0]), 50.0)
    assert np.abs(articulate(verts, hand, target[:, :2]) - verts).max() < 1e-9


def test_hand_rig_none_with_curled_character_hand() -> None:
    curled = make_hand((100, 100), 90.0, 60.0, np.array([[0, 10, 10]] + [[30, 70, 40]] * 4, np.float64))
    verts = _grid(np.array([100.0, 125.0]), 30.0, 2.0)
    assert hand_rig("left", curled, verts, np.arange(len(verts))) is None


def test_hand_rig_none_with_small_hand_or_no_landmarks() -> None:
    rest = make_hand((100, 100), 90.0, 30.0)
    verts = _grid(np.array([100.0, 115.0]), 20.0, 2.0)
    cand = np.arange(len(verts))
    assert hand_rig("left", None, verts, cand) is None
    assert hand_rig("left", rest, verts, cand, scale=1.0) is None  # ~30 px < 40 px
    assert isinstance(hand_rig("left", rest, verts, cand, scale=2.0), HandRig)


# ---- rendered --------------------------------------------------------------------------------------
WRIST = (182.0, 200.0)
HAND_DEG = 78.0  # the synthetic character's left hand points down and slightly right
SCALE = 2


def _seq(bends: list[np.ndarray | None]) -> SkeletonSequence:
    frames: list[SkeletonFrame] = []
    for i, b in enumerate(bends):
        f = posed_frame(i, 12.0, 0.0, 0.0, 0.0)
        f.left_hand = Hand(landmarks=make_hand(WRIST, HAND_DEG, 24.0, b), handedness="left", score=1.0)
        frames.append(f)
    return SkeletonSequence(fps=12.0, width=W_PX, height=H_PX, frames=frames, space="character_pixels")


def _render(with_hand: bool, seq: SkeletonSequence, scale: int = SCALE) -> tuple[list[np.ndarray], int]:
    rig = make_character()
    if with_hand:
        rig.left_hand = make_hand(WRIST, HAND_DEG, 24.0)
    with Renderer(rig, RenderOptions(background="solid:#000000", width=W_PX * scale, height=H_PX * scale)) as r:
        return [f.copy() for f in r.render_frames(seq)], len(r.hands)


def test_render_bends_fingers_only_in_hand_region_with_character_hand() -> None:
    fist = np.array([[20, 30, 20], [80, 90, 60], [80, 90, 60], [80, 90, 60], [80, 90, 60]], np.float64)
    (straight, bent), n_hands = _render(True, _seq([None, fist]))
    assert n_hands == 1
    diff = np.abs(straight.astype(np.int32) - bent.astype(np.int32)).max(-1) > 8
    assert diff.sum() > 50
    ys, xs = np.nonzero(diff)
    # Only around the left hand (wrist at (182, 200) character px; hand ~24 px long).
    assert xs.min() >= (182 - 30) * SCALE and xs.max() <= (182 + 30) * SCALE
    assert ys.min() >= (200 - 6) * SCALE and ys.max() <= (200 + 34) * SCALE
    # Without the character's hand landmarks the hand stays rigid: the bends change nothing.
    (s2, b2), n2 = _render(False, _seq([None, fist]))
    assert n2 == 0 and np.array_equal(s2, b2)


def test_render_keeps_rigid_hand_with_small_output() -> None:
    _, n_hands = _render(True, _seq([None]), scale=1)
    assert n_hands == 0


def test_finger_bend_clamped_with_extreme_target() -> None:
    rest = make_hand((100, 100), 90.0, 60.0)
    verts = _grid(np.array([100.0, 125.0]), 30.0, 3.0)
    hand = hand_rig("left", rest, verts, np.arange(len(verts)))
    assert hand is not None
    extreme = make_hand((0, 0), 90.0, 60.0, np.array([[0, 0, 0], [0, 80, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]], float))
    posed = posed_rest_hand(hand, extreme[:, :2])
    delta = np.degrees(bend_angles(posed) - hand.rest_bends)
    assert abs(delta[1, 1] - np.degrees(MAX_BEND_RAD)) < 1e-3
