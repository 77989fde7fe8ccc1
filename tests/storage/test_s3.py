"""S3-only behaviour against a real `weed mini`: multipart, credentials, presigned URL expiry."""

from __future__ import annotations

import hashlib
import os
import pathlib
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from motion.errors import NotFoundError, UnauthenticatedError, UnavailableError
from motion.storage import S3Store, open_store
from tests.conftest import S3Server

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def test_put_file_uploads_multipart_and_stays_atomic_with_20mb_file(
    s3_server: S3Server, tmp_path: pathlib.Path
) -> None:
    src = tmp_path / "video.mp4"
    data = os.urandom(MiB) * 20
    src.write_bytes(data)
    with s3_server.store("multipart-20mb", part_size_bytes=5 * MiB) as store:
        outcomes: list[str] = []
        done = threading.Event()

        def read_loop() -> None:
            while not done.is_set():
                try:
                    got = store.get_bytes("uploads/video.mp4")
                except NotFoundError:
                    outcomes.append("absent")
                    continue
                outcomes.append("whole" if got == data else f"partial:{len(got)}")

        reader = threading.Thread(target=read_loop)
        reader.start()
        started = time.monotonic()
        try:
            ref = store.put_file("uploads/video.mp4", src, content_type="video/mp4")
        finally:
            done.set()
            reader.join(timeout=60)
        elapsed_s = time.monotonic() - started
        info = store.client.stat_object(store.bucket, "uploads/video.mp4")
        # A multipart object's ETag is "<md5 of part md5s>-<part count>": 20 MiB / 5 MiB = 4 parts.
        assert info.etag is not None and info.etag.endswith("-4"), info.etag
        assert ref.sha256 == hashlib.sha256(data).hexdigest() and ref.size_bytes == 20 * MiB
        assert store.stat("uploads/video.mp4").sha256 == ref.sha256
        assert store.stat("uploads/video.mp4").content_type == "video/mp4"
        assert "absent" in outcomes, f"reader did not poll during the {elapsed_s:.2f} s upload"
        assert set(outcomes) <= {"absent", "whole"}, outcomes[:5]
        assert store.get_bytes(ref) == data


def test_request_rejected_as_unauthenticated_with_wrong_secret(s3_server: S3Server) -> None:
    with s3_server.store("creds-check") as good:
        good.put_bytes("secret.txt", b"private")
    wrong = S3Store(
        "creds-check",
        s3_server.endpoint,
        s3_server.access_key,
        s3_server.secret_key + "x",
        create_bucket=False,
    )
    with pytest.raises(UnauthenticatedError) as exc:
        wrong.get_bytes("secret.txt")
    assert exc.value.details["rule"] == "storage.credentials"
    with pytest.raises(UnauthenticatedError):
        wrong.put_bytes("evil.txt", b"x")
    with pytest.raises(UnauthenticatedError):
        S3Store("creds-other", s3_server.endpoint, "nobody", "nothing")  # bucket auto-create is refused too
    assert not good.exists("evil.txt")


def test_unsigned_get_rejected_with_anonymous_urllib(s3_server: S3Server) -> None:
    with s3_server.store("anon-check") as store:
        store.put_bytes("a.txt", b"private")
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(f"{s3_server.url}/anon-check/a.txt", timeout=10)
        assert exc.value.code == 403


def test_presigned_url_rejected_with_expiry_passed_or_tampered_signature(s3_server: S3Server) -> None:
    with s3_server.store("presign-check") as store:
        store.put_bytes("out.mp4", b"video")
        url = store.presign_get("out.mp4", expires_s=1)
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.read() == b"video"
        tampered = url.replace("out.mp4", "out.mp4x")
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(tampered, timeout=10)
        assert exc.value.code == 403
        time.sleep(2.2)
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(url, timeout=10)
        assert exc.value.code == 403


def test_open_store_builds_s3_store_with_settings(s3_server: S3Server) -> None:
    settings = s3_server.settings("opened-by-url")
    with open_store("s3://opened-by-url", settings) as store:
        assert isinstance(store, S3Store)
        assert store.url == "s3://opened-by-url"
        store.put_bytes("k", b"v")
    with open_store(None, settings) as again:  # falls back to settings.store_url
        assert again.get_bytes("k") == b"v"


def test_operations_raise_unavailable_with_closed_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(UnavailableError) as exc:
        S3Store("nobody-home", f"127.0.0.1:{port}", "a", "b", connect_timeout_s=1.0)
    assert exc.value.details["rule"] == "storage.unavailable"
