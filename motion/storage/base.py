"""The object store interface shared by the local-directory store and the S3 store.

Keys are relative, slash-separated paths (``jobs/abc.json``). Every write is atomic for readers:
a reader sees the previous object, nothing, or the whole new object, never a partial one.
"""

from __future__ import annotations

import abc
import hashlib
import json
import mimetypes
import pathlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, Self, TypeVar

from google.protobuf.message import DecodeError, Message

from motion.errors import FailedPreconditionError, InputError, TooLargeError
from motion.v1.common_pb2 import ObjectRef

# Presigned URLs follow S3's SigV4 bounds: at least a second, at most seven days.
MAX_PRESIGN_EXPIRES_S = int(timedelta(days=7).total_seconds())
MAX_KEY_BYTES = 1024  # S3's limit on an object key
DEFAULT_CONTENT_TYPE = "application/octet-stream"
HASH_CHUNK_BYTES = 1 << 20

KeyOrRef = str | ObjectRef
MessageT = TypeVar("MessageT", bound=Message)


def validate_key(key: str) -> str:
    """Reject keys that could escape a directory store or that S3 would refuse."""
    if not key:
        raise InputError("storage.key", "object key is empty", actual=key)
    if len(key.encode()) > MAX_KEY_BYTES:
        raise InputError(
            "storage.key", "object key is too long", limit=MAX_KEY_BYTES, actual=len(key.encode())
        )
    if key.startswith("/") or "\\" in key or "\x00" in key:
        raise InputError("storage.key", "object key must be a relative slash-separated path", actual=key)
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise InputError("storage.key", "object key has an empty, '.' or '..' segment", actual=key)
    if any(p.startswith(".motion-") for p in parts):
        # The local store keeps its temp files under this prefix; keep keys out of it everywhere.
        raise InputError("storage.key", "object key segments may not start with '.motion-'", actual=key)
    return key


def validate_prefix(prefix: str) -> str:
    if prefix.startswith("/") or "\\" in prefix or ".." in prefix.split("/"):
        raise InputError(
            "storage.prefix", "list prefix must be a relative slash-separated path", actual=prefix
        )
    return prefix


def validate_expires(expires_s: int) -> int:
    if not 1 <= int(expires_s) <= MAX_PRESIGN_EXPIRES_S:
        raise InputError(
            "storage.presign_expires_s",
            "presigned URL lifetime out of range",
            limit=f"1..{MAX_PRESIGN_EXPIRES_S}",
            actual=expires_s,
        )
    return int(expires_s)


def guess_content_type(key: str) -> str:
    guessed, _ = mimetypes.guess_type(key, strict=False)
    return guessed or DEFAULT_CONTENT_TYPE


def sha256_file(path: pathlib.Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def content_key(sha256_hex: str, prefix: str, ext: str = "") -> str:
    """The key of content-addressed data: ``{prefix}/{sha[:2]}/{sha}{ext}``."""
    if ext and not ext.startswith("."):
        ext = "." + ext
    key = f"{sha256_hex[:2]}/{sha256_hex}{ext}"
    return f"{prefix.strip('/')}/{key}" if prefix.strip("/") else key


class ObjectStore(abc.ABC):
    """What every store offers (see docs/CONTRACTS.md, Storage); helpers build on the primitives."""

    _bucket: str = ""

    @property
    def bucket(self) -> str:
        """The S3 bucket; empty for the local store. Refs written by this store carry it."""
        return self._bucket

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """The URL that reopens this store with open_store()."""

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes, content_type: str = "") -> ObjectRef:
        """Write (or replace) ``key``; readers see the old object or the whole new one."""

    @abc.abstractmethod
    def put_file(self, key: str, path: str | pathlib.Path, content_type: str = "") -> ObjectRef:
        """Upload a file (multipart above the part size on S3); atomic for readers."""

    @abc.abstractmethod
    def put_if_absent(self, key: str, data: bytes, content_type: str = "") -> bool:
        """Create ``key`` only if it does not exist; True when this call created it."""

    @abc.abstractmethod
    def get_with_version(self, key_or_ref: KeyOrRef) -> tuple[bytes, str]:
        """The object's bytes and an opaque version token for ``put_if_match``."""

    @abc.abstractmethod
    def put_if_match(self, key: str, data: bytes, version: str, content_type: str = "") -> bool:
        """Replace ``key`` only if it is still at ``version`` (compare-and-swap); True when replaced.

        False when another writer changed or deleted it first: re-read and decide again. Use it for
        read-modify-write of shared records (job state, lease renewal and takeover).
        """

    @abc.abstractmethod
    def get_bytes(self, key_or_ref: KeyOrRef, max_bytes: int | None = None) -> bytes:
        """The object's bytes; TooLargeError above ``max_bytes``; checks the ref's sha256 when set."""

    @abc.abstractmethod
    def get_file(self, key_or_ref: KeyOrRef, path: str | pathlib.Path) -> pathlib.Path:
        """Download to ``path`` (written atomically); checks the ref's sha256 when set."""

    @abc.abstractmethod
    def stat(self, key_or_ref: KeyOrRef) -> ObjectRef:
        """The object's ref (size, content type, sha256 where the store keeps it)."""

    @abc.abstractmethod
    def exists(self, key_or_ref: KeyOrRef) -> bool: ...

    @abc.abstractmethod
    def delete(self, key_or_ref: KeyOrRef) -> None:
        """Remove the object; a missing object is not an error."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys that start with ``prefix`` (a string prefix, as in S3), sorted."""

    @abc.abstractmethod
    def presign_get(self, key_or_ref: KeyOrRef, expires_s: int = 3600) -> str:
        """A URL that downloads the object without credentials until ``expires_s`` passes."""

    def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing
        """Release resources (nothing for most stores)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _key(self, key_or_ref: KeyOrRef) -> str:
        if isinstance(key_or_ref, ObjectRef):
            if key_or_ref.bucket and self._bucket and key_or_ref.bucket != self._bucket:
                raise InputError(
                    "storage.bucket_mismatch",
                    "object reference names another bucket than this store's",
                    limit=self._bucket,
                    actual=key_or_ref.bucket,
                )
            return validate_key(key_or_ref.key)
        return validate_key(key_or_ref)

    def _ref(self, key: str, sha256_hex: str, size_bytes: int, content_type: str) -> ObjectRef:
        return ObjectRef(
            bucket=self._bucket, key=key, sha256=sha256_hex, size_bytes=size_bytes, content_type=content_type
        )

    @staticmethod
    def _check_max_bytes(key: str, size: int, max_bytes: int | None) -> None:
        if max_bytes is not None and size > max_bytes:
            raise TooLargeError(
                "storage.max_bytes", f"object {key!r} is too large", limit=max_bytes, actual=size
            )

    @staticmethod
    def _check_digest(key_or_ref: KeyOrRef, actual_sha256: str) -> None:
        """When the reference carries a sha256, the content must match it (catches corruption)."""
        if isinstance(key_or_ref, ObjectRef) and key_or_ref.sha256 and actual_sha256 != key_or_ref.sha256:
            raise FailedPreconditionError(
                f"storage.checksum: object {key_or_ref.key!r} does not match its sha256",
                rule="storage.checksum",
                limit=key_or_ref.sha256,
                actual=actual_sha256,
            )

    def _verify(self, key_or_ref: KeyOrRef, data: bytes) -> bytes:
        if isinstance(key_or_ref, ObjectRef) and key_or_ref.sha256:
            self._check_digest(key_or_ref, hashlib.sha256(data).hexdigest())
        return data

    def put_content_addressed(
        self, data: bytes, prefix: str, ext: str = "", content_type: str = ""
    ) -> ObjectRef:
        """Store ``data`` under a key derived from its sha256; an existing copy is reused, not rewritten."""
        sha = hashlib.sha256(data).hexdigest()
        key = content_key(sha, prefix, ext)
        ctype = content_type or guess_content_type(key)
        # Same key means same bytes, so losing a race to another writer is harmless.
        self.put_if_absent(key, data, content_type=ctype)
        return self._ref(key, sha, len(data), ctype)

    def put_json(self, key: str, value: Any) -> ObjectRef:
        data = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()
        return self.put_bytes(key, data, content_type="application/json")

    def get_json(self, key_or_ref: KeyOrRef) -> Any:
        data = self.get_bytes(key_or_ref)
        try:
            return json.loads(data)
        except ValueError as exc:
            raise FailedPreconditionError(
                f"storage.corrupt_json: object {self._key(key_or_ref)!r} is not valid JSON: {exc}",
                rule="storage.corrupt_json",
            ) from None

    def put_proto(self, key: str, message: Message) -> ObjectRef:
        return self.put_bytes(key, message.SerializeToString(), content_type="application/x-protobuf")

    def get_proto(self, key_or_ref: KeyOrRef, message_type: type[MessageT]) -> MessageT:
        message = message_type()
        try:
            message.ParseFromString(self.get_bytes(key_or_ref))
        except DecodeError as exc:
            raise FailedPreconditionError(
                f"storage.corrupt_proto: object {self._key(key_or_ref)!r} is not a valid "
                f"{message_type.DESCRIPTOR.full_name}: {exc}",
                rule="storage.corrupt_proto",
            ) from None
        return message


# Alias kept for callers that name the base class (services/pose uses it).
BaseStore = ObjectStore
