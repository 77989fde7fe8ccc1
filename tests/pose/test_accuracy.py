"""Accuracy against known ground truth: the sample kit's drawn performer (PCK@0.05 of person height)."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from motion.skeleton import LIMB_JOINTS
from services.pose.pipeline import PoseExtractor, PoseOptions

pytestmark = pytest.mark.usefixtures("pose_models")


def test_limb_joints_pck_reaches_0_95_with_drawn_performer(tmp_path: pathlib.Path) -> None:
    kit = pytest.importorskip("motion.samples.kit")
    video, gt_path = tmp_path / "performer.mp4", tmp_path / "performer.joints.json"
    kit.write_performer_video(video, gt_path, kit.PerformerOptions(duration_s=1.0, width=360, height=640,
                                                                   audio=False))
    gt = kit.load_ground_truth(gt_path)
    with PoseExtractor(PoseOptions(hands=False, face=False)) as ex:
        seq = ex.process_video(video)
    assert len(seq) == len(gt)
    hits = scored = 0
    for i, f in enumerate(seq.frames):
        pts, vis = gt.points_px[i], gt.visible[i]
        height_px = float(pts[:, 1].max() - pts[:, 1].min())
        for j in LIMB_JOINTS:
            if vis[j]:
                scored += 1
                hits += bool(f.present and f.body is not None
                             and np.hypot(*(f.body[j, :2] - pts[j])) <= 0.05 * height_px)
    assert scored >= 0.8 * 12 * len(gt)
    assert hits / scored >= 0.95
