"""`python -m bench`: discovery, pass-through knobs, the figure table and JSON, with the real media benchmark."""

from __future__ import annotations

import json
import pathlib

import pytest

from bench.__main__ import discover, flatten, main, parse_args


def test_parse_args_passes_extra_knobs_with_module_flags() -> None:
    args = parse_args(["--only", "media", "--pose-frames", "30", "--ratio=0.5", "--dry"])
    assert args.only == ["media"] and args.pose_frames == 30 and args.ratio == 0.5 and args.dry is True


def test_flatten_names_nested_figures_with_dotted_keys() -> None:
    rows = dict(flatten({"720p": {"encode_fps": 40.0, "size": "720x1280"}, "runs": [{"a": 1}], "n": 3}))
    assert rows == {"720p.encode_fps": 40.0, "720p.size": "720x1280", "runs[0].a": 1, "n": 3}


def test_main_rejects_unknown_module_with_only(capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    assert main(["--only", "nosuchthing", "--out", str(tmp_path)]) == 2
    assert "no such benchmark" in capsys.readouterr().err


def test_main_writes_media_figures_with_quick_run(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "media" in discover()
    rc = main(["--only", "media", "--quick", "--media-frames", "4", "--media-distinct-frames", "2",
               "--data", str(tmp_path / "absent"), "--out", str(tmp_path / "out")])
    assert rc == 0
    table = capsys.readouterr().out
    assert "1080p.encode_fps" in table and "720p.decode_rgb_fps" in table
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    media = summary["results"]["media"]
    assert summary["failed"] == [] and media["frames"] == 4 and media["content"].startswith("generated")
    for label in ("720p", "1080p"):
        assert media[label]["encode_fps"] > 0 and media[label]["decode_rgb_fps"] > 0
        assert "decode_frame_count_mismatch" not in media[label]
    assert json.loads((tmp_path / "out" / "media.json").read_text())["720p"]["size"] == "720x1280"
