"""Shared test fixtures: paths to the repo and to the shared real media (skip clearly when absent)."""

from __future__ import annotations

import itertools
import pathlib
import re
from collections.abc import Iterator
from typing import Any

import pytest

from motion.errors import MotionError
from motion.settings import Settings
from motion.storage.s3 import S3Store
from motion.storage.weed import WeedMini, find_weed

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = (REPO_ROOT.parent / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def repo_root() -> pathlib.Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """../shared/data (real media with provenance in MANIFEST.tsv); tests that need it skip without it."""
    if not (SHARED_DATA / "MANIFEST.tsv").is_file():
        pytest.skip(f"real media not available: {SHARED_DATA} is absent (it sits beside the repo in CI)")
    return SHARED_DATA


# --- Real S3 (SeaweedFS `weed mini` on loopback), started once per session -----------------------

_BUCKET_COUNTER = itertools.count()


class S3Server:
    """A running `weed mini`: endpoint, credentials, and `store(bucket)` for an S3Store on it."""

    def __init__(self, weed: WeedMini) -> None:
        self._weed = weed
        self.endpoint = weed.endpoint
        self.url = weed.url
        self.access_key = weed.access_key
        self.secret_key = weed.secret_key

    def store(self, bucket: str, **kw: Any) -> S3Store:
        return self._weed.store(bucket, **kw)

    def settings(self, bucket: str = "") -> Settings:
        return self._weed.settings(bucket)

    def env(self, bucket: str = "") -> dict[str, str]:
        return self._weed.env(bucket)

    def log_tail(self) -> str:
        return self._weed.log_tail()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3 server (signatures checked) on 127.0.0.1 for the whole session; skips without `weed`."""
    try:
        find_weed()
    except MotionError as exc:
        pytest.skip(str(exc))
    with WeedMini() as weed:
        yield S3Server(weed)


@pytest.fixture
def s3_store(s3_server: S3Server, request: pytest.FixtureRequest) -> Iterator[S3Store]:
    """An S3Store on a fresh bucket of the session's server."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    bucket = f"t{next(_BUCKET_COUNTER)}-{slug}"
    with s3_server.store(bucket) as store:
        yield store
