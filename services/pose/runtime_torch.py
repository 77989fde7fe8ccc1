"""The `torch` pose runtime: the .tflite graphs imported into PyTorch (`services.pose.tflite_import`).

Same interface as the LiteRT runtime (`services.pose.runtime`): `load(path)` returns a model whose
`run(batch)` takes NHWC float32 and returns the outputs sorted by name, batch first. Runs on CUDA when
available (else CPU), float32 by default; float16 is an option on CUDA. Unlike LiteRT, a batch runs as one
call, which is where a GPU pays off.
"""

from __future__ import annotations

import pathlib
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from motion.errors import FailedPreconditionError

try:
    import torch
except ImportError as exc:
    # get_runtime turns this into "runtime 'torch' is not available here".
    raise ImportError("the torch pose runtime needs torch (pip install torch==2.13.0)") from exc

from services.pose.runtime import _natural_key, batch_input
from services.pose.tflite_import import TFLiteModule, import_tflite

DEFAULT_MAX_BATCH = 64  # frames per forward pass: bounds activation memory (pose_landmark ~40 MB/frame fp32)


@dataclass
class TorchOptions:
    device: str = ""  # "" picks cuda when available, else cpu
    half: bool = False  # float16 weights and activations (CUDA only)
    max_batch: int = DEFAULT_MAX_BATCH
    num_threads: int = 2  # intra-op CPU threads

    def resolve_device(self) -> torch.device:
        if not self.device:
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        dev = torch.device(self.device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise FailedPreconditionError("torch runtime: device 'cuda' requested but no CUDA device is visible",
                                          limit="cuda", actual="cpu")
        return dev


class TorchModel:
    """One imported graph on one device. Thread-safe: forward passes hold no state."""

    def __init__(self, module: TFLiteModule, device: torch.device, half: bool, max_batch: int) -> None:
        self.name = module.graph_name
        self.input_shape: tuple[int, ...] = tuple(module.input_shape)
        order = sorted(range(len(module.output_names)), key=lambda k: _natural_key(module.output_names[k]))
        self.output_names = [module.output_names[k] for k in order]
        self._order = order
        self.device = device
        self.dtype = torch.float16 if half else torch.float32
        self.max_batch = max(1, max_batch)
        self.module = module.to(device=device, dtype=self.dtype)

    def run_tensor(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Forward on a device tensor (N, H, W, C); outputs in `output_names` order, on the device."""
        with torch.inference_mode():
            outs = self.module(x.to(device=self.device, dtype=self.dtype))
        return [outs[k] for k in self._order]

    def run(self, inputs: np.ndarray) -> list[np.ndarray]:
        x = batch_input(inputs, self.name, self.input_shape)
        chunks: list[list[np.ndarray]] = []
        for start in range(0, len(x), self.max_batch):
            outs = self.run_tensor(torch.from_numpy(x[start:start + self.max_batch]))
            chunks.append([o.float().cpu().numpy() for o in outs])
        if len(chunks) == 1:
            return chunks[0]
        return [np.concatenate([c[k] for c in chunks]) for k in range(len(self.output_names))]


class TorchRuntime:
    name = "torch"

    def __init__(self, options: TorchOptions | None = None) -> None:
        self.options = options or TorchOptions()
        self.device = self.options.resolve_device()
        if self.options.half and self.device.type != "cuda":
            raise FailedPreconditionError("torch runtime: float16 needs a CUDA device", limit="cuda",
                                          actual=self.device.type)
        if self.device.type == "cpu":
            if self.options.num_threads > 0:
                torch.set_num_threads(self.options.num_threads)
            # Activations of these graphs underflow to denormals, which are ~10x slower on x86; XNNPACK
            # flushes them too, so results stay within the parity tolerance.
            torch.set_flush_denormal(True)

    def load(self, model_path: pathlib.Path, unused_outputs: Collection[str] = ()) -> TorchModel:
        """`unused_outputs` is accepted for the Runtime interface; every output is still computed."""
        del unused_outputs
        module = import_tflite(model_path)
        return TorchModel(module, self.device, self.options.half, self.options.max_batch)


def make_runtime(num_threads: int = 2, device: str = "", half: bool = False) -> TorchRuntime:
    """Entry point used by `services.pose.runtime.get_runtime("torch")`."""
    return TorchRuntime(TorchOptions(device=device, half=half, num_threads=num_threads))
