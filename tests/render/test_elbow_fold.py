"""Strongly bent elbows: the skin inside the bend compresses instead of folding over itself."""

from __future__ import annotations

import numpy as np
import pytest

from services.render.layers import RigModel, build_rig_model
from services.render.skin import Part, bone_transforms, deform, frame_joints
from tests.render.synthetic import make_character, posed_frame


@pytest.fixture(scope="module")
def model() -> RigModel:
    return build_rig_model(make_character())


def _signed_area(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    a, b, c = points[triangles[:, 0]], points[triangles[:, 1]], points[triangles[:, 2]]
    return np.asarray(0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])))


@pytest.mark.parametrize("elbow_deg", [60.0, -60.0, 100.0, -100.0, 130.0, -130.0])
def test_deform_folds_no_triangles_with_strongly_bent_elbow(model: RigModel, elbow_deg: float) -> None:
    # Distance-based blending folded 10-110 px^2 of the inner elbow over itself at these bends (a dark
    # crease, or shards of sleeve edge, on screen); the angular split at the hinge folds none.
    layer = next(layer for layer in model.layers if layer.part == Part.LEFT_ARM)
    frame = posed_frame(0, 12.0, left_arm_deg=0.0, left_elbow_deg=elbow_deg, right_arm_deg=0.0)
    moved = deform(layer.mesh.vertices, layer.skin, bone_transforms(model.bones, frame_joints(frame)))
    rest_area = _signed_area(layer.mesh.vertices, layer.mesh.triangles)
    area = _signed_area(moved, layer.mesh.triangles)
    flipped = np.sign(rest_area) != np.sign(area)
    assert float(np.abs(area[flipped]).sum()) < 1.0
