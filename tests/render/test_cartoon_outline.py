"""A cut-out cartoon (the sample kit's character) gets its outline along the torso fill under its arms: once
an arm moves away that fill is a new edge of the silhouette, and without a stroke it read as a pale pad."""

from __future__ import annotations

import pathlib

import cv2
import numpy as np
import pytest

import services.render.layers as layers
from motion.rig import CharacterRig
from motion.samples.kit import write_samples
from services.render.character import analyse_character
from services.render.layers import build_rig_model
from services.render.outline import cartoon_outline
from services.render.skin import Part
from tests.render.test_photo_layers import _photo_rig


@pytest.fixture(scope="module")
def kit_rig(tmp_path_factory: pytest.TempPathFactory) -> CharacterRig:
    kit = write_samples(tmp_path_factory.mktemp("kit"), duration_s=3.0, fps=10.0, size=(360, 640))
    return analyse_character(pathlib.Path(kit.character_png))


def _dark_fill_edge(model: layers.RigModel) -> tuple[int, int]:
    """(dark texels, all texels) on the edge of the torso layer's fill (its pixels the torso does not own)."""
    torso = next(layer for layer in model.layers if layer.part == Part.TORSO)
    covered = torso.mask & (model.part_labels != int(Part.TORSO))
    depth = cv2.distanceTransform(torso.mask.astype(np.uint8), cv2.DIST_L2, 3)
    edge = covered & (depth <= 1.0)
    luma = torso.texture_premul[..., :3].astype(np.float32).mean(axis=2)
    return int((luma[edge] < 80).sum()), int(edge.sum())


def test_cartoon_outline_finds_dark_stroke_with_sample_character(kit_rig: CharacterRig) -> None:
    found = cartoon_outline(kit_rig.texture_rgba, kit_rig.mask)
    assert found is not None
    colour, width_px = found
    assert int(colour.max()) < 80 and 1.5 <= width_px <= 8.0


def test_cartoon_outline_is_none_with_photo_rig() -> None:
    rig = _photo_rig()
    assert cartoon_outline(rig.texture_rgba, rig.mask) is None


def test_build_rig_model_outlines_torso_fill_with_sample_character(
        kit_rig: CharacterRig, monkeypatch: pytest.MonkeyPatch) -> None:
    dark, edge = _dark_fill_edge(build_rig_model(kit_rig))
    assert edge > 100 and dark > 0.95 * edge  # the fill's whole edge is stroked
    monkeypatch.setattr(layers, "cartoon_outline", lambda texture, mask: None)
    dark_plain, edge_plain = _dark_fill_edge(build_rig_model(kit_rig))
    # Without it the fill's edge inside the figure (where the sleeve was: the shoulder caps) stays light;
    # along the silhouette the character's own outline was already dark.
    assert edge_plain == edge and dark - dark_plain > 40


@pytest.mark.parametrize("name", ["musev__man.jpg", "musepose__ref.png"])
def test_cartoon_outline_is_none_with_real_photo_and_illustration(shared_data: pathlib.Path, name: str) -> None:
    rig = analyse_character(shared_data / "characters" / name)
    assert cartoon_outline(rig.texture_rgba, rig.mask) is None
