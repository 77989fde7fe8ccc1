"""S3 object store through the ``minio`` SDK (MinIO in production, ``weed mini`` in tests).

Atomicity comes from S3 itself: a PUT, or a multipart upload's completion, makes the whole object
visible at once; readers never see a partial object. ``put_if_absent`` sends ``If-None-Match: *``
(conditional create, supported by MinIO and SeaweedFS), so the server decides which concurrent
creator wins. The sha256 of every object we write travels as user metadata ``x-amz-meta-sha256``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import pathlib
import time
from collections.abc import Iterator
from datetime import timedelta

import minio
import urllib3
from minio.error import InvalidResponseError, S3Error

from motion.errors import InputError, NotFoundError, UnauthenticatedError, UnavailableError
from motion.storage.base import (
    DEFAULT_CONTENT_TYPE,
    KeyOrRef,
    ObjectStore,
    guess_content_type,
    sha256_file,
    validate_expires,
    validate_key,
    validate_prefix,
)
from motion.v1.common_pb2 import ObjectRef

# Files above this size upload as multipart in parts of this size (S3 allows 5 MiB..5 GiB per part).
DEFAULT_PART_SIZE_BYTES = 16 * 1024 * 1024
MIN_PART_SIZE_BYTES = 5 * 1024 * 1024
SHA256_META = "x-amz-meta-sha256"
_NOT_FOUND_CODES = {"NoSuchKey", "NoSuchBucket", "NoSuchObject", "ResourceNotFound"}
_AUTH_CODES = {"SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied", "InvalidToken", "ExpiredToken"}
# Conditional writes racing on one key may get 409 instead of 412; retrying settles them.
_CONDITIONAL_RETRY_CODES = {"ConditionalRequestConflict", "OperationAborted"}
_CONDITIONAL_RETRIES = 5


def _http_client(connect_timeout_s: float, read_timeout_s: float) -> urllib3.PoolManager:
    # Retries cover transient server errors only; auth failures (403) must surface at once.
    retry = urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504])
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s), maxsize=16, retries=retry
    )


class S3Store(ObjectStore):
    def __init__(
        self,
        bucket: str,
        endpoint: str,
        access_key: str,
        secret_key: str,
        *,
        secure: bool = False,
        region: str = "us-east-1",
        part_size_bytes: int = DEFAULT_PART_SIZE_BYTES,
        create_bucket: bool = True,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 120.0,
        public_endpoint: str = "",
    ) -> None:
        if part_size_bytes < MIN_PART_SIZE_BYTES:
            raise InputError(
                "storage.part_size_bytes",
                "multipart part size below the S3 minimum",
                limit=MIN_PART_SIZE_BYTES,
                actual=part_size_bytes,
            )
        self._bucket = bucket
        self.endpoint = endpoint
        self.part_size_bytes = part_size_bytes
        self._http = _http_client(connect_timeout_s, read_timeout_s)
        try:
            self.client = minio.Minio(
                endpoint,
                access_key=access_key or None,
                secret_key=secret_key or None,
                secure=secure,
                region=region,
                http_client=self._http,
            )
            minio.helpers.check_bucket_name(bucket, strict=True)
            # Presigned URLs are signed for the host the client will use, so clients outside the cluster
            # get one for the public endpoint ("https://host" or "host[:port]"); signing makes no request.
            self._presign_client = self.client
            if public_endpoint:
                public_secure = secure if "://" not in public_endpoint else public_endpoint.startswith("https://")
                self._presign_client = minio.Minio(
                    public_endpoint.split("://", 1)[-1].rstrip("/"), access_key=access_key or None,
                    secret_key=secret_key or None, secure=public_secure, region=region, http_client=self._http,
                )
        except ValueError as exc:
            raise InputError(
                "storage.url", f"bad S3 endpoint or bucket: {exc}", actual=f"{endpoint}/{bucket}"
            ) from None
        if create_bucket:
            self._ensure_bucket()

    @property
    def url(self) -> str:
        return f"s3://{self._bucket}"

    def __repr__(self) -> str:
        return f"S3Store(bucket={self._bucket!r}, endpoint={self.endpoint!r})"

    def close(self) -> None:
        self._http.clear()

    @contextlib.contextmanager
    def _errors(self, key: str = "") -> Iterator[None]:
        """Turn SDK and transport failures into motion errors with a stable rule."""
        try:
            yield
        except S3Error as exc:
            where = f"s3://{self._bucket}/{key}" if key else f"s3://{self._bucket}"
            if exc.code in _NOT_FOUND_CODES:
                raise NotFoundError(
                    f"storage.not_found: no object at {where}",
                    rule="storage.not_found",
                    key=key,
                    s3_code=exc.code,
                ) from None
            if exc.code in _AUTH_CODES:
                raise UnauthenticatedError(
                    f"storage.credentials: S3 server at {self.endpoint} refused our credentials ({exc.code})",
                    rule="storage.credentials",
                    s3_code=exc.code,
                ) from None
            raise UnavailableError(
                f"storage.s3_error: {exc.code} on {where}: {exc.message}",
                rule="storage.s3_error",
                s3_code=exc.code,
            ) from None
        except (urllib3.exceptions.HTTPError, InvalidResponseError, OSError) as exc:
            raise UnavailableError(
                f"storage.unavailable: S3 server at {self.endpoint} unreachable: {exc}",
                rule="storage.unavailable",
                endpoint=self.endpoint,
            ) from None

    def _ensure_bucket(self) -> None:
        with self._errors():
            if self.client.bucket_exists(self._bucket):
                return
            try:
                self.client.make_bucket(self._bucket)
            except S3Error as exc:
                # Another process created it first: fine.
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    def put_bytes(self, key: str, data: bytes, content_type: str = "") -> ObjectRef:
        validate_key(key)
        data = bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        ctype = content_type or guess_content_type(key)
        with self._errors(key):
            self.client.put_object(
                self._bucket,
                key,
                io.BytesIO(data),
                len(data),
                content_type=ctype,
                metadata={SHA256_META: sha},
                part_size=self.part_size_bytes,
            )
        return self._ref(key, sha, len(data), ctype)

    def put_file(self, key: str, path: str | pathlib.Path, content_type: str = "") -> ObjectRef:
        """Upload a file; above ``part_size_bytes`` it goes multipart, visible only once complete."""
        validate_key(key)
        src = pathlib.Path(path)
        if not src.is_file():
            raise NotFoundError(
                f"storage.source_missing: no file at {src}", rule="storage.source_missing", path=str(src)
            )
        sha, size = sha256_file(src)
        ctype = content_type or guess_content_type(key)
        with self._errors(key):
            self.client.fput_object(
                self._bucket,
                key,
                str(src),
                content_type=ctype,
                metadata={SHA256_META: sha},
                part_size=self.part_size_bytes,
            )
        return self._ref(key, sha, size, ctype)

    def put_if_absent(self, key: str, data: bytes, content_type: str = "") -> bool:
        """Create ``key`` only if nothing is there (``If-None-Match: *``); True when this call created it."""
        return self._conditional_put(key, data, content_type, {"If-None-Match": "*"})

    def get_with_version(self, key_or_ref: KeyOrRef) -> tuple[bytes, str]:
        """Bytes and ETag, read in one GET so they belong together."""
        key = self._key(key_or_ref)
        with self._errors(key):
            response = self.client.get_object(self._bucket, key)
            try:
                data = response.read()
                etag = str(response.headers.get("ETag", "")).strip('"')
            finally:
                response.close()
                response.release_conn()
        return self._verify(key_or_ref, data), etag

    def put_if_match(self, key: str, data: bytes, version: str, content_type: str = "") -> bool:
        """Replace ``key`` only if its ETag is still ``version`` (``If-Match``); True when replaced."""
        if not version:
            raise InputError(
                "storage.version", "put_if_match needs the version from get_with_version", actual=version
            )
        try:
            return self._conditional_put(key, data, content_type, {"If-Match": f'"{version}"'})
        except NotFoundError:
            return False  # deleted meanwhile: the caller's view is stale, like a changed version

    def _conditional_put(self, key: str, data: bytes, content_type: str, condition: dict[str, str]) -> bool:
        validate_key(key)
        data = bytes(data)
        headers: dict[str, str | list[str] | tuple[str]] = {
            "Content-Type": content_type or guess_content_type(key),
            SHA256_META: hashlib.sha256(data).hexdigest(),
            **condition,
        }
        for attempt in range(_CONDITIONAL_RETRIES):
            with self._errors(key):
                try:
                    # The public put_object cannot send conditional headers; _put_object is a plain signed PUT.
                    self.client._put_object(self._bucket, key, data, headers=headers)
                    return True
                except S3Error as exc:
                    if exc.code == "PreconditionFailed":
                        return False
                    if exc.code not in _CONDITIONAL_RETRY_CODES:
                        raise
            time.sleep(0.05 * (attempt + 1))
        raise UnavailableError(
            f"storage.conditional_conflict: conditional write of {key!r} kept conflicting",
            rule="storage.conditional_conflict",
            limit=_CONDITIONAL_RETRIES,
            key=key,
        )

    def get_bytes(self, key_or_ref: KeyOrRef, max_bytes: int | None = None) -> bytes:
        key = self._key(key_or_ref)
        with self._errors(key):
            response = self.client.get_object(self._bucket, key)
            try:
                length = response.headers.get("Content-Length")
                if length is not None:
                    self._check_max_bytes(key, int(length), max_bytes)
                data = response.read()
            finally:
                response.close()
                response.release_conn()
        return self._verify(key_or_ref, data)

    def get_file(self, key_or_ref: KeyOrRef, path: str | pathlib.Path) -> pathlib.Path:
        key = self._key(key_or_ref)
        dest = pathlib.Path(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        # fget_object downloads into a temp file beside dest and renames it when complete.
        with self._errors(key):
            self.client.fget_object(self._bucket, key, str(dest))
        if isinstance(key_or_ref, ObjectRef) and key_or_ref.sha256:
            self._check_digest(key_or_ref, sha256_file(dest)[0])
        return dest

    def stat(self, key_or_ref: KeyOrRef) -> ObjectRef:
        key = self._key(key_or_ref)
        with self._errors(key):
            info = self.client.stat_object(self._bucket, key)
        meta = info.metadata or {}
        sha = meta.get(SHA256_META) or meta.get(SHA256_META.title()) or ""
        return self._ref(key, str(sha), int(info.size or 0), info.content_type or DEFAULT_CONTENT_TYPE)

    def exists(self, key_or_ref: KeyOrRef) -> bool:
        try:
            self.stat(key_or_ref)
        except NotFoundError:
            return False
        return True

    def delete(self, key_or_ref: KeyOrRef) -> None:
        """Remove the object; deleting a missing object is not an error."""
        key = self._key(key_or_ref)
        with self._errors(key):
            self.client.remove_object(self._bucket, key)

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix``, in S3's (lexicographic) order, fetched page by page."""
        validate_prefix(prefix)
        with self._errors(prefix):
            for obj in self.client.list_objects(self._bucket, prefix=prefix or None, recursive=True):
                if obj.object_name is not None and not obj.is_dir:
                    yield obj.object_name

    def presign_get(self, key_or_ref: KeyOrRef, expires_s: int = 3600) -> str:
        """A SigV4 presigned GET URL; the server refuses it after ``expires_s`` seconds."""
        key = self._key(key_or_ref)
        expires = timedelta(seconds=validate_expires(expires_s))
        with self._errors(key):
            return self._presign_client.presigned_get_object(self._bucket, key, expires=expires)
