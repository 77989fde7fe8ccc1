"""Parity of the torch runtime (CPU, float32) with LiteRT on every MediaPipe graph, on real image crops.

Inputs: square crops (whole frame and upper body) of two real videos and one character image from
../shared/data, resized to each model's input and normalised as the pipeline does. Tolerances, per output:
- landmark / box regressions in input pixels: max |torch - litert| <= 1e-3 * input side (0.26 px at 256);
- everything else (scores, logits, flags, heatmaps, masks, world metres): max abs diff <= 1e-3 * max(1, max |litert|).
Both runtimes compute in float32 from the same (fp16-stored) weights; they differ only in summation order.
"""

from __future__ import annotations

import pathlib

import cv2
import numpy as np
import pytest

from motion.media import read_image
from tests.pose.conftest import read_frames

pytest.importorskip("torch")
pytest.importorskip("tflite")

# model -> (input range, outputs that are landmark/box coordinates in input pixels)
MODELS: dict[str, tuple[tuple[float, float], set[str]]] = {
    "pose_detection": ((-1.0, 1.0), {"Identity"}),
    "pose_landmark_full": ((0.0, 1.0), {"Identity"}),
    "palm_detection_full": ((0.0, 1.0), {"Identity"}),
    "hand_landmark_full": ((0.0, 1.0), {"Identity"}),
    "hand_recrop": ((0.0, 1.0), {"output_crop"}),
    "face_detection_short_range": ((-1.0, 1.0), {"regressors"}),
    "face_landmark": ((0.0, 1.0), {"conv2d_21"}),
    "selfie_segmentation": ((0.0, 1.0), set()),
}
PIXEL_TOLERANCE = 1e-3  # x input side
RELATIVE_TOLERANCE = 1e-3  # x max(1, max |reference|)


def _square(img: np.ndarray, top: float = 0.0, size: float = 1.0) -> np.ndarray:
    """A centred square crop of `size` x the short side, starting `top` x the height down."""
    h, w = img.shape[:2]
    side = int(min(h, w) * size)
    y0 = min(int(h * top), h - side)
    x0 = (w - side) // 2
    return img[y0:y0 + side, x0:x0 + side]


@pytest.fixture(scope="module")
def real_crops(shared_data: pathlib.Path) -> list[np.ndarray]:
    crops: list[np.ndarray] = []
    for name in ("musepose__ubc_91BjuE6irxS.mp4", "animate_x__dance_1.mp4"):
        frames, _ = read_frames(shared_data / "videos" / name, 1)
        crops += [_square(frames[0]), _square(frames[0], 0.0, 0.5)]  # whole body, head and shoulders
    image = read_image(shared_data / "characters" / "musepose__ref.png")
    crops.append(_square(image[:, :, :3]))
    return crops


@pytest.fixture(scope="module")
def runtimes() -> tuple[object, object]:
    from services.pose.runtime import LiteRTRuntime
    from services.pose.runtime_torch import TorchOptions, TorchRuntime

    return LiteRTRuntime(num_threads=2), TorchRuntime(TorchOptions(device="cpu"))


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_torch_outputs_match_litert_with_real_crops(
    model_name: str, pose_models: dict[str, pathlib.Path], real_crops: list[np.ndarray],
    runtimes: tuple[object, object],
) -> None:
    litert, torch_rt = runtimes
    ref_model = litert.load(pose_models[model_name])  # type: ignore[attr-defined]
    our_model = torch_rt.load(pose_models[model_name])  # type: ignore[attr-defined]
    assert our_model.output_names == ref_model.output_names
    assert our_model.input_shape == ref_model.input_shape
    (lo, hi), pixel_outputs = MODELS[model_name]
    _, h, w, _ = ref_model.input_shape
    batch = np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_AREA) for c in real_crops])
    x = batch.astype(np.float32) * ((hi - lo) / 255.0) + lo
    ref = ref_model.run(x)
    ours = our_model.run(x)  # one batched call (N = 5)
    for name, r, o in zip(ref_model.output_names, ref, ours, strict=True):
        assert o.shape == r.shape, name
        diff = float(np.abs(o - r).max())
        if name in pixel_outputs:
            limit = PIXEL_TOLERANCE * max(h, w)
        else:
            limit = RELATIVE_TOLERANCE * max(1.0, float(np.abs(r).max()))
        assert diff <= limit, f"{model_name}/{name}: max abs diff {diff:.3g} > {limit:.3g}"
