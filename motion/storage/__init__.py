"""Object storage behind one interface: a local directory (embedded mode) or S3 through the minio SDK.

``open_store("file:///abs/dir")`` gives a :class:`LocalStore`; ``open_store("s3://bucket")`` gives an
:class:`S3Store` whose endpoint and credentials come from :class:`motion.settings.Settings`
(``MOTION_S3_ENDPOINT``, ``MOTION_S3_ACCESS_KEY``, ``MOTION_S3_SECRET_KEY``, ``MOTION_S3_SECURE``,
``MOTION_S3_REGION``).
"""

from __future__ import annotations

import pathlib
import urllib.parse
from typing import TYPE_CHECKING, Any

from motion.errors import InputError
from motion.settings import Settings
from motion.storage.base import BaseStore, KeyOrRef, ObjectStore, content_key, validate_key
from motion.storage.local import LocalStore

if TYPE_CHECKING:
    from motion.storage.s3 import S3Store


def __getattr__(name: str) -> Any:
    # The S3 backend (and the minio SDK, ~0.2 s to import) loads only when asked for: the embedded CLI
    # works on a local directory and pays for it otherwise on every run.
    if name == "S3Store":
        from motion.storage.s3 import S3Store

        return S3Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "BaseStore",
    "KeyOrRef",
    "LocalStore",
    "ObjectStore",
    "S3Store",
    "content_key",
    "open_store",
    "validate_key",
]


def open_store(url: str | None = None, settings: Settings | None = None) -> ObjectStore:
    """Open the store named by ``url`` (default: ``settings.effective_store_url``)."""
    settings = settings if settings is not None else Settings.from_env()
    url = url or settings.effective_store_url
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise InputError(
                "storage.url", "file URLs must name a local absolute path (file:///dir)", actual=url
            )
        return LocalStore(pathlib.Path(urllib.parse.unquote(parsed.path)))
    if parsed.scheme == "s3":
        if not parsed.netloc or parsed.path not in ("", "/") or parsed.query:
            raise InputError("storage.url", "S3 URLs name only a bucket (s3://bucket)", actual=url)
        from motion.storage.s3 import S3Store

        return S3Store(
            parsed.netloc,
            settings.s3_endpoint,
            settings.s3_access_key,
            settings.s3_secret_key,
            secure=settings.s3_secure,
            region=settings.s3_region,
            public_endpoint=settings.s3_public_endpoint,
        )
    raise InputError(
        "storage.url", "store URL must start with file:// or s3://", limit="file://|s3://", actual=url
    )
