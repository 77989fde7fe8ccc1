"""The sample performer is detectable: the project's BlazePose pipeline tracks it against the ground truth.

Skips when the pose pipeline or its models (`motionctl models fetch`) are not installed.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from motion.errors import ModelError
from motion.samples import load_ground_truth, write_performer_video
from motion.samples.kit import PerformerOptions
from motion.skeleton import LIMB_JOINTS


def pck(pred_px: np.ndarray, truth_px: np.ndarray, fraction: float = 0.05) -> float:
    """Share of limb joints within ``fraction`` of the ground-truth body's bounding-box size (missing = miss)."""
    joints = list(LIMB_JOINTS)
    hits = []
    for pred, truth in zip(pred_px, truth_px, strict=True):
        size = float((truth.max(axis=0) - truth.min(axis=0)).max())
        if np.isnan(pred[joints]).any():
            hits += [False] * len(joints)
            continue
        hits += (np.linalg.norm(pred[joints, :2] - truth[joints], axis=1) < fraction * size).tolist()
    return float(np.mean(hits))


def test_pose_pipeline_tracks_performer_with_pck_above_095(tmp_path: pathlib.Path) -> None:
    pipeline = pytest.importorskip("services.pose.pipeline")
    models = pytest.importorskip("services.pose.models")
    try:
        models.ensure_models()
    except ModelError as exc:
        pytest.skip(f"pose models not installed: {exc}")
    video, truth = tmp_path / "performer.mp4", tmp_path / "performer.joints.json"
    write_performer_video(video, truth, PerformerOptions(seed=4, duration_s=3.0, audio=False))
    gt = load_ground_truth(truth)
    opts = pipeline.PoseOptions(runtime="litert", hands=False, face=False)
    with pipeline.PoseExtractor(opts, model_dir=None) as extractor:
        seq = extractor.process_video(video)
    assert len(seq.frames) == len(gt)
    assert sum(f.present for f in seq.frames) == len(gt)
    score = pck(seq.body_array(), gt.points_px)
    assert score >= 0.95, f"PCK@0.05 = {score:.3f}"
