"""A directory used as an object store (embedded mode): one file per key under a root directory.

Writes go to a temp file inside the root (same filesystem) and are renamed into place, so readers
never see a partial object. ``put_if_absent`` links the finished temp file to the key, which fails
if the key exists, so exactly one of several concurrent creators wins.

Presigned URLs: a local store has no server to enforce an expiry, so ``presign_get`` returns a plain
``file://`` URL of the object (openable by ``urllib`` and any local tool). Its ``expires_s`` is
validated for parity with S3 but not enforced: whoever can read the URL can read the directory.
"""

from __future__ import annotations

import contextlib
import fcntl
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

# Metadata travels with the file's inode as extended attributes (best effort: not every FS has them).
XATTR_SHA256 = "user.motion.sha256"
XATTR_CONTENT_TYPE = "user.motion.content_type"

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

    def _write_temp(self, write: _Writer, content_type: str = "") -> tuple[pathlib.Path, str, int]:
        """Write through ``write(fh)`` into a synced temp file; returns (temp path, sha256, size)."""
        fd, tmp_name = tempfile.mkstemp(prefix="put-", suffix=".part", dir=self._tmp)
        tmp = pathlib.Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                digest, size = write(fh)
                fh.flush()
                _set_meta(fh.fileno(), digest, content_type)
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

    def _make_parent(self, dest: pathlib.Path, key: str, tmp: pathlib.Path) -> None:
        # A directory tree cannot hold both "a" and "a/b" (S3 can): refuse clearly, leave no temp file.
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            tmp.unlink(missing_ok=True)
            raise InputError("storage.key", "a prefix of this key is already an object", actual=key) from None
        if dest.is_dir():
            tmp.unlink(missing_ok=True)
            raise InputError("storage.key", "object key names a prefix that holds other objects", actual=key)

    def _commit(self, tmp: pathlib.Path, key: str) -> None:
        dest = self._path(key)
        self._make_parent(dest, key, tmp)
        os.replace(tmp, dest)

    def put_bytes(self, key: str, data: bytes, content_type: str = "") -> ObjectRef:
        validate_key(key)
        ctype = content_type or guess_content_type(key)
        tmp, sha, size = self._write_temp(self._bytes_writer(bytes(data)), ctype)
        self._commit(tmp, key)
        return self._ref(key, sha, size, ctype)

    def put_file(self, key: str, path: str | pathlib.Path, content_type: str = "") -> ObjectRef:
        validate_key(key)
        src = pathlib.Path(path)
        if not src.is_file():
            raise NotFoundError(
                f"storage.source_missing: no file at {src}", rule="storage.source_missing", path=str(src)
            )
        ctype = content_type or guess_content_type(key)
        tmp, sha, size = self._write_temp(self._file_writer(src), ctype)
        self._commit(tmp, key)
        return self._ref(key, sha, size, ctype)

    def put_if_absent(self, key: str, data: bytes, content_type: str = "") -> bool:
        """Create ``key`` only if nothing is there; True when this call created it."""
        validate_key(key)
        dest = self._path(key)
        if dest.exists():
            return False
        tmp, _, _ = self._write_temp(self._bytes_writer(bytes(data)), content_type or guess_content_type(key))
        try:
            self._make_parent(dest, key, tmp)
            # link() refuses an existing target atomically, and the linked file is already complete.
            os.link(tmp, dest)
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _key_lock(self, key: str) -> Iterator[None]:
        """An exclusive advisory lock per key, shared by every process using this directory."""
        lock_dir = self._tmp / "locks"
        lock_dir.mkdir(exist_ok=True)
        lock_path = lock_dir / (hashlib.sha256(key.encode()).hexdigest()[:40] + ".lock")
        with open(lock_path, "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def get_with_version(self, key_or_ref: KeyOrRef) -> tuple[bytes, str]:
        """Bytes and their sha256 (the version token of the local store)."""
        data = self.get_bytes(key_or_ref)
        return data, hashlib.sha256(data).hexdigest()

    def put_if_match(self, key: str, data: bytes, version: str, content_type: str = "") -> bool:
        """Replace ``key`` only if its content still hashes to ``version``; True when replaced.

        Atomic against other ``put_if_match`` callers (a per-key file lock); plain ``put_bytes`` and
        ``delete`` do not take the lock, so shared records should only be changed through this method.
        """
        if not version:
            raise InputError(
                "storage.version", "put_if_match needs the version from get_with_version", actual=version
            )
        validate_key(key)
        dest = self._path(key)
        tmp, _, _ = self._write_temp(self._bytes_writer(bytes(data)), content_type or guess_content_type(key))
        try:
            with self._key_lock(key):
                try:
                    current, _ = sha256_file(dest)
                except (FileNotFoundError, IsADirectoryError):
                    return False
                if current != version:
                    return False
                os.replace(tmp, dest)
                return True
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
        """Size, plus the sha256 and content type recorded at write time (extended attributes).

        Where the filesystem keeps no xattrs (or the file was not written by this store) the sha256
        is empty and the content type is guessed from the key.
        """
        key, path = self._existing(key_or_ref)
        sha, ctype = _get_meta(path)
        return self._ref(
            key, sha, path.stat().st_size, ctype or guess_content_type(key) or DEFAULT_CONTENT_TYPE
        )

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


def _set_meta(fd: int, sha256_hex: str, content_type: str) -> None:
    with contextlib.suppress(OSError, AttributeError):
        os.setxattr(fd, XATTR_SHA256, sha256_hex.encode())
        if content_type:
            os.setxattr(fd, XATTR_CONTENT_TYPE, content_type.encode())


def _get_meta(path: pathlib.Path) -> tuple[str, str]:
    values = []
    for name in (XATTR_SHA256, XATTR_CONTENT_TYPE):
        try:
            values.append(os.getxattr(path, name).decode())
        except (OSError, AttributeError):
            values.append("")
    return values[0], values[1]
