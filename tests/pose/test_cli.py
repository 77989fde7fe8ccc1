"""`motionctl pose VIDEO -o OUT.json --overlay OUT.mp4` end to end."""

from __future__ import annotations

import json
import pathlib

import av
import pytest

from motion.cli import main as motionctl
from motion.skeleton import SkeletonSequence

pytestmark = pytest.mark.usefixtures("pose_models")


def test_pose_command_writes_json_and_overlay_with_real_clip(short_clip: pathlib.Path, tmp_path: pathlib.Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    out, overlay = tmp_path / "seq.json", tmp_path / "overlay.mp4"
    rc = motionctl(["pose", str(short_clip), "-o", str(out), "--overlay", str(overlay), "--no-face",
                    "--max-duration-s", "0.5", "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["frames"] == 15 and report["frames_with_person"] == 15 and report["faces"] == 0
    doc = json.loads(out.read_text())
    assert doc["format"] == "motion-control/skeleton-sequence" and len(doc["body_landmarks"]) == 33
    seq = SkeletonSequence.load_json(out)
    assert seq.frames[0].body is not None and seq.frames[0].face is None
    with av.open(str(overlay)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 15 and frames[0].shape[:2] == (540, 414)


def test_pose_command_exits_2_with_no_person_video(tmp_path: pathlib.Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    from tests.pose.conftest import write_clip

    clip = write_clip(tmp_path / "black.mp4", [np.zeros((96, 96, 3), np.uint8)] * 4, 4.0)
    assert motionctl(["pose", str(clip), "-o", str(tmp_path / "x.json"), "--quiet"]) == 2
    assert "pose.no_person" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
