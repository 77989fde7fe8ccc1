"""Shared render fixtures: the synthetic character and its render model, built once per test module."""

from __future__ import annotations

import pytest

from services.render.layers import RigModel, build_rig_model
from tests.render.synthetic import make_character


@pytest.fixture(scope="module")
def rig():  # type: ignore[no-untyped-def]
    return make_character()


@pytest.fixture(scope="module")
def model(rig) -> RigModel:  # type: ignore[no-untyped-def]
    return build_rig_model(rig)
