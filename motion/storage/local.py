"""A directory used as an object store (embedded mode): one file per key under a root directory.

Writes go to a temp file inside the root (same filesystem) and are renamed into place, so readers
never see a partial object. ``put_if_absent`` links the finished temp file to the key, which fails
if the key exists, so exactly one of several concurrent creators wins.

Presigned URLs: a local store has no server to enforce an expiry, so ``presign_get`` returns a plain
``file://`` URL of the object (openable by ``urllib`` and any local tool). Its ``expires_s`` is
validated for parity with S3 but not enforced: whoever can read the URL can read the directory.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import BinaryIO

from motion.errors import InputError, NotFoundError
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

TMP_DIR_NAME = ".motion-tmp"
COPY_CHUNK_BYTES = 1 << 20

# Writes an object's bytes into an open temp file and returns (sha256 hex, size in bytes).
_Writer = Callable[[BinaryIO], tuple[str, int]]


class LocalStore(ObjectStore):
    def __init__(self, root: str | pathlib.Path) -> None:
        root = pathlib.Path(root).expanduser()
        if not root.is_absolute():
            raise InputError("storage.url", "local store root must be an absolute path", actual=str(root))
        self.root = root
        self._tmp = root / TMP_DIR_NAME
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._bucket = ""

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def _path(self, key: str) -> pathlib.Path:
        return self.root / validate_key(key)

    def _write_temp(self, write: _Writer) -> tuple[pathlib.Path, str, int]:
        """Write through ``write(fh)`` into a synced temp file; returns (temp path, sha256, size)."""
        fd, tmp_name = tempfile.mkstemp(prefix="put-", suffix=".part", dir=self._tmp)
        tmp = pathlib.Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                digest, size = write(fh)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp, digest, size

    @staticmethod
    def _bytes_writer(data: bytes) -> _Writer:
        def write(fh: BinaryIO) -> tuple[str, int]:
            fh.write(data)
            return hashlib.sha256(data).hexdigest(), len(data)

        return write

    @staticmethod
    def _file_writer(src: pathlib.Path) -> _Writer:
        def write(fh: BinaryIO) -> tuple[str, int]:
            digest = hashlib.sha256()
            size = 0
            with open(src, "rb") as inp:
                while chunk := inp.read(COPY_CHUNK_BYTES):
                    digest.update(chunk)
                    size += len(chunk)
                    fh.write(chunk)
            return digest.hexdigest(), size

        return write

    def _commit(self, tmp: pathlib.Path, key: str) -> None:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_dir():
            tmp.unlink(missing_ok=True)
            raise InputError("storage.key", "object key names a prefix that holds other objects", actual=key)
        os.replace(tmp, dest)

    def put_bytes(self, key: str, data: bytes, content_type: str = "") -> ObjectRef:
        validate_key(key)
        tmp, sha, size = self._write_temp(self._bytes_writer(bytes(data)))
        self._commit(tmp, key)
        return self._ref(key, sha, size, content_type or guess_content_type(key))

    def put_file(self, key: str, path: str | pathlib.Path, content_type: str = "") -> ObjectRef:
        validate_key(key)
        src = pathlib.Path(path)
        if not src.is_file():
            raise NotFoundError(
                f"storage.source_missing: no file at {src}", rule="storage.source_missing", path=str(src)
            )
        tmp, sha, size = self._write_temp(self._file_writer(src))
        self._commit(tmp, key)
        return self._ref(key, sha, size, content_type or guess_content_type(key))

    def put_if_absent(self, key: str, data: bytes, content_type: str = "") -> bool:
        """Create ``key`` only if nothing is there; True when this call created it."""
        validate_key(key)
        dest = self._path(key)
        if dest.exists():
            return False
        tmp, _, _ = self._write_temp(self._bytes_writer(bytes(data)))
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            # link() refuses an existing target atomically, and the linked file is already complete.
            os.link(tmp, dest)
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def _existing(self, key_or_ref: KeyOrRef) -> tuple[str, pathlib.Path]:
        key = self._key(key_or_ref)
        path = self.root / key
        if not path.is_file():
            raise NotFoundError(
                f"storage.not_found: no object {key!r} in {self.url}", rule="storage.not_found", key=key
            )
        return key, path

    def get_bytes(self, key_or_ref: KeyOrRef, max_bytes: int | None = None) -> bytes:
        key, path = self._existing(key_or_ref)
        try:
            with open(path, "rb") as fh:
                self._check_max_bytes(key, os.fstat(fh.fileno()).st_size, max_bytes)
                data = fh.read()
        except FileNotFoundError:
            raise NotFoundError(
                f"storage.not_found: no object {key!r} in {self.url}", rule="storage.not_found", key=key
            ) from None
        return self._verify(key_or_ref, data)

    def get_file(self, key_or_ref: KeyOrRef, path: str | pathlib.Path) -> pathlib.Path:
        _, src = self._existing(key_or_ref)
        dest = pathlib.Path(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        os.close(fd)
        try:
            shutil.copyfile(src, tmp_name)
            if isinstance(key_or_ref, ObjectRef) and key_or_ref.sha256:
                self._check_digest(key_or_ref, sha256_file(pathlib.Path(tmp_name))[0])
            os.replace(tmp_name, dest)
        except BaseException:
            pathlib.Path(tmp_name).unlink(missing_ok=True)
            raise
        return dest

    def stat(self, key_or_ref: KeyOrRef) -> ObjectRef:
        """Size and content type (guessed from the key); the sha256 is left empty (not stored locally)."""
        key, path = self._existing(key_or_ref)
        return self._ref(key, "", path.stat().st_size, guess_content_type(key) or DEFAULT_CONTENT_TYPE)

    def exists(self, key_or_ref: KeyOrRef) -> bool:
        return (self.root / self._key(key_or_ref)).is_file()

    def delete(self, key_or_ref: KeyOrRef) -> None:
        """Remove the object; deleting a missing object is not an error (as in S3)."""
        (self.root / self._key(key_or_ref)).unlink(missing_ok=True)

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix`` (a plain string prefix, as in S3), in sorted order."""
        validate_prefix(prefix)
        # Walk only the deepest directory the prefix pins down.
        base_dir = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root / base_dir if base_dir else self.root
        if not start.is_dir():
            return iter(())
        keys: list[str] = []
        for dirpath, dirnames, filenames in os.walk(start):
            rel_dir = pathlib.Path(dirpath).relative_to(self.root).as_posix()
            dirnames[:] = [d for d in dirnames if d != TMP_DIR_NAME]
            for name in filenames:
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return iter(sorted(keys))

    def presign_get(self, key_or_ref: KeyOrRef, expires_s: int = 3600) -> str:
        validate_expires(expires_s)
        return (self.root / self._key(key_or_ref)).as_uri()
