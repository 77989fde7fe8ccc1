"""Anchors, detection decode, weighted NMS, ROI maths and heatmap refinement with known numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.pose import geometry as g


@pytest.mark.parametrize(("opts", "count"), [(g.POSE_ANCHORS, 2254), (g.PALM_ANCHORS, 2016), (g.FACE_ANCHORS, 896)])
def test_ssd_anchors_count_matches_model_with_each_detector(opts: g.AnchorOptions, count: int) -> None:
    anchors = g.ssd_anchors(opts)
    assert anchors.shape == (count, 2)
    assert anchors.min() > 0 and anchors.max() < 1


def test_ssd_anchors_layout_is_cell_major_with_pose_detector() -> None:
    a = g.ssd_anchors(g.POSE_ANCHORS)
    # First layer 28x28, two anchors per cell; then 14x14x2; then the merged 7x7 layers with 6 per cell.
    np.testing.assert_allclose(a[0], [0.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(a[1], a[0])
    np.testing.assert_allclose(a[2], [1.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(a[1568], [0.5 / 14, 0.5 / 14])
    np.testing.assert_allclose(a[1568 + 392 : 1568 + 392 + 6], np.tile([[0.5 / 7, 0.5 / 7]], (6, 1)))
    np.testing.assert_allclose(a[-1], [6.5 / 7, 6.5 / 7])


def test_decode_detections_gives_known_box_with_hand_made_regressors() -> None:
    anchors = np.array([[0.5, 0.5], [0.25, 0.75]], np.float32)
    raw = np.zeros((2, 12), np.float32)
    raw[0, :4] = [22.4, -11.2, 44.8, 67.2]  # +0.1, -0.05 offset; w 0.2, h 0.3 (of 224)
    raw[0, 4:6] = [0.0, 22.4]
    scores = np.array([[2.0], [-3.0]], np.float32)  # sigmoid 0.881 and 0.047
    dets = g.decode_detections(raw, scores, anchors, 224, 4, min_score=0.5)
    assert len(dets) == 1
    d = dets[0]
    np.testing.assert_allclose(d.box, [0.5, 0.3, 0.7, 0.6], atol=1e-6)
    np.testing.assert_allclose(d.keypoints[0], [0.5, 0.6], atol=1e-6)
    np.testing.assert_allclose(d.keypoints[1], [0.5, 0.5], atol=1e-6)
    assert d.score == pytest.approx(1 / (1 + math.exp(-2.0)))


def test_decode_detections_clips_logits_without_overflow_with_huge_scores() -> None:
    anchors = np.array([[0.5, 0.5]], np.float32)
    dets = g.decode_detections(np.zeros((1, 12), np.float32), np.array([[1e6]], np.float32), anchors, 224, 4, 0.5)
    assert dets[0].score == pytest.approx(1.0)


def test_weighted_nms_averages_overlapping_boxes_with_score_weights() -> None:
    kp = np.zeros((1, 2), np.float32)
    a = g.Detection(np.array([0.0, 0.0, 1.0, 1.0], np.float32), kp + 0.0, 0.9)
    b = g.Detection(np.array([0.1, 0.0, 1.1, 1.0], np.float32), kp + 1.0, 0.3)  # IoU 0.818 with a
    c = g.Detection(np.array([5.0, 5.0, 6.0, 6.0], np.float32), kp + 5.0, 0.6)  # separate
    out = g.weighted_nms([b, c, a], 0.3)
    assert [round(d.score, 3) for d in out] == [0.9, 0.6]
    np.testing.assert_allclose(out[0].box, [0.025, 0.0, 1.025, 1.0], atol=1e-6)  # (0*0.9 + 0.1*0.3)/1.2
    np.testing.assert_allclose(out[0].keypoints, [[0.25, 0.25]], atol=1e-6)
    np.testing.assert_allclose(out[1].box, c.box)


def test_weighted_nms_keeps_boxes_apart_with_low_overlap() -> None:
    kp = np.zeros((1, 2), np.float32)
    a = g.Detection(np.array([0.0, 0.0, 1.0, 1.0], np.float32), kp, 0.9)
    b = g.Detection(np.array([0.6, 0.0, 1.6, 1.0], np.float32), kp, 0.8)  # IoU 0.25 < 0.3
    assert len(g.weighted_nms([a, b], 0.3)) == 2


def test_letterbox_remove_inverts_padding_with_portrait_image() -> None:
    img = np.zeros((400, 200, 3), np.uint8)
    out, lb = g.letterbox_image(img, 224)
    assert out.shape == (224, 224, 3)
    assert lb.left == pytest.approx(56 / 224) and lb.top == 0.0
    expected = np.array([[0.0, 0.5], [1.0, 1.0]])
    np.testing.assert_allclose(lb.remove(np.array([[56 / 224, 0.5], [168 / 224, 1.0]])), expected, atol=1e-6)


def test_alignment_rect_points_hip_to_head_up_with_upright_person() -> None:
    r = g.alignment_rect(np.array([100.0, 200.0]), np.array([100.0, 120.0]), math.pi / 2)
    assert r.rotation == pytest.approx(0.0)
    assert r.width == pytest.approx(160.0)
    tilted = g.alignment_rect(np.array([100.0, 200.0]), np.array([180.0, 200.0]), math.pi / 2)
    assert tilted.rotation == pytest.approx(math.pi / 2)  # body lying to the right: rotate 90 degrees


def test_rect_project_unproject_round_trip_with_rotation() -> None:
    r = g.Rect(320.0, 240.0, 150.0, 150.0, 0.7)
    pts = np.random.default_rng(0).uniform(0, 1, (50, 2)).astype(np.float32)
    np.testing.assert_allclose(r.unproject(r.project(pts)), pts, atol=1e-5)
    # The ROI centre maps to the rect centre; the top-left corner is rotated around it.
    np.testing.assert_allclose(r.project(np.array([[0.5, 0.5]]))[0], [320, 240], atol=1e-4)
    corner = r.project(np.array([[0.0, 0.0]]))[0]
    c, s = math.cos(0.7), math.sin(0.7)
    np.testing.assert_allclose(corner, [320 - 75 * c + 75 * s, 240 - 75 * s - 75 * c], atol=1e-3)


def test_rect_crop_samples_where_project_points_with_rotated_rect() -> None:
    # A marker dot drawn in the image appears in the crop where unproject() says it should.
    img = np.zeros((300, 400, 3), np.uint8)
    img[148:153, 248:253] = 255  # dot centred at pixel (250, 150) -> continuous (250.5, 150.5)
    r = g.Rect(230.0, 160.0, 120.0, 120.0, -0.4)
    crop = r.crop(img, 96, 96)
    ys, xs = np.nonzero(crop[:, :, 0] > 100)
    found = np.array([xs.mean() + 0.5, ys.mean() + 0.5]) / 96
    expected = r.unproject(np.array([[250.5, 150.5]]))[0]
    np.testing.assert_allclose(found, expected, atol=1.5 / 96)


def test_rect_transform_shifts_in_rotated_frame_with_hand_constants() -> None:
    r = g.Rect(100.0, 100.0, 40.0, 20.0, math.pi / 2)
    t = r.transform(2.0, 2.0, shift_y=-0.5)
    # shift_y -0.5 of height 20 in a frame rotated 90 degrees moves +10 px along x.
    assert (t.x_center, t.y_center) == (pytest.approx(110.0), pytest.approx(100.0))
    assert (t.width, t.height) == (pytest.approx(80.0), pytest.approx(80.0))


def test_refine_from_heatmap_moves_to_weighted_peak_with_confident_blob() -> None:
    hm = np.full((64, 64, 2), -10.0, np.float32)
    hm[20, 30, 0] = 10.0
    hm[20, 31, 0] = 10.0  # two equal peaks: refined x is between columns 30 and 31
    lms = np.array([[30.2 / 64, 20.4 / 64, 0, 0, 0], [0.5, 0.5, 0, 0, 0]], np.float32)
    out = g.refine_from_heatmap(lms, hm)
    assert out[0, 0] == pytest.approx(30.5 / 64, abs=1e-3)
    assert out[0, 1] == pytest.approx(20 / 64, abs=1e-3)
    np.testing.assert_allclose(out[1], lms[1])  # no confident heatmap: unchanged


def test_rotate_xy_turns_world_points_with_quarter_turn() -> None:
    out = g.rotate_xy(np.array([[1.0, 0.0, 0.3]], np.float32), math.pi / 2)
    np.testing.assert_allclose(out, [[0.0, 1.0, 0.3]], atol=1e-6)


def test_rects_close_applies_each_threshold_with_roi_tracking_limits() -> None:
    a = g.Rect(100.0, 100.0, 50.0, 50.0, 0.0)
    assert g.rects_close(a, g.Rect(105.0, 100.0, 55.0, 55.0, math.radians(10)), 40.0, 0.2, 0.4)
    assert not g.rects_close(a, g.Rect(115.0, 100.0, 50.0, 50.0, 0.0), 40.0, 0.2, 0.4)  # moved 0.3 of size
    assert not g.rects_close(a, g.Rect(100.0, 100.0, 50.0, 50.0, math.radians(50)), 40.0, 0.2, 0.4)
    assert not g.rects_close(a, g.Rect(100.0, 100.0, 75.0, 75.0, 0.0), 40.0, 0.2, 0.4)  # 50 % larger


def test_hand_landmarks_rect_is_upright_and_doubled_with_vertical_hand() -> None:
    px = np.zeros((21, 2), np.float32)
    px[:, 0] = 200.0 + np.tile([-10.0, 0.0, 10.0], 7)  # 20 px wide
    px[:, 1] = np.linspace(300.0, 240.0, 21)  # wrist (0) at the bottom, fingers up: 60 px tall
    px[0] = (200.0, 300.0)
    r = g.hand_landmarks_rect(px)
    assert abs(r.rotation) < 0.1
    assert r.width == pytest.approx(r.height) and 100.0 < r.width < 130.0  # 2 x the long side of the partial set
    assert r.y_center < 270.0  # shifted towards the fingers (shift_y -0.1)


def test_face_landmarks_rect_follows_eye_line_with_tilted_face() -> None:
    px = np.random.default_rng(2).uniform(100, 200, (468, 2)).astype(np.float32)
    px[33] = (120.0, 150.0)
    px[263] = (180.0, 150.0 + 60.0 * math.tan(math.radians(20)))  # eye line tilted 20 degrees clockwise
    r = g.face_landmarks_rect(px)
    assert math.degrees(r.rotation) == pytest.approx(20.0, abs=0.5)
    assert r.width == pytest.approx(1.5 * float(np.ptp(px[:, 0])), rel=0.02)


def test_rect_outside_is_true_only_with_no_overlap_with_rotated_rects() -> None:
    assert not g.Rect(50.0, 50.0, 20.0, 20.0).outside(100, 80)
    assert not g.Rect(-5.0, 40.0, 20.0, 20.0).outside(100, 80)  # straddles the left edge
    assert g.Rect(-11.0, 40.0, 20.0, 20.0).outside(100, 80)
    assert g.Rect(40.0, 95.0, 20.0, 20.0).outside(100, 80)  # below the bottom edge
    # Rotated 45 degrees the square reaches ~14.1 px from its centre instead of 10.
    assert not g.Rect(-12.0, 40.0, 20.0, 20.0, math.pi / 4).outside(100, 80)
    assert g.Rect(-15.0, 40.0, 20.0, 20.0, math.pi / 4).outside(100, 80)
