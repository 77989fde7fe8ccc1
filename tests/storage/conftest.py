"""Every storage test runs against both stores: a local directory and a real S3 server (weed mini)."""

from __future__ import annotations

import pathlib

import pytest

from motion.storage import LocalStore, ObjectStore


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> ObjectStore:
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    s3: ObjectStore = request.getfixturevalue("s3_store")
    return s3
