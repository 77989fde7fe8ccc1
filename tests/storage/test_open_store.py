"""open_store URL parsing and the local store's on-disk behaviour."""

from __future__ import annotations

import pathlib

import pytest

from motion.errors import InputError
from motion.settings import Settings
from motion.storage import LocalStore, open_store


def test_open_store_returns_local_store_with_file_url(tmp_path: pathlib.Path) -> None:
    store = open_store((tmp_path / "s").as_uri())
    assert isinstance(store, LocalStore)
    assert store.root == tmp_path / "s"
    assert store.url == (tmp_path / "s").as_uri()


def test_open_store_uses_cache_dir_with_default_settings(tmp_path: pathlib.Path) -> None:
    store = open_store(None, Settings(cache_dir=tmp_path))
    assert isinstance(store, LocalStore) and store.root == tmp_path / "store"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://host/x",
        "relative/dir",
        "file://otherhost/x",
        "s3://",
        "s3://bucket/with/path",
        "s3://Bad_Bucket",
    ],
)
def test_open_store_raises_input_error_with_bad_url(url: str) -> None:
    with pytest.raises(InputError) as exc:
        open_store(url, Settings(s3_endpoint="127.0.0.1:1"))
    assert exc.value.rule == "storage.url"


def test_local_store_leaves_no_temp_files_with_failed_write(tmp_path: pathlib.Path) -> None:
    store = LocalStore(tmp_path)
    store.put_bytes("a/b", b"1")
    with pytest.raises(InputError):
        store.put_bytes("a", b"2")  # "a" is a prefix holding "a/b"
    with pytest.raises(InputError):
        store.put_bytes("a/b/c", b"3")  # "a/b" is an object, it cannot hold "c"
    with pytest.raises(InputError):
        store.put_if_absent("a/b/c", b"3")
    assert list((tmp_path / ".motion-tmp").iterdir()) == []
    assert list(store.list()) == ["a/b"]


def test_local_presign_returns_file_url_with_existing_object(tmp_path: pathlib.Path) -> None:
    store = LocalStore(tmp_path)
    store.put_bytes("out/v.mp4", b"v")
    assert store.presign_get("out/v.mp4", 60) == (tmp_path / "out" / "v.mp4").as_uri()
