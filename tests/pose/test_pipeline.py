"""Whole-body extraction on real video frames (short clips cut from ../shared/data/videos)."""

from __future__ import annotations

import pathlib

import cv2
import numpy as np
import pytest

from motion.errors import InputError
from motion.skeleton import BodyLandmark as B
from motion.skeleton import SkeletonSequence
from services.pose.pipeline import PoseExtractor, PoseOptions, selfie_label_to_anatomical, sha256_file
from tests.pose.conftest import read_frames, write_clip

pytestmark = pytest.mark.usefixtures("pose_models")


@pytest.fixture(scope="module")
def short_seq(short_clip: pathlib.Path) -> SkeletonSequence:
    with PoseExtractor(PoseOptions()) as ex:
        return ex.process_video(short_clip)


def test_process_video_finds_performer_in_every_frame_with_real_dance_clip(
        short_seq: SkeletonSequence, short_clip: pathlib.Path) -> None:
    seq = short_seq
    assert len(seq) == 24 and (seq.width, seq.height) == (414, 540)
    assert all(f.present for f in seq.frames)
    assert seq.source_sha256 == sha256_file(short_clip)
    assert seq.options_digest == PoseOptions().digest()
    hands = sum(f.left_hand is not None for f in seq.frames) + sum(f.right_hand is not None for f in seq.frames)
    assert hands >= 0.9 * 2 * len(seq)
    assert sum(f.face is not None for f in seq.frames) >= 0.9 * len(seq)


def test_process_video_gives_plausible_skeleton_with_front_facing_performer(short_seq: SkeletonSequence) -> None:
    for f in short_seq.frames:
        b = f.body
        assert b is not None and b.shape == (33, 5) and b.dtype == np.float32
        y = b[:, 1]
        assert y[B.NOSE] < y[B.LEFT_SHOULDER] < y[B.LEFT_HIP] < y[B.LEFT_KNEE] < y[B.LEFT_ANKLE]
        assert y[B.NOSE] < y[B.RIGHT_SHOULDER] < y[B.RIGHT_HIP] < y[B.RIGHT_KNEE] < y[B.RIGHT_ANKLE]
        # Facing the camera: the performer's left side is on the image's right.
        assert b[B.LEFT_SHOULDER, 0] > b[B.RIGHT_SHOULDER, 0] and b[B.LEFT_HIP, 0] > b[B.RIGHT_HIP, 0]
        height_px = y[B.LEFT_ANKLE] - y[B.NOSE]
        assert 0.6 * short_seq.height < height_px < short_seq.height
        assert np.all(b[[B.LEFT_SHOULDER, B.RIGHT_HIP, B.LEFT_KNEE], 3] > 0.8)
        # World landmarks: metres around the hip centre, about a person's size.
        w = f.world
        assert w is not None
        assert np.abs((w[B.LEFT_HIP, :3] + w[B.RIGHT_HIP, :3]) / 2).max() < 0.1
        assert 0.25 < np.linalg.norm(w[B.LEFT_SHOULDER, :3] - w[B.RIGHT_SHOULDER, :3]) < 0.5
        # Hands sit at the body's wrists; the face around the nose.
        for hand, wrist in ((f.left_hand, B.LEFT_WRIST), (f.right_hand, B.RIGHT_WRIST)):
            if hand is not None:
                assert np.hypot(*(hand.landmarks[0, :2] - b[wrist, :2])) < 0.05 * height_px
        assert f.face is not None and f.face.landmarks.shape == (468, 5)
        assert np.hypot(*(f.face.landmarks[1, :2] - b[B.NOSE, :2])) < 0.03 * height_px
        e = f.face.expression
        assert abs(e.head_roll_deg) < 20 and abs(e.head_yaw_deg) < 30 and 0.3 < e.left_eye_open <= 1.0


def test_json_round_trip_keeps_landmarks_with_extracted_sequence(short_seq: SkeletonSequence,
                                                                 tmp_path: pathlib.Path) -> None:
    short_seq.save_json(tmp_path / "s.json")
    back = SkeletonSequence.load_json(tmp_path / "s.json")
    assert back.frames[5].left_hand is not None and back.frames[5].left_hand.handedness == "left"
    got, want = back.frames[5].body, short_seq.frames[5].body
    assert got is not None and want is not None
    np.testing.assert_allclose(got, want, atol=1e-3)
    assert SkeletonSequence.from_bytes(short_seq.to_bytes()).frames[3].face is not None


def test_selfie_label_to_anatomical_swaps_labels_with_mediapipe_scores() -> None:
    # The hand model's "Left" (score p >= 0.5) is a selfie-view label: in normal video it is the right hand.
    assert selfie_label_to_anatomical(0.97) == "right"
    assert selfie_label_to_anatomical(0.02) == "left"


def test_hand_model_labels_match_body_side_after_swap_with_real_frames(short_clip: pathlib.Path) -> None:
    frames, fps = read_frames(short_clip, 8)
    agree = total = 0
    with PoseExtractor(PoseOptions(face=False)) as ex:
        for i, rgb in enumerate(frames):
            f = ex.process_frame(rgb, i / fps, i)
            assert f.body is not None
            for side in ("left", "right"):
                hand, p_left_selfie = ex._hand(rgb, f.body, side)
                if hand is None:
                    continue
                total += 1
                agree += selfie_label_to_anatomical(p_left_selfie) == side
    assert total >= 12 and agree >= 0.9 * total


def test_process_video_raises_no_person_with_black_video(tmp_path: pathlib.Path) -> None:
    clip = write_clip(tmp_path / "black.mp4", [np.zeros((240, 320, 3), np.uint8)] * 10, 10.0)
    with PoseExtractor(PoseOptions(hands=False, face=False)) as ex, pytest.raises(InputError) as err:
        ex.process_video(clip)
    assert err.value.rule == "pose.no_person" and err.value.actual == 0


def test_process_video_marks_missing_frames_with_black_gap(short_clip: pathlib.Path, tmp_path: pathlib.Path) -> None:
    frames, fps = read_frames(short_clip, 12)
    black = np.zeros_like(frames[0])
    clip = write_clip(tmp_path / "gap.mp4", frames[:4] + [black] * 4 + frames[4:8], fps)
    with PoseExtractor(PoseOptions(face=False)) as ex:
        seq = ex.process_video(clip)
    assert [f.present for f in seq.frames] == [True] * 4 + [False] * 4 + [True] * 4
    assert seq.frames[5].body is None and seq.frames[5].timestamp_s == pytest.approx(5 / fps, abs=1e-3)
    assert any(w.startswith("pose.missing_frames") for w in seq.warnings)
    assert ex.stats["detector_runs"] >= 5  # re-detection after the person came back


def test_process_video_tracks_performer_with_1_fps_video(dance_video: pathlib.Path, tmp_path: pathlib.Path) -> None:
    frames, _ = read_frames(dance_video, 6, step=30)  # one frame per second of the 30 fps original
    clip = write_clip(tmp_path / "1fps.mp4", frames, 1.0)
    with PoseExtractor(PoseOptions(face=False)) as ex:
        seq = ex.process_video(clip)
    assert seq.fps == pytest.approx(1.0)
    assert all(f.present for f in seq.frames)
    assert seq.frames[-1].timestamp_s == pytest.approx(5.0, abs=1e-3)


def test_process_video_keeps_upper_body_with_person_cut_at_the_knees(
        short_clip: pathlib.Path, short_seq: SkeletonSequence, tmp_path: pathlib.Path) -> None:
    frames, fps = read_frames(short_clip, 8)
    cut = [f[:330].copy() for f in frames]  # the legs leave the frame below the knees
    with PoseExtractor(PoseOptions(hands=False, face=False)) as ex:
        seq = ex.process_video(write_clip(tmp_path / "cut.mp4", cut, fps))
    assert seq.height == 330 and all(f.present for f in seq.frames)
    for f, full in zip(seq.frames, short_seq.frames, strict=False):
        assert f.body is not None and full.body is not None
        for j in (B.LEFT_SHOULDER, B.RIGHT_SHOULDER, B.LEFT_ELBOW, B.LEFT_HIP):
            assert np.hypot(*(f.body[j, :2] - full.body[j, :2])) < 15.0
        # The ankles are outside the frame: low visibility.
        assert f.body[B.LEFT_ANKLE, 3] < 0.5 or f.body[B.LEFT_ANKLE, 1] > 330


def test_process_video_follows_largest_person_with_two_people(short_clip: pathlib.Path,
                                                              tmp_path: pathlib.Path) -> None:
    frames, fps = read_frames(short_clip, 10)
    two = []
    for f in frames:
        small = cv2.resize(f, (f.shape[1] * 3 // 5, f.shape[0] * 3 // 5), interpolation=cv2.INTER_AREA)
        canvas = np.full((f.shape[0], f.shape[1] + small.shape[1], 3), 255, np.uint8)
        canvas[:, : f.shape[1]] = f
        canvas[f.shape[0] - small.shape[0]:, f.shape[1]:] = small
        two.append(canvas)
    with PoseExtractor(PoseOptions(hands=False, face=False)) as ex:
        seq = ex.process_video(write_clip(tmp_path / "two.mp4", two, fps))
    assert all(f.present for f in seq.frames)
    big_width = frames[0].shape[1]
    for sf in seq.frames:
        assert sf.body is not None and sf.body[[B.NOSE, B.LEFT_HIP, B.RIGHT_ANKLE], 0].max() < big_width
        assert sf.track_id == seq.frames[0].track_id
    with PoseExtractor(PoseOptions(hands=False, face=False, track_id=2)) as ex:
        seq2 = ex.process_video(tmp_path / "two.mp4")
    # track_id 2 = the second person from the left: the small one, followed in every frame.
    assert all(f.present and f.body is not None and f.body[B.NOSE, 0] > big_width for f in seq2.frames)


def test_process_image_finds_pose_with_character_image(shared_data: pathlib.Path) -> None:
    bgr = cv2.imread(str(shared_data / "characters" / "musev__man.jpg"))
    assert bgr is not None
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    with PoseExtractor(PoseOptions()) as ex:
        f1 = ex.process_image(rgb)
        f2 = ex.process_image(rgb)
    assert f1.present and f1.body is not None and f2.body is not None
    np.testing.assert_allclose(f1.body, f2.body)  # static mode: no state carried between images
    assert f1.body[B.NOSE, 1] < f1.body[B.LEFT_HIP, 1]


def test_process_frames_matches_sequential_frames_with_pipelined_parts(short_clip: pathlib.Path) -> None:
    # Hands/face of frame t run in a worker while the body of frame t+1 runs: same results, same order.
    frames, fps = read_frames(short_clip, 8)
    with PoseExtractor(PoseOptions()) as ex:
        piped = [f for f, _ in ex.process_frames((i, i / fps, rgb) for i, rgb in enumerate(frames))]
        ex.reset()
        seq = [ex.process_frame(rgb, i / fps, i) for i, rgb in enumerate(frames)]
    assert [f.index for f in piped] == list(range(8))
    for a, b in zip(piped, seq, strict=True):
        assert a.body is not None and b.body is not None
        np.testing.assert_allclose(a.body, b.body, atol=1e-4)
        assert (a.left_hand is None) == (b.left_hand is None) and (a.face is None) == (b.face is None)
        if a.left_hand is not None and b.left_hand is not None:
            np.testing.assert_allclose(a.left_hand.landmarks, b.left_hand.landmarks, atol=1e-4)


def test_options_reject_out_of_range_confidence_with_rule_id() -> None:
    with pytest.raises(InputError) as err:
        PoseOptions(min_detection_confidence=1.5).validate()
    assert err.value.rule == "pose.min_detection_confidence" and err.value.actual == 1.5


def test_parts_run_no_model_with_hand_and_face_points_outside_the_frame(short_clip: pathlib.Path) -> None:
    frames, fps = read_frames(short_clip, 1)
    rgb = frames[0]
    h, w = rgb.shape[:2]
    with PoseExtractor(PoseOptions()) as ex:
        f = ex.process_frame(rgb, 0.0, 0)
        assert f.body is not None and f.left_hand is not None and f.face is not None
        body = f.body.copy()
        body[[B.LEFT_WRIST, B.LEFT_PINKY, B.LEFT_INDEX], 0] += 3 * w  # the left hand far right of the frame
        body[:11, 1] -= 3 * h  # the face points far above it
        before = dict(ex.stats)
        left, _ = ex._hand(rgb, body, "left")
        face = ex._face(rgb, body)
        assert left is None and face is None
        assert ex.stats == before  # no hand_recrop / hand / face detector / mesh run
        right, _ = ex._hand(rgb, body, "right")  # the right hand is still in the frame: found as before
        assert right is not None and ex.stats["hand_landmark_runs"] > before["hand_landmark_runs"]


def test_process_video_gives_same_bytes_twice_with_pipelined_parts(short_seq: SkeletonSequence,
                                                                   short_clip: pathlib.Path) -> None:
    # The parts run in worker threads and the crops come from an RGBA copy: still one answer per input.
    with PoseExtractor(PoseOptions()) as ex:
        again = ex.process_video(short_clip)
    assert again.to_bytes() == short_seq.to_bytes()
