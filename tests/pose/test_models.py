"""`motionctl models fetch`: pip download of the pinned wheel, checksums, idempotency, clear errors."""

from __future__ import annotations

import json
import pathlib
import zipfile

import pytest

from motion.cli import main as motionctl
from motion.errors import ModelError
from services.pose import models


@pytest.fixture(scope="module")
def fetched_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    target = tmp_path_factory.mktemp("models")
    try:
        res = models.fetch_models(target)
    except ModelError as exc:
        pytest.skip(f"cannot download the mediapipe wheel here (offline?): {exc.message}")
    assert res.downloaded
    return target


def test_fetch_installs_verified_files_and_manifest_with_pip_download(fetched_dir: pathlib.Path) -> None:
    files = models.ensure_models(fetched_dir)
    assert set(files) == set(models.MODEL_FILES)
    manifest = json.loads((fetched_dir / models.MANIFEST_NAME).read_text())
    assert manifest["source_sha256"] == models.WHEEL_SHA256
    assert files["handedness"].read_text().split() == ["Left", "Right"]
    assert files["pose_landmark_full"].stat().st_size > 1_000_000


def test_fetch_is_a_verifying_no_op_with_models_present(fetched_dir: pathlib.Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in fetched_dir.iterdir()}
    assert motionctl(["models", "fetch", "--model-dir", str(fetched_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["downloaded"] is False
    assert {p.name: p.stat().st_mtime_ns for p in fetched_dir.iterdir()} == before


def test_ensure_models_raises_checksum_error_with_corrupted_file(fetched_dir: pathlib.Path,
                                                                 tmp_path: pathlib.Path) -> None:
    copy = tmp_path / "m"
    copy.mkdir()
    for p in fetched_dir.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    target = copy / "face_landmark.tflite"
    data = bytearray(target.read_bytes())
    data[100] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ModelError) as err:
        models.ensure_models(copy)
    assert "sha256" in err.value.message and "motionctl models fetch" in err.value.message
    assert err.value.details["actual"] != err.value.details["limit"]
    # A fetch repairs it (the corrupt directory is not taken for an installed one).
    res = models.fetch_models(copy, wheel=_cached_wheel_or_skip(tmp_path))
    assert res.downloaded and models.ensure_models(copy)


def _cached_wheel_or_skip(tmp_path: pathlib.Path) -> pathlib.Path:
    try:
        return models._download_wheel(tmp_path, timeout_s=300)
    except ModelError as exc:
        pytest.skip(f"cannot download the wheel: {exc.message}")


def test_ensure_models_names_the_fix_with_empty_dir(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ModelError, match="motionctl models fetch"):
        models.ensure_models(tmp_path)


def test_install_rejects_wheel_with_wrong_sha256(tmp_path: pathlib.Path) -> None:
    fake = tmp_path / models.WHEEL_NAME
    with zipfile.ZipFile(fake, "w") as zf:
        for member in models.MODEL_FILES.values():
            zf.writestr(member, b"not a model")
    with pytest.raises(ModelError, match="expected the pinned"):
        models.install_from_wheel(fake, tmp_path / "out")
    assert not (tmp_path / "out" / models.MANIFEST_NAME).exists()


def test_fetch_reports_clear_error_with_no_package_index(tmp_path: pathlib.Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulates being offline: pip may use no index and finds no local wheel.
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    with pytest.raises(ModelError, match="could not download mediapipe==0.10.21"):
        models.fetch_models(tmp_path / "models")
    assert not (tmp_path / "models" / models.MANIFEST_NAME).exists()
