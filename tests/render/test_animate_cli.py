"""`motionctl animate` end to end on the sample kit (real PyAV files, real pose models, real EGL)."""

from __future__ import annotations

import json
import pathlib

import av
import cv2
import pytest

from motion.cli import main
from motion.samples.kit import write_samples


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    # The shortest clip validation accepts (3 s), small and at a low frame rate to keep the test quick.
    return write_samples(tmp_path_factory.mktemp("kit"), duration_s=3.0, fps=10.0, size=(360, 640))


def test_animate_writes_video_with_audio_and_extras_with_sample_kit(kit, tmp_path: pathlib.Path,  # type: ignore[no-untyped-def]
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "animated.mp4"
    rc = main(["animate", "--image", str(kit.character_png), "--video", str(kit.performer_mp4), "-o", str(out),
               "--joints", str(kit.character_joints), "--export-skeleton", str(tmp_path / "skel.json"),
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
    skel = json.loads((tmp_path / "skel.json").read_text())
    assert len(skel["frames"]) == 30


def test_animate_reports_rule_with_bad_background(kit, tmp_path: pathlib.Path,  # type: ignore[no-untyped-def]
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["animate", "--image", str(kit.character_png), "--video", str(kit.performer_mp4),
               "-o", str(tmp_path / "x.mp4"), "--joints", str(kit.character_joints), "--background", "plaid"])
    assert rc == 2
    assert "render.background" in capsys.readouterr().err
