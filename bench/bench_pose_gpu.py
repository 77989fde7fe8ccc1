"""Body-landmark model throughput (frames/s) by runtime: torch batched (CUDA when available, else CPU; fp32,
and fp16 on CUDA), TensorRT when a GPU and tensorrt are present, and LiteRT one frame at a time as the
baseline. Inputs are real 1080p frames of ../shared/data resized to the model's 256 x 256 input.

Run: `python -m bench --only pose_gpu [--pose-gpu-frames 64] [--pose-gpu-batch 16]`.
"""

from __future__ import annotations

import argparse
import pathlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from motion.errors import MotionError

VIDEO = "musepose__dance.mp4"
MODEL = "pose_landmark_full"


def _frames(data: pathlib.Path, n: int, size_px: int) -> np.ndarray:
    import av
    import cv2

    out: list[np.ndarray] = []
    with av.open(str(data / "videos" / VIDEO)) as c:
        for fr in c.decode(c.streams.video[0]):
            rgb = fr.to_ndarray(format="rgb24")
            out.append(cv2.resize(rgb, (size_px, size_px), interpolation=cv2.INTER_AREA))
            if len(out) >= n:
                break
    while len(out) < n:  # a short video: cycle its frames
        out.append(out[len(out) % max(1, len(out))])
    return np.stack(out).astype(np.float32) / 255.0


def _fps(run: Callable[[np.ndarray], object], x: np.ndarray, batch: int, sync: Callable[[], None]) -> float:
    run(x[:batch])  # warm-up: kernel selection, weight packing, CUDA context
    sync()
    t0 = time.perf_counter()
    for start in range(0, len(x), batch):
        run(x[start:start + batch])
    sync()
    return round(len(x) / (time.perf_counter() - t0), 2)


def run(args: argparse.Namespace | None = None) -> dict[str, Any]:
    from services.pose.models import ensure_models

    quick = bool(getattr(args, "quick", False))
    data = pathlib.Path(getattr(args, "data", None) or pathlib.Path(__file__).resolve().parents[2] / "shared" / "data")
    model_path = ensure_models()[MODEL]
    out: dict[str, Any] = {"model": MODEL}
    try:
        import torch
    except ImportError:
        return {**out, "torch": "unavailable: torch is not installed"}
    from services.pose.runtime import LiteRTRuntime
    from services.pose.runtime_torch import TorchOptions, TorchRuntime

    cuda = torch.cuda.is_available()
    n = int(getattr(args, "pose_gpu_frames", 0) or (256 if cuda else 16 if quick else 32))
    batch = int(getattr(args, "pose_gpu_batch", 0) or (32 if cuda else 8))
    x = _frames(data, n, 256)
    out.update(frames=n, batch=batch,
               device=torch.cuda.get_device_name() if cuda else f"cpu ({torch.get_num_threads()} threads)")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    torch_rt = TorchRuntime(TorchOptions())
    model = torch_rt.load(model_path)
    out["torch_fp32_fps"] = _fps(model.run, x, batch, sync)
    out["torch_fp32_batch1_fps"] = _fps(model.run, x[: max(4, n // 4)], 1, sync)
    if cuda:
        half = TorchRuntime(TorchOptions(half=True)).load(model_path)
        out["torch_fp16_fps"] = _fps(half.run, x, batch, sync)
        ref = model.run(x[:batch])[0]
        out["torch_fp16_max_landmark_diff_px"] = round(float(np.abs(half.run(x[:batch])[0] - ref).max()), 4)
    try:
        from services.pose.runtime_tensorrt import TensorRTOptions, TensorRTRuntime

        trt_rt = TensorRTRuntime(TensorRTOptions(max_batch=max(batch, 1), opt_batch=batch))
        t0 = time.perf_counter()
        trt_model = trt_rt.load(model_path)
        out["tensorrt_load_s"] = round(time.perf_counter() - t0, 2)  # includes the build on first use
        out["tensorrt_fps"] = _fps(trt_model.run, x, batch, sync)
    except MotionError as exc:
        out["tensorrt"] = f"unavailable: {exc.message}"
    lite = LiteRTRuntime(num_threads=2).load(model_path)
    out["litert_cpu_fps"] = _fps(lite.run, x[: max(4, n // 2)], 1, lambda: None)
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=None)
    p.add_argument("--pose-gpu-frames", type=int, default=0)
    p.add_argument("--pose-gpu-batch", type=int, default=0)
    p.add_argument("--quick", action="store_true")
    print(run(p.parse_args()))
