"""Inference runtimes behind one interface.

A runtime loads a .tflite graph and returns a `Model` whose `run(batch)` takes an NHWC float32 batch and
returns the graph's outputs, each with the batch as first axis, in the graph's output order sorted by name
(`Identity`, `Identity_1`, ...) so every runtime agrees on the order.

`litert` (ai-edge-litert, XNNPACK on CPU) is the reference. `openvino`, `torch` and `tensorrt` are looked up
lazily in `services.pose.runtime_<name>` (their packages are imported only then). "auto" (the services'
default, `resolve_auto_runtime`) is openvino where its CPU plugin computes bf16 natively, else litert.

`load(path, unused_outputs=names)` lets a runtime skip graph outputs the caller never reads: litert removes
them and every op that only they need (pose_landmark_full's segmentation mask is ~35 % of its CPU time);
other runtimes may still return them, so callers pick outputs by name (`output_names`).
"""

from __future__ import annotations

import importlib
import pathlib
import re
import struct
import threading
from collections.abc import Collection
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
    OPENVINO = 4


RUNTIME_NAMES = {"litert": RuntimeKind.LITERT, "torch": RuntimeKind.TORCH, "tensorrt": RuntimeKind.TENSORRT,
                 "openvino": RuntimeKind.OPENVINO}
AUTO_RUNTIME = "auto"  # a settings value, resolved by resolve_auto_runtime before it reaches PoseOptions


class Model(Protocol):
    name: str
    input_shape: tuple[int, ...]  # (1, H, W, C)
    output_names: list[str]

    def run(self, inputs: np.ndarray) -> list[np.ndarray]: ...


class Runtime(Protocol):
    name: str

    def load(self, model_path: pathlib.Path, unused_outputs: Collection[str] = ()) -> Model: ...


def batch_input(inputs: np.ndarray, name: str, input_shape: tuple[int, ...]) -> np.ndarray:
    """``inputs`` as a C-contiguous float32 NHWC batch (one HWC crop gets a batch axis), checked against the
    model's ``input_shape`` (every runtime's ``run`` starts with this)."""
    x = np.ascontiguousarray(inputs, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    if x.shape[1:] != input_shape[1:]:
        raise InputError("pose.tensor_shape", f"{name} expects {input_shape[1:]}",
                         limit=input_shape[1:], actual=x.shape[1:])
    return x


def _natural_key(name: str) -> tuple[str, int]:
    m = re.match(r"^(.*?)(?:_(\d+))?(?::\d+)?$", name)
    if m is None:
        return (name, -1)
    return (m.group(1), int(m.group(2)) if m.group(2) else -1)


# ---- .tflite flatbuffer surgery (schema: tensorflow/lite/schema/schema.fbs) -----------------------------------
# Field ids: Model.subgraphs 2; SubGraph.tensors 0, outputs 2, operators 3; Operator.inputs 1, outputs 2;
# Tensor.name 3.
def _fb_u32(b: bytes | bytearray, pos: int) -> int:
    return int(struct.unpack_from("<I", b, pos)[0])


def _fb_field(b: bytes | bytearray, table: int, field_id: int) -> int:
    """Absolute position of a table's field, 0 when absent."""
    vtable = table - int(struct.unpack_from("<i", b, table)[0])
    vtable_size = int(struct.unpack_from("<H", b, vtable)[0])
    if 4 + 2 * field_id >= vtable_size:
        return 0
    off = int(struct.unpack_from("<H", b, vtable + 4 + 2 * field_id)[0])
    return table + off if off else 0


def _fb_vector(b: bytes | bytearray, table: int, field_id: int) -> tuple[int, int]:
    """(position of the first element, length) of a vector field; (0, 0) when absent."""
    f = _fb_field(b, table, field_id)
    if not f:
        return 0, 0
    v = f + _fb_u32(b, f)
    return v + 4, _fb_u32(b, v)


def _fb_ints(b: bytes | bytearray, table: int, field_id: int) -> list[int]:
    start, n = _fb_vector(b, table, field_id)
    return [int(v) for v in struct.unpack_from(f"<{n}i", b, start)] if n else []


def prune_tflite_outputs(data: bytes, unused_outputs: Collection[str]) -> bytes:
    """The .tflite graph without the named outputs of its main subgraph and without the operators that only
    they need. The flatbuffer is edited in place (the operator and output vectors are shortened; nothing
    moves), so every kept tensor, weight and operator is byte-for-byte the same and so are the kept outputs."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError("not a .tflite flatbuffer (no TFL3 identifier)", rule="pose.model_format", limit="TFL3",
                         actual=bytes(data[4:8]).hex())
    b = bytearray(data)
    model = _fb_u32(b, 0)
    subgraphs, n_subgraphs = _fb_vector(b, model, 2)
    if n_subgraphs < 1:
        raise ModelError("the .tflite graph has no subgraph", rule="pose.model_format", limit=">=1 subgraph",
                         actual=n_subgraphs)
    sg = subgraphs + _fb_u32(b, subgraphs)
    tensors, _ = _fb_vector(b, sg, 0)

    def tensor_name(i: int) -> str:
        t = tensors + 4 * i
        t += _fb_u32(b, t)
        f = _fb_field(b, t, 3)
        if not f:
            return ""
        s = f + _fb_u32(b, f)
        return bytes(b[s + 4:s + 4 + _fb_u32(b, s)]).decode()

    outputs = _fb_ints(b, sg, 2)
    names = [tensor_name(t) for t in outputs]
    missing = sorted(set(unused_outputs) - set(names))
    if missing:
        raise ModelError(f"the graph has no outputs {missing}", rule="pose.model_outputs", limit=names, actual=missing)
    keep = [t for t, name in zip(outputs, names, strict=True) if name not in unused_outputs]
    ops, n_ops = _fb_vector(b, sg, 3)
    op_pos = [ops + 4 * k + _fb_u32(b, ops + 4 * k) for k in range(n_ops)]
    producer = {t: k for k, pos in enumerate(op_pos) for t in _fb_ints(b, pos, 2)}
    needed: set[int] = set()
    stack = list(keep)
    while stack:
        k = producer.get(stack.pop(), -1)
        if k >= 0 and k not in needed:
            needed.add(k)
            stack.extend(t for t in _fb_ints(b, op_pos[k], 1) if t >= 0)  # -1 = optional input left out
    kept_ops = [k for k in range(n_ops) if k in needed]  # the original (topological) order
    for j, k in enumerate(kept_ops):
        # Offsets in a flatbuffer vector are relative to their own slot and point forward; slot j <= k.
        struct.pack_into("<I", b, ops + 4 * j, op_pos[k] - (ops + 4 * j))
    struct.pack_into("<I", b, ops - 4, len(kept_ops))
    out_start, _ = _fb_vector(b, sg, 2)
    for j, t in enumerate(keep):
        struct.pack_into("<i", b, out_start + 4 * j, t)
    struct.pack_into("<I", b, out_start - 4, len(keep))
    return bytes(b)


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
        x = batch_input(inputs, self.name, self.input_shape)
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

    def load(self, model_path: pathlib.Path, unused_outputs: Collection[str] = ()) -> LiteRTModel:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:  # pragma: no cover - dependency of the package
            raise FailedPreconditionError("ai-edge-litert is not installed (pip install ai-edge-litert)") from exc
        try:
            if unused_outputs:
                content = prune_tflite_outputs(pathlib.Path(model_path).read_bytes(), unused_outputs)
                interp = Interpreter(model_content=content, num_threads=self.num_threads)
            else:
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


def resolve_auto_runtime() -> str:
    """"openvino" where it imports and the CPU computes bf16 natively (~28 % less pose CPU than litert with the
    same accuracy), else "litert" (in f32 OpenVINO is no faster, and litert is the reference)."""
    try:
        module = importlib.import_module("services.pose.runtime_openvino")
    except ImportError:
        return "litert"
    return "openvino" if module.cpu_has_native_bf16() else "litert"


def get_runtime(name: str, num_threads: int = 2) -> Runtime:
    """The runtime called `name` ("litert", "openvino", "torch" or "tensorrt")."""
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
