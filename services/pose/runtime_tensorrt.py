"""The `tensorrt` pose runtime: torch-imported graphs exported to ONNX (dynamic batch) and built into TensorRT
engines, cached per GPU under the model directory.

The engine cache key is sha256(GPU name, TensorRT version, model file sha256, precision, batch range): an
engine only runs on the GPU model and TensorRT version that built it, so changing either builds a new one.
Importing this module needs neither tensorrt nor CUDA; selecting the runtime without them raises
`ModelError` (FAILED_PRECONDITION) saying what is missing.
"""

from __future__ import annotations

import hashlib
import logging
import pathlib
import tempfile
import threading
import warnings
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np

from motion.errors import ModelError
from motion.storage.atomic import atomic_write_bytes
from services.pose.runtime import batch_input

log = logging.getLogger(__name__)

ONNX_OPSET = 17
ENGINE_DIR = "tensorrt"


@dataclass
class TensorRTOptions:
    half: bool = True  # FP16 kernels allowed (TensorRT keeps FP32 where FP16 would lose accuracy)
    max_batch: int = 64  # the optimisation profile covers batches 1..max_batch
    opt_batch: int = 16  # the batch size TensorRT tunes kernels for
    workspace_bytes: int = 1 << 30
    cache_dir: pathlib.Path | None = None  # default: <model dir>/tensorrt


def export_onnx(module: Any, input_shape: tuple[int, ...], output_names: list[str]) -> bytes:
    """ONNX bytes of a `TFLiteModule` with a dynamic batch axis (NHWC input named "input")."""
    import torch

    example = torch.zeros((2, *input_shape[1:]), dtype=torch.float32)
    with tempfile.TemporaryDirectory(prefix="motion-onnx-") as tmp, warnings.catch_warnings():
        # The TorchScript exporter warns that it is deprecated; it is the one that keeps dynamic_axes simple.
        warnings.simplefilter("ignore")
        path = pathlib.Path(tmp) / "model.onnx"
        torch.onnx.export(
            module.eval().cpu().float(), (example,), str(path), input_names=["input"],
            output_names=output_names, dynamic_axes={name: {0: "batch"} for name in ["input", *output_names]},
            opset_version=ONNX_OPSET, dynamo=False, do_constant_folding=True,
        )
        return path.read_bytes()


def engine_cache_key(gpu_name: str, trt_version: str, model_sha256: str, options: TensorRTOptions) -> str:
    text = "|".join([gpu_name, trt_version, model_sha256, "fp16" if options.half else "fp32",
                     f"{options.opt_batch}/{options.max_batch}"])
    return hashlib.sha256(text.encode()).hexdigest()


def _sha256_file(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _require_gpu() -> tuple[Any, Any]:
    try:
        import torch
    except ImportError as exc:
        raise ModelError("the tensorrt pose runtime needs torch (pip install torch==2.13.0)",
                         limit="torch", actual="missing") from exc
    if not torch.cuda.is_available():
        raise ModelError("the tensorrt pose runtime needs a CUDA GPU and none is visible; use runtime='litert' "
                         "or 'torch'", limit="cuda", actual="no GPU")
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise ModelError("the tensorrt pose runtime needs TensorRT (pip install tensorrt)", limit="tensorrt",
                         actual="missing") from exc
    return torch, trt


class TensorRTModel:
    """One engine with its execution context; `run` is serialised (a context is not re-entrant)."""

    def __init__(self, name: str, input_shape: tuple[int, ...], output_names: list[str], engine: Any,
                 max_batch: int, torch: Any, trt_runtime: Any) -> None:
        self.name = name
        self.input_shape = input_shape
        self.output_names = output_names
        self.max_batch = max_batch
        self._trt_runtime = trt_runtime  # the engine must not outlive the runtime that deserialised it
        self._engine = engine
        self._context = engine.create_execution_context()
        self._torch = torch
        self._lock = threading.Lock()

    def run(self, inputs: np.ndarray) -> list[np.ndarray]:
        torch = self._torch
        x = batch_input(inputs, self.name, self.input_shape)
        chunks: list[list[np.ndarray]] = []
        with self._lock:
            for start in range(0, len(x), self.max_batch):
                part = torch.from_numpy(x[start:start + self.max_batch]).cuda()
                n = part.shape[0]
                self._context.set_input_shape("input", tuple(part.shape))
                self._context.set_tensor_address("input", part.data_ptr())
                outs = []
                for name in self.output_names:
                    shape = tuple(self._context.get_tensor_shape(name))
                    out = torch.empty((n, *shape[1:]), dtype=torch.float32, device="cuda")
                    self._context.set_tensor_address(name, out.data_ptr())
                    outs.append(out)
                stream = torch.cuda.current_stream()
                if not self._context.execute_async_v3(stream.cuda_stream):
                    raise ModelError(f"TensorRT failed to run {self.name}", model=self.name)
                stream.synchronize()
                chunks.append([o.cpu().numpy() for o in outs])
        if len(chunks) == 1:
            return chunks[0]
        return [np.concatenate([c[k] for c in chunks]) for k in range(len(self.output_names))]


class TensorRTRuntime:
    name = "tensorrt"

    def __init__(self, options: TensorRTOptions | None = None) -> None:
        self.options = options or TensorRTOptions()
        self._torch, self._trt = _require_gpu()
        self._logger = self._trt.Logger(self._trt.Logger.WARNING)

    def engine_path(self, model_path: pathlib.Path) -> pathlib.Path:
        gpu = self._torch.cuda.get_device_name()
        key = engine_cache_key(gpu, self._trt.__version__, _sha256_file(model_path), self.options)
        cache = self.options.cache_dir or (pathlib.Path(model_path).parent / ENGINE_DIR)
        return cache / f"{pathlib.Path(model_path).stem}-{key[:24]}.engine"

    def _build(self, onnx_bytes: bytes, input_shape: tuple[int, ...], name: str) -> bytes:
        trt, opts = self._trt, self.options
        builder = trt.Builder(self._logger)
        network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse(onnx_bytes):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ModelError(f"TensorRT cannot parse the ONNX export of {name}: {errors}", model=name)
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, opts.workspace_bytes)
        if opts.half:
            config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        rest = tuple(input_shape[1:])
        opt_batch = min(max(1, opts.opt_batch), opts.max_batch)
        profile.set_shape("input", (1, *rest), (opt_batch, *rest), (opts.max_batch, *rest))
        config.add_optimization_profile(profile)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise ModelError(f"TensorRT failed to build an engine for {name}", model=name)
        return bytes(plan)

    def load(self, model_path: pathlib.Path, unused_outputs: Collection[str] = ()) -> TensorRTModel:
        """`unused_outputs` is accepted for the Runtime interface; every output is still computed."""
        from services.pose.runtime import _natural_key
        from services.pose.tflite_import import import_tflite

        del unused_outputs
        model_path = pathlib.Path(model_path)
        module = import_tflite(model_path)
        names = sorted(module.output_names, key=_natural_key)
        path = self.engine_path(model_path)
        plan: bytes | None = path.read_bytes() if path.is_file() else None
        runtime = self._trt.Runtime(self._logger)
        engine = runtime.deserialize_cuda_engine(plan) if plan is not None else None
        if engine is None:  # absent, or built by an incompatible TensorRT: rebuild
            log.info("building TensorRT engine %s (first use on this GPU)", path.name)
            plan = self._build(export_onnx(module, module.input_shape, module.output_names),
                               module.input_shape, module.graph_name)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, plan)
            engine = runtime.deserialize_cuda_engine(plan)
            if engine is None:
                raise ModelError(f"TensorRT cannot load the engine it built for {model_path.name}",
                                 path=str(path))
        return TensorRTModel(module.graph_name, tuple(module.input_shape), names, engine, self.options.max_batch,
                             self._torch, runtime)


def make_runtime(num_threads: int = 2, half: bool = True, max_batch: int = 64) -> TensorRTRuntime:
    """Entry point used by `services.pose.runtime.get_runtime("tensorrt")` (num_threads is unused)."""
    del num_threads
    return TensorRTRuntime(TensorRTOptions(half=half, max_batch=max_batch))
