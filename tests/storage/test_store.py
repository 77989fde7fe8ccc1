"""Behaviour shared by LocalStore and S3Store (each test runs on both)."""

from __future__ import annotations

import hashlib
import os
import pathlib
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from motion.errors import FailedPreconditionError, InputError, NotFoundError, TooLargeError
from motion.storage import ObjectStore
from motion.v1.common_pb2 import ObjectRef, Progress

MiB = 1024 * 1024


def _big_file(path: pathlib.Path, size_bytes: int, fill: bytes) -> bytes:
    data = (fill * (size_bytes // len(fill) + 1))[:size_bytes]
    path.write_bytes(data)
    return data


def test_round_trip_returns_same_bytes_and_ref_with_put_bytes(store: ObjectStore) -> None:
    data = os.urandom(4096)
    ref = store.put_bytes("jobs/a/input.bin", data, content_type="application/x-test")
    assert ref.key == "jobs/a/input.bin"
    assert ref.bucket == store.bucket
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert ref.size_bytes == len(data)
    assert ref.content_type == "application/x-test"
    assert store.get_bytes("jobs/a/input.bin") == data
    assert store.get_bytes(ref) == data
    assert store.exists(ref) and not store.exists("jobs/a/other.bin")
    assert store.stat(ref) == ref  # size, sha256 and content type are kept with the object


def test_overwrite_replaces_content_with_second_put(store: ObjectStore) -> None:
    store.put_bytes("k.txt", b"first")
    store.put_bytes("k.txt", b"second version")
    assert store.get_bytes("k.txt") == b"second version"
    assert store.stat("k.txt").size_bytes == len(b"second version")


def test_put_file_and_get_file_round_trip_with_20mb_file(store: ObjectStore, tmp_path: pathlib.Path) -> None:
    src = tmp_path / "big.bin"
    data = _big_file(src, 20 * MiB, os.urandom(4093))
    ref = store.put_file("videos/big.bin", src, content_type="video/mp4")
    assert ref.size_bytes == 20 * MiB
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    out = store.get_file(ref, tmp_path / "out" / "copy.bin")
    assert out.read_bytes() == data
    # No temp files are left beside the download.
    assert sorted(p.name for p in out.parent.iterdir()) == ["copy.bin"]


def test_get_raises_not_found_with_missing_key(store: ObjectStore, tmp_path: pathlib.Path) -> None:
    with pytest.raises(NotFoundError) as exc:
        store.get_bytes("missing/key.bin")
    assert exc.value.details["rule"] == "storage.not_found"
    with pytest.raises(NotFoundError):
        store.get_file("missing/key.bin", tmp_path / "x.bin")
    with pytest.raises(NotFoundError):
        store.stat("missing/key.bin")


def test_key_validation_rejects_escape_with_dotdot_and_absolute_keys(store: ObjectStore) -> None:
    for bad in ("../etc/passwd", "/abs/key", "a//b", "a/./b", "", "a\\b", ".motion-tmp/x"):
        with pytest.raises(InputError) as exc:
            store.put_bytes(bad, b"x")
        assert exc.value.rule == "storage.key", bad


def test_list_returns_sorted_keys_with_prefix(store: ObjectStore) -> None:
    for key in ("jobs/b.json", "jobs/a.json", "jobs/sub/c.json", "rigs/r.pb", "jobsx/d.json"):
        store.put_bytes(key, b"{}")
    assert list(store.list("jobs/")) == ["jobs/a.json", "jobs/b.json", "jobs/sub/c.json"]
    assert list(store.list("jobs")) == ["jobs/a.json", "jobs/b.json", "jobs/sub/c.json", "jobsx/d.json"]
    assert list(store.list("jobs/s")) == ["jobs/sub/c.json"]
    assert list(store.list("nothing/")) == []
    assert len(list(store.list())) == 5


def test_delete_removes_object_and_tolerates_missing_with_repeat(store: ObjectStore) -> None:
    store.put_bytes("tmp/x.bin", b"1")
    store.delete("tmp/x.bin")
    assert not store.exists("tmp/x.bin")
    assert list(store.list("tmp/")) == []
    store.delete("tmp/x.bin")  # idempotent, as S3


def test_put_if_absent_creates_once_with_existing_key(store: ObjectStore) -> None:
    assert store.put_if_absent("leases/job-1", b"owner-a") is True
    assert store.put_if_absent("leases/job-1", b"owner-b") is False
    assert store.get_bytes("leases/job-1") == b"owner-a"
    store.delete("leases/job-1")
    assert store.put_if_absent("leases/job-1", b"owner-c") is True
    assert store.get_bytes("leases/job-1") == b"owner-c"


def test_put_if_absent_has_single_winner_with_concurrent_creators(store: ObjectStore) -> None:
    contenders = 8
    barrier = threading.Barrier(contenders)

    def create(i: int) -> bool:
        barrier.wait()
        return store.put_if_absent("requests/req-42", f"job-{i}".encode())

    with ThreadPoolExecutor(contenders) as pool:
        results = list(pool.map(create, range(contenders)))
    assert results.count(True) == 1, results
    winner = results.index(True)
    assert store.get_bytes("requests/req-42") == f"job-{winner}".encode()


def test_content_addressed_key_is_derived_from_sha_with_repeat_put(store: ObjectStore) -> None:
    data = b"skeleton bytes " * 100
    sha = hashlib.sha256(data).hexdigest()
    ref = store.put_content_addressed(
        data, prefix="skeletons", ext=".pb", content_type="application/x-protobuf"
    )
    assert ref.key == f"skeletons/{sha[:2]}/{sha}.pb"
    assert ref.sha256 == sha and ref.size_bytes == len(data)
    again = store.put_content_addressed(
        data, prefix="skeletons", ext="pb", content_type="application/x-protobuf"
    )
    assert again == ref
    assert list(store.list("skeletons/")) == [ref.key]
    assert store.get_bytes(ref) == data


def test_get_raises_checksum_error_with_wrong_sha_in_ref(store: ObjectStore, tmp_path: pathlib.Path) -> None:
    ref = store.put_bytes("x.bin", b"payload")
    bad = ObjectRef()
    bad.CopyFrom(ref)
    bad.sha256 = hashlib.sha256(b"other").hexdigest()
    with pytest.raises(FailedPreconditionError) as exc:
        store.get_bytes(bad)
    assert exc.value.details["rule"] == "storage.checksum"
    with pytest.raises(FailedPreconditionError):
        store.get_file(bad, tmp_path / "x.bin")


def test_get_raises_too_large_with_max_bytes(store: ObjectStore) -> None:
    store.put_bytes("upload.mp4", b"x" * 1000)
    assert len(store.get_bytes("upload.mp4", max_bytes=1000)) == 1000
    with pytest.raises(TooLargeError) as exc:
        store.get_bytes("upload.mp4", max_bytes=999)
    assert exc.value.rule == "storage.max_bytes" and exc.value.limit == 999 and exc.value.actual == 1000


def test_json_and_proto_helpers_round_trip_with_job_record(store: ObjectStore) -> None:
    record = {"id": "job-1", "state": "RUNNING", "progress": [1, 10]}
    ref = store.put_json("jobs/job-1.json", record)
    assert ref.content_type == "application/json"
    assert store.get_json("jobs/job-1.json") == record
    msg = Progress(stage="render", done=3, total=9, message="frames")
    store.put_proto("progress/job-1.pb", msg)
    assert store.get_proto("progress/job-1.pb", Progress) == msg
    store.put_bytes("jobs/broken.json", b"{not json")
    with pytest.raises(FailedPreconditionError):
        store.get_json("jobs/broken.json")


def test_presigned_url_downloads_object_with_urllib(store: ObjectStore) -> None:
    data = os.urandom(50_000)
    store.put_bytes("outputs/job-1.mp4", data, content_type="video/mp4")
    url = store.presign_get("outputs/job-1.mp4", expires_s=300)
    assert url.startswith(("http://127.0.0.1:", "file:///"))
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.read() == data
    with pytest.raises(InputError) as exc:
        store.presign_get("outputs/job-1.mp4", expires_s=0)
    assert exc.value.rule == "storage.presign_expires_s"


def test_reader_sees_old_or_whole_new_object_with_concurrent_overwrite(
    store: ObjectStore, tmp_path: pathlib.Path
) -> None:
    size = 12 * MiB
    old = _big_file(tmp_path / "old.bin", size, b"A")
    new_path = tmp_path / "new.bin"
    new = _big_file(new_path, size, b"B")
    store.put_bytes("segments/seg-0.bin", old)
    seen: list[str] = []
    done = threading.Event()

    def read_loop() -> None:
        while not done.is_set():
            data = store.get_bytes("segments/seg-0.bin")
            seen.append("old" if data == old else "new" if data == new else f"partial:{len(data)}")

    reader = threading.Thread(target=read_loop)
    reader.start()
    try:
        store.put_file("segments/seg-0.bin", new_path)
    finally:
        done.set()
        reader.join(timeout=60)
    assert seen, "the reader never ran"
    assert all(s in ("old", "new") for s in seen), [s for s in seen if s not in ("old", "new")][:3]
    assert store.get_bytes("segments/seg-0.bin") == new


def test_reader_sees_nothing_or_whole_object_with_concurrent_create(
    store: ObjectStore, tmp_path: pathlib.Path
) -> None:
    src = tmp_path / "new.bin"
    data = _big_file(src, 12 * MiB, os.urandom(997))
    outcomes: list[str] = []
    done = threading.Event()

    def read_loop() -> None:
        while not done.is_set():
            try:
                got = store.get_bytes("renders/out.mp4")
            except NotFoundError:
                outcomes.append("absent")
                continue
            outcomes.append("whole" if got == data else f"partial:{len(got)}")

    reader = threading.Thread(target=read_loop)
    reader.start()
    try:
        store.put_file("renders/out.mp4", src)
    finally:
        done.set()
        reader.join(timeout=60)
    assert outcomes, "the reader never ran"
    assert set(outcomes) <= {"absent", "whole"}, outcomes[:5]


def test_put_if_match_replaces_only_current_version_with_stale_token(store: ObjectStore) -> None:
    store.put_bytes("jobs/j1.json", b'{"state": "QUEUED"}')
    data, version = store.get_with_version("jobs/j1.json")
    assert data == b'{"state": "QUEUED"}' and version
    assert store.put_if_match("jobs/j1.json", b'{"state": "RUNNING"}', version) is True
    # The token read before the update is stale now.
    assert store.put_if_match("jobs/j1.json", b'{"state": "FAILED"}', version) is False
    data, newer = store.get_with_version("jobs/j1.json")
    assert data == b'{"state": "RUNNING"}' and newer != version
    store.delete("jobs/j1.json")
    assert store.put_if_match("jobs/j1.json", b"{}", newer) is False
    assert not store.exists("jobs/j1.json")
    with pytest.raises(InputError) as exc:
        store.put_if_match("jobs/j1.json", b"{}", "")
    assert exc.value.rule == "storage.version"


def test_put_if_match_has_single_winner_with_concurrent_lease_takeover(store: ObjectStore) -> None:
    store.put_bytes("leases/job-9", b"expired-owner")
    _, version = store.get_with_version("leases/job-9")
    contenders = 6
    barrier = threading.Barrier(contenders)

    def take_over(i: int) -> bool:
        barrier.wait()
        return store.put_if_match("leases/job-9", f"gateway-{i}".encode(), version)

    with ThreadPoolExecutor(contenders) as pool:
        results = list(pool.map(take_over, range(contenders)))
    assert results.count(True) == 1, results
    assert store.get_bytes("leases/job-9") == f"gateway-{results.index(True)}".encode()
