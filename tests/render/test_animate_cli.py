"""`motionctl animate` end to end on the sample kit (real PyAV files, real pose models, real EGL)."""

from __future__ import annotations

import hashlib
import io
import json
import pathlib

import av
import cv2
import pytest

from motion.bvh import read_bvh
from motion.cli import main
from motion.samples.kit import write_samples
from services.render.cli import StageProgress


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    # The shortest clip validation accepts (3 s), small and at a low frame rate to keep the test quick.
    return write_samples(tmp_path_factory.mktemp("kit"), duration_s=3.0, fps=10.0, size=(360, 640))


def test_animate_writes_video_with_audio_and_extras_with_sample_kit(kit, tmp_path: pathlib.Path,  # type: ignore[no-untyped-def]
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "animated.mp4"
    rc = main(["animate", "--image", str(kit.character_png), "--video", str(kit.performer_mp4), "-o", str(out),
               "--joints", str(kit.character_joints), "--export-skeleton", str(tmp_path / "skel.bvh"),
               "--report", str(tmp_path / "report.json"),
               "--contact-sheet", str(tmp_path / "sheet.png"), "--prompt", "a dancer", "--json"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ignored_options"] == ["prompt"]
    assert doc["frames"] == 30
    # Stage names come from the orchestrator the CLI runs through; at least pose and render are timed.
    assert any(k.startswith("pose") for k in doc["stage_s"]) and any("render" in k for k in doc["stage_s"])
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert min(v.codec_context.width, v.codec_context.height) == 720
        assert len(c.streams.audio) == 1
        assert sum(1 for _ in c.decode(video=0)) == 30
    sheet = cv2.imread(str(tmp_path / "sheet.png"))
    assert sheet is not None and sheet.shape[0] >= 360
    motion = read_bvh(tmp_path / "skel.bvh")
    assert motion.frames.shape[0] == 30 and abs(motion.fps - 10.0) < 1e-3
    assert motion.joints[0].name == "Hips" and len(motion.joints) == 20
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["format"] == "motion-control/quality-report"
    sk = report["skeleton"]
    assert sk["frames_total"] == 30 and sk["frames_detected"] + sk["frames_interpolated"] == 30
    assert sk["frames_detected"] >= 25 and 0.5 < sk["mean_pose_score"] <= 1.0
    assert report["foot_skate_after_px"] is not None
    assert report["foot_skate_after_px"] <= report["foot_skate_before_px"] + 1e-6
    assert report["rig_check_frames"] > 0 and report["rig_bone_angle_error_deg"]["max"] < 45.0
    assert report["ignored_options"] == ["prompt"]
    assert any(k.startswith("pose") for k in report["stage_s"])
    o = report["output"]
    assert o["frames"] == 30 and o["codec"] == "h264" and o["has_audio"] and abs(o["fps"] - 10.0) < 1e-3
    assert o["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest() and o["size_bytes"] == out.stat().st_size
    assert doc["report"] == str(tmp_path / "report.json")


def test_animate_writes_skeleton_json_quietly_with_cached_run(kit, tmp_path: pathlib.Path,  # type: ignore[no-untyped-def]
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    # The first test cached pose and rig in the embedded store, so this run costs render + encode only.
    rc = main(["animate", "--image", str(kit.character_png), "--video", str(kit.performer_mp4),
               "-o", str(tmp_path / "a.mp4"), "--joints", str(kit.character_joints),
               "--export-skeleton", str(tmp_path / "skel.json"), "--quiet"])
    assert rc == 0
    assert "pose:" not in capsys.readouterr().err  # --quiet: no progress lines
    skel = json.loads((tmp_path / "skel.json").read_text())
    assert len(skel["frames"]) == 30


def test_animate_reports_output_facts_without_extras_with_cached_run(kit, tmp_path: pathlib.Path,  # type: ignore[no-untyped-def]
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # Without extras the facts come from the stored protos alone (no decoded rig or skeleton).
    out = tmp_path / "plain.mp4"
    rc = main(["animate", "--image", str(kit.character_png), "--video", str(kit.performer_mp4), "-o", str(out),
               "--joints", str(kit.character_joints), "--no-sound", "--json"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        size = (v.codec_context.width, v.codec_context.height)
        n = sum(1 for _ in c.decode(video=0))
    assert (doc["width_px"], doc["height_px"]) == size and doc["frames"] == n == 30
    assert abs(doc["fps"] - 10.0) < 1e-3 and abs(doc["duration_s"] - 3.0) < 1e-3
    assert 0 < doc["real_time_factor"] == pytest.approx(doc["wall_s"] / 3.0, abs=2e-3)  # both rounded to 1 ms


def test_stage_progress_prints_about_every_tenth_with_non_tty_stream() -> None:
    stream = io.StringIO()
    with StageProgress(stream=stream) as progress:
        for done in range(0, 241):
            progress("pose", done, 240)
        progress("rig", 0, 1)
        progress("rig", 1, 1)
        progress("rig", 1, 1)
    lines = stream.getvalue().splitlines()
    pose = [ln for ln in lines if ln.startswith("pose:")]
    assert 10 <= len(pose) <= 12 and pose[-1] == "pose: 240/240 (100%)"
    assert [ln for ln in lines if ln.startswith("rig:")] == ["rig: 1/1 (100%)"]
    assert "\r" not in stream.getvalue()


def test_stage_progress_is_silent_with_disabled_flag() -> None:
    stream = io.StringIO()
    with StageProgress(enabled=False, stream=stream) as progress:
        progress("pose", 5, 10)
    assert stream.getvalue() == ""


def test_animate_reports_rule_with_bad_background(kit, tmp_path: pathlib.Path,  # type: ignore[no-untyped-def]
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["animate", "--image", str(kit.character_png), "--video", str(kit.performer_mp4),
               "-o", str(tmp_path / "x.mp4"), "--joints", str(kit.character_joints), "--background", "plaid"])
    assert rc == 2
    assert "render.background" in capsys.readouterr().err


def test_contact_sheet_label_halo_hugs_text_with_long_label() -> None:
    import numpy as np

    from services.render.animate import contact_sheet

    frame = np.full((720, 480, 3), 120, np.uint8)
    sheet = contact_sheet([frame], labels=["#299 10.0s"])
    box = sheet[:30, :160].astype(int)
    dark_cols = np.nonzero((box.max(axis=2) < 50).any(axis=0))[0]
    light_cols = np.nonzero((box.min(axis=2) > 220).any(axis=0))[0]
    assert len(dark_cols) > 40  # the text is there
    # The light halo surrounds the dark text; it does not run on past it (a thicker stroke advances further).
    assert abs(int(light_cols.max()) - int(dark_cols.max())) <= 2
    assert abs(int(light_cols.min()) - int(dark_cols.min())) <= 2
