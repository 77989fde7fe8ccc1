"""Inference runtimes behind one interface.

A runtime loads a .tflite graph and returns a `Model` whose `run(batch)` takes an NHWC float32 batch and
returns the graph's outputs, each with the batch as first axis, in the graph's output order sorted by name
(`Identity`, `Identity_1`, ...) so every runtime agrees on the order.

`litert` (ai-edge-litert, XNNPACK on CPU) is the default. `torch` and `tensorrt` are looked up lazily in
`services.pose.runtime_torch` / `services.pose.runtime_tensorrt` when those modules exist.
"""

from __future__ import annotations

import importlib
import pathlib
import re
import threading
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

import numpy as np

from motion.errors import FailedPreconditionError, InputError, ModelError


class RuntimeKind(IntEnum):
    """Mirrors motion.v1.PoseRuntime."""

    UNSPECIFIED = 0
    LITERT = 1
    TORCH = 2
    TENSORRT = 3


RUNTIME_NAMES = {"litert": RuntimeKind.LITERT, "torch": RuntimeKind.TORCH, "tensorrt": RuntimeKind.TENSORRT}


class Model(Protocol):
    name: str
    input_shape: tuple[int, ...]  # (1, H, W, C)
    output_names: list[str]

    def run(self, inputs: np.ndarray) -> list[np.ndarray]: ...


class Runtime(Protocol):
    name: str

    def load(self, model_path: pathlib.Path) -> Model: ...


def _natural_key(name: str) -> tuple[str, int]:
    m = re.match(r"^(.*?)(?:_(\d+))?(?::\d+)?$", name)
    if m is None:
        return (name, -1)
    return (m.group(1), int(m.group(2)) if m.group(2) else -1)


@dataclass
class LiteRTModel:
    name: str
    input_shape: tuple[int, ...]
    output_names: list[str]
    _interpreter: object
    _input_index: int
    _output_indices: list[int]
    _lock: threading.Lock

    def run(self, inputs: np.ndarray) -> list[np.ndarray]:
        x = np.ascontiguousarray(inputs, dtype=np.float32)
        if x.ndim == 3:
            x = x[None]
        if x.shape[1:] != self.input_shape[1:]:
            raise InputError("pose.tensor_shape", f"{self.name} expects {self.input_shape[1:]}",
                             limit=self.input_shape[1:], actual=x.shape[1:])
        interp = self._interpreter
        # The interpreter is not re-entrant; invoke() releases the GIL so different models run in parallel.
        with self._lock:
            if len(x) == 1:
                # The common case (one crop a call): get_tensor already returns a copy, so no second copy
                # and no stacking.
                interp.set_tensor(self._input_index, x)  # type: ignore[attr-defined]
                interp.invoke()  # type: ignore[attr-defined]
                return [interp.get_tensor(idx) for idx in self._output_indices]  # type: ignore[attr-defined]
            outs: list[list[np.ndarray]] = [[] for _ in self._output_indices]
            for item in x:
                interp.set_tensor(self._input_index, item[None])  # type: ignore[attr-defined]
                interp.invoke()  # type: ignore[attr-defined]
                for k, idx in enumerate(self._output_indices):
                    outs[k].append(interp.get_tensor(idx)[0])  # type: ignore[attr-defined]
        return [np.stack(o) for o in outs]


class LiteRTRuntime:
    name = "litert"

    def __init__(self, num_threads: int = 2) -> None:
        self.num_threads = num_threads

    def load(self, model_path: pathlib.Path) -> LiteRTModel:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:  # pragma: no cover - dependency of the package
            raise FailedPreconditionError("ai-edge-litert is not installed (pip install ai-edge-litert)") from exc
        try:
            interp = Interpreter(model_path=str(model_path), num_threads=self.num_threads)
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot load {model_path}: {exc}", path=str(model_path)) from exc
        inp = interp.get_input_details()[0]
        outs = sorted(interp.get_output_details(), key=lambda d: _natural_key(d["name"]))
        return LiteRTModel(
            name=pathlib.Path(model_path).stem, input_shape=tuple(int(v) for v in inp["shape"]),
            output_names=[d["name"] for d in outs], _interpreter=interp, _input_index=inp["index"],
            _output_indices=[d["index"] for d in outs], _lock=threading.Lock(),
        )


def get_runtime(name: str, num_threads: int = 2) -> Runtime:
    """The runtime called `name` ("litert", "torch" or "tensorrt")."""
    kind = RUNTIME_NAMES.get(name)
    if kind is None:
        raise InputError("pose.runtime", f"unknown runtime {name!r}", limit=sorted(RUNTIME_NAMES), actual=name)
    if kind == RuntimeKind.LITERT:
        return LiteRTRuntime(num_threads=num_threads)
    module_name = f"services.pose.runtime_{name}"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise FailedPreconditionError(
            f"runtime {name!r} is not available here ({exc}); use runtime='litert'", runtime=name,
        ) from exc
    runtime: Runtime = module.make_runtime(num_threads=num_threads)
    return runtime
