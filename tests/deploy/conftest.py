"""Fixtures for the chart tests: each value set is rendered once per session."""

from __future__ import annotations

import pytest

from tests.deploy.chart import VALUE_SETS, Rendered, render_value_set
from tests.deploy.crds import crd_dir_available

pytest.importorskip("helm_python", reason="helm-python-sdk is a dev dependency (pip install -e '.[dev]')")

_cache: dict[str, Rendered] = {}


def rendered_set(value_set: str) -> Rendered:
    if value_set not in _cache:
        _cache[value_set] = render_value_set(value_set)
    return _cache[value_set]


@pytest.fixture(params=VALUE_SETS)
def rendered(request: pytest.FixtureRequest) -> Rendered:
    return rendered_set(request.param)


@pytest.fixture(scope="session")
def crds_present() -> None:
    if not crd_dir_available():
        pytest.skip("CRD schemas not available: ../shared/crds is absent (it sits beside the repo in CI)")
