"""`motionctl probe` through the real CLI entry point."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from motion.cli import main
from tests.media.conftest import pattern_frame, write_png, write_video


def test_probe_prints_json_with_valid_video(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_video(tmp_path / "clip.mp4", frames=31)
    assert main(["probe", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "video" and out["valid"] is True
    assert (out["width"], out["height"], out["frame_count"], out["container"]) == (352, 352, 31, "mp4")


def test_probe_prints_info_with_valid_image(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_png(tmp_path / "c.png", pattern_frame(400, 500, 0))
    assert main(["probe", str(path)]) == 0
    text = capsys.readouterr().out
    assert "valid image" in text and "width: 400" in text and "height: 500" in text


def test_probe_exits_2_with_rule_with_short_video(tmp_path: pathlib.Path) -> None:
    path = write_video(tmp_path / "short.mp4", frames=12)
    proc = subprocess.run([sys.executable, "-m", "motion.cli", "probe", str(path), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    err = json.loads(proc.stderr.strip().splitlines()[-1])
    assert err["rule"] == "video.min_duration_s" and err["limit"] == 3.0 and err["actual"] == pytest.approx(1.2)


def test_probe_exits_2_with_unknown_extension(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    assert main(["probe", str(path)]) == 2
    assert "input.format" in capsys.readouterr().err
