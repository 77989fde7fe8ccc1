"""An illustration on a busy background: segmentation takes the road between the legs; colour refinement
within the skeleton's reach gives it back, and keeps shoes below ankles the detector placed too high."""

from __future__ import annotations

import cv2
import numpy as np

from motion.skeleton import N_BODY, BodyLandmark, SkeletonFrame
from services.render.character.joints import add_low_visibility_legs, unsure_ankles
from services.render.character.mask import skeleton_envelope

H_PX, W_PX = 420, 300
SKIN = (240, 200, 175)
DRESS = (120, 40, 140)
SHOES = (25, 20, 30)
# Where the detector put the joints: the ankles 25 px above the real ones (the shoes start at y=355).
JOINTS = {"nose": (150.0, 50.0), "left_shoulder": (180.0, 100.0), "right_shoulder": (120.0, 100.0),
          "left_elbow": (195.0, 160.0), "right_elbow": (105.0, 160.0), "left_wrist": (200.0, 215.0),
          "right_wrist": (100.0, 215.0), "left_hip": (170.0, 210.0), "right_hip": (130.0, 210.0),
          "left_knee": (172.0, 262.0), "right_knee": (128.0, 262.0), "left_ankle": (188.0, 330.0),
          "right_ankle": (112.0, 330.0)}


def _scene() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(rgb, segmentation-like mask, truth masks): night sky over a lit road, a girl in a dress."""
    rng = np.random.default_rng(3)
    yy = np.mgrid[0:H_PX, 0:W_PX][0]
    rgb = np.where((yy < 300)[..., None], np.array([35, 35, 90]), np.array([205, 165, 125])).astype(np.float64)
    rgb += rng.normal(0, 6, rgb.shape)
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    parts = {k: np.zeros((H_PX, W_PX), np.uint8) for k in ("body", "legs", "shoes")}
    for target in (rgb, parts["body"]):
        is_mask = target.ndim == 2
        cv2.circle(target, (150, 50), 28, 255 if is_mask else SKIN, -1)
        cv2.fillConvexPoly(target, np.array([(118, 90), (182, 90), (215, 260), (85, 260)], np.int32),
                           255 if is_mask else DRESS)
        for a, b in (("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"), ("right_shoulder", "right_elbow"),
                     ("right_elbow", "right_wrist")):
            cv2.line(target, tuple(int(v) for v in JOINTS[a]), tuple(int(v) for v in JOINTS[b]),
                     255 if is_mask else SKIN, 16)
    for target, value in ((rgb, SKIN), (parts["legs"], 255)):
        for x0, x1 in ((130, 106), (170, 194)):
            cv2.line(target, (x0, 255), (x1, 350), value, 18)  # legs: hem to the real ankle at y=350
    for target, value in ((rgb, SHOES), (parts["shoes"], 255)):
        for x in (104, 196):
            cv2.ellipse(target, (x, 366), (16, 11), 0, 0, 360, value, -1)
    seg = np.maximum.reduce([parts["body"], parts["legs"], parts["shoes"]])
    # Segmentation's additions: the road and sky between the legs, a block beside a shin.
    cv2.rectangle(seg, (118, 262), (182, 380), 255, -1)
    cv2.rectangle(seg, (70, 290), (100, 330), 255, -1)
    return rgb, seg, {k: v > 0 for k, v in parts.items()}


def _frame(ankle_visibility: float) -> SkeletonFrame:
    body = np.zeros((N_BODY, 5), np.float32)
    for lm in BodyLandmark:
        name = lm.name.lower()
        body[int(lm), :2] = JOINTS.get(name, JOINTS["nose"])
        body[int(lm), 3:] = 0.95
    for name in ("LEFT_ANKLE", "RIGHT_ANKLE"):
        body[int(BodyLandmark[name]), 3] = ankle_visibility
    return SkeletonFrame(index=0, timestamp_s=0.0, present=True, body=body, world=np.zeros_like(body), score=1.0)


def test_skeleton_envelope_drops_road_between_legs_with_image_colours() -> None:
    rgb, seg, truth = _scene()
    out = skeleton_envelope(seg, JOINTS, float(H_PX - 40), rgb=rgb, unsure_ankles=("left", "right"))
    kept = out > 0
    between = np.zeros_like(kept)
    between[275:345, 135:165] = True  # between the shins, clear of both legs
    beside = np.zeros_like(kept)
    beside[292:328, 72:92] = True
    assert kept[between].mean() < 0.1
    assert kept[beside].mean() < 0.1
    assert kept[truth["legs"]].mean() > 0.9
    assert kept[truth["body"]].mean() > 0.95
    # The shoes lie below the (too high) ankles: kept as the feet.
    assert kept[truth["shoes"]].mean() > 0.8


def test_skeleton_envelope_keeps_old_cut_without_image() -> None:
    rgb, seg, truth = _scene()
    out = skeleton_envelope(seg, JOINTS, float(H_PX - 40)) > 0
    # Without colours the envelope alone keeps the road near the legs and cuts the feet below the ankles.
    between = np.zeros_like(out)
    between[275:345, 135:165] = True
    assert out[between].mean() > 0.5
    assert out[truth["shoes"]].mean() < 0.5


def test_unsure_ankles_lists_sides_with_low_ankle_visibility() -> None:
    assert unsure_ankles(_frame(0.4)) == ("left", "right")
    assert unsure_ankles(_frame(0.9)) == ()
    assert unsure_ankles(None) == ()


def test_add_low_visibility_legs_takes_ankle_on_mask_with_visibility_0_4() -> None:
    _, seg, _ = _scene()
    joints = {k: v for k, v in JOINTS.items() if not k.endswith("ankle")}
    got = add_low_visibility_legs(joints, _frame(0.4), seg, tolerance_px=6.0)
    assert got["left_ankle"] == JOINTS["left_ankle"] and got["right_ankle"] == JOINTS["right_ankle"]
    assert "left_ankle" not in add_low_visibility_legs(joints, _frame(0.2), seg, tolerance_px=6.0)
    # An ankle off the figure (on the sky) is not taken, whatever its visibility.
    off = np.zeros_like(seg)
    assert "left_ankle" not in add_low_visibility_legs(joints, _frame(0.4), off, tolerance_px=6.0)
