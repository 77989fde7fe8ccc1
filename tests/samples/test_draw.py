"""Drawing the mannequin: occlusion flags, face orientation, and the public single-frame API."""

from __future__ import annotations

import math

import numpy as np
import pytest

from motion.samples import (
    DanceParams,
    Palette,
    PinholeCamera,
    dance_pose,
    render_background,
    render_frame,
    render_performer,
    standing_pose,
)
from motion.samples.draw import LABEL
from motion.samples.mannequin import rot_y
from motion.skeleton import N_BODY, BodyLandmark

B = BodyLandmark
SIZE = (360, 640)
FACE = [B.NOSE, B.LEFT_EYE, B.RIGHT_EYE, B.MOUTH_LEFT, B.MOUTH_RIGHT]


def _turned(pose: np.ndarray, yaw_deg: float) -> np.ndarray:
    hip_c = (pose[B.LEFT_HIP] + pose[B.RIGHT_HIP]) / 2
    centre = np.array([hip_c[0], 0.0, hip_c[2]])
    return (pose - centre) @ rot_y(math.radians(yaw_deg)).T + centre


@pytest.fixture(scope="module")
def camera() -> PinholeCamera:
    return PinholeCamera.framing(*SIZE)


def test_render_frame_shows_face_with_front_facing_pose(camera: PinholeCamera) -> None:
    frame = render_frame(standing_pose(), camera, Palette())
    assert frame.visible[FACE].all()
    assert frame.visible.sum() >= 30  # a frontal rest pose hides almost nothing
    nose = frame.points_px[B.NOSE].astype(int)
    assert frame.labels[nose[1], nose[0]] in (LABEL["nose"], LABEL["face"], LABEL["head"])
    # The eyes are drawn: dark pupils at the eye landmarks.
    for eye in (B.LEFT_EYE, B.RIGHT_EYE):
        x, y = frame.points_px[eye].round().astype(int)
        assert frame.rgb[y - 1:y + 2, x - 1:x + 2].min() < 60


def test_render_frame_hides_face_with_back_facing_pose(camera: PinholeCamera) -> None:
    frame = render_frame(_turned(standing_pose(), 180.0), camera, Palette())
    assert not frame.visible[FACE].any()
    # Seen from behind, hair covers where the nose projects.
    x, y = frame.points_px[B.NOSE].round().astype(int)
    assert frame.labels[y, x] == LABEL["hair"]
    # Left/right swap sides in the image when the performer turns around.
    assert frame.points_px[B.LEFT_SHOULDER, 0] < frame.points_px[B.RIGHT_SHOULDER, 0]


def test_render_frame_flags_far_arm_occluded_with_side_view(camera: PinholeCamera) -> None:
    # Turned +90 deg the performer faces the image right, so their right side is towards the camera
    # and their left arm is behind the body.
    frame = render_frame(_turned(standing_pose(arm_abduction_deg=5.0), 90.0), camera, Palette())
    assert frame.visible[B.RIGHT_SHOULDER] and frame.visible[B.RIGHT_ELBOW]
    assert not frame.visible[B.LEFT_SHOULDER]
    assert not frame.visible[B.LEFT_EAR] and frame.visible[B.RIGHT_EAR]


def test_render_frame_flags_points_outside_frame_with_shifted_pose(camera: PinholeCamera) -> None:
    pose = standing_pose() + np.array([5.0, 0.0, 0.0])  # five metres to the right: out of view
    frame = render_frame(pose, camera, Palette())
    assert not frame.visible.any()
    assert int(frame.alpha.max()) == 0


def test_render_performer_draws_figure_over_background_with_dance_pose() -> None:
    pose = dance_pose(DanceParams.from_seed(3), 1.0)
    rgb = render_performer(pose, SIZE, seed=3)
    assert rgb.shape == (SIZE[1], SIZE[0], 3) and rgb.dtype == np.uint8
    cam = PinholeCamera.framing(*SIZE)
    background = render_background(cam, Palette.from_seed(3)).astype(int)
    changed = np.abs(rgb.astype(int) - background).max(axis=-1) > 40
    assert 0.03 < changed.mean() < 0.4
    # Same inputs, same pixels.
    np.testing.assert_array_equal(rgb, render_performer(pose, SIZE, seed=3))


def test_render_frame_rejects_pose_with_wrong_shape(camera: PinholeCamera) -> None:
    with pytest.raises(ValueError):
        render_frame(np.zeros((N_BODY - 1, 3)), camera)
