"""A generic importer from TFLite flatbuffers to PyTorch modules.

`import_tflite(path)` parses the graph with the `tflite` package (generated schema bindings, pure Python),
folds constant DEQUANTIZE (fp16 / int8 weights) and DENSIFY (sparse weights) at import time, and returns a
`TFLiteModule` that runs the remaining ops with torch. The module takes and returns tensors in the TFLite
layout (NHWC images, outputs in the graph's output order and shapes) with any batch size; inside, every 4-D
tensor is kept NCHW because that is what torch's convolutions (and cuDNN / TensorRT) are fastest with.

Supported ops: the set the MediaPipe pose / hand / face / selfie graphs use (see `SUPPORTED_OPS`). Anything
else raises `ModelError` naming the op, so a new graph fails at import, never with wrong numbers.
"""

from __future__ import annotations

import math
import pathlib
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from motion.errors import ModelError

try:
    import tflite
    from tflite.BuiltinOperator import BuiltinOperator
    from tflite.TensorType import TensorType
except ImportError as exc:  # get_runtime reports it as "runtime 'torch' is not available here"
    raise ImportError("the torch pose runtime needs the `tflite` package (pip install 'tflite>=2.18,<3')") from exc


_OP_NAMES: dict[int, str] = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}

_NUMPY_DTYPES: dict[int, Any] = {
    TensorType.FLOAT32: np.float32, TensorType.FLOAT16: np.float16, TensorType.INT32: np.int32,
    TensorType.UINT8: np.uint8, TensorType.INT64: np.int64, TensorType.INT8: np.int8,
    TensorType.INT16: np.int16, TensorType.BOOL: np.bool_,
}

# NHWC axis -> NCHW axis for 4-D tensors.
_NHWC_TO_NCHW_AXIS = (0, 2, 3, 1)

SUPPORTED_OPS = frozenset({
    "ADD", "MUL", "SUB", "RELU", "RELU6", "PRELU", "LOGISTIC", "TANH", "HARD_SWISH", "CONV_2D",
    "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "CUSTOM:Convolution2DTransposeBias", "MAX_POOL_2D",
    "AVERAGE_POOL_2D", "PAD", "RESHAPE", "CONCATENATION", "RESIZE_BILINEAR", "FULLY_CONNECTED", "MEAN",
    "STRIDED_SLICE", "DEPTH_TO_SPACE", "DEQUANTIZE", "DENSIFY",
})


class Padding(IntEnum):
    """tflite.Padding."""

    SAME = 0
    VALID = 1


class Activation(IntEnum):
    """tflite.ActivationFunctionType (fused activations)."""

    NONE = 0
    RELU = 1
    RELU_N1_TO_1 = 2
    RELU6 = 3
    TANH = 4
    SIGN_BIT = 5


class SparseFormat(IntEnum):
    """tflite.DimensionType."""

    DENSE = 0
    SPARSE_CSR = 1


@dataclass
class TensorInfo:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: Any
    buffer: int
    quant: tuple[np.ndarray, np.ndarray, int] | None = None  # (scale, zero_point, axis) of int tensors


@dataclass
class GraphOp:
    kind: str  # builtin name ("CONV_2D") or "CUSTOM:<code>"
    inputs: list[int]  # tensor indices, -1 for an omitted optional input
    outputs: list[int]
    options: Any  # the op's typed options table (tflite.Conv2DOptions, ...) or None
    custom_options: bytes = b""


@dataclass
class TFLiteGraph:
    """The first subgraph of a .tflite file with its constants decoded to numpy."""

    name: str
    tensors: list[TensorInfo]
    ops: list[GraphOp]
    inputs: list[int]
    outputs: list[int]
    constants: dict[int, np.ndarray] = field(default_factory=dict)

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for op in self.ops:
            counts[op.kind] = counts.get(op.kind, 0) + 1
        return counts


# ---------------------------------------------------------------------------------------------------------
# Parsing


def _options_of(op: Any, kind: str) -> Any:
    table = op.BuiltinOptions()
    if table is None:
        return None
    cls_name = {
        "ADD": "AddOptions", "MUL": "MulOptions", "SUB": "SubOptions", "CONV_2D": "Conv2DOptions",
        "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions", "TRANSPOSE_CONV": "TransposeConvOptions",
        "MAX_POOL_2D": "Pool2DOptions", "AVERAGE_POOL_2D": "Pool2DOptions", "RESHAPE": "ReshapeOptions",
        "CONCATENATION": "ConcatenationOptions", "RESIZE_BILINEAR": "ResizeBilinearOptions",
        "FULLY_CONNECTED": "FullyConnectedOptions", "MEAN": "ReducerOptions",
        "STRIDED_SLICE": "StridedSliceOptions", "DEPTH_TO_SPACE": "DepthToSpaceOptions",
    }.get(kind)
    if cls_name is None:
        return None
    opts = getattr(tflite, cls_name)()
    opts.Init(table.Bytes, table.Pos)
    return opts


def _sparse_vector(kind: int, table: Any) -> np.ndarray:
    # tflite.SparseIndexVector union: 1 Int32Vector, 2 Uint16Vector, 3 Uint8Vector.
    cls = {1: tflite.Int32Vector, 2: tflite.Uint16Vector, 3: tflite.Uint8Vector}.get(kind)
    if cls is None or table is None:
        raise ModelError(f"unsupported sparse index vector type {kind}")
    vec = cls()
    vec.Init(table.Bytes, table.Pos)
    values = vec.ValuesAsNumpy()
    return np.asarray(values if not isinstance(values, int) else [], dtype=np.int64)


def densify(values: np.ndarray, dense_shape: Sequence[int], sparsity: Any) -> np.ndarray:
    """Expands TFLite sparse storage (`SparsityParameters`: traversal order, block map, per-level DENSE or
    SPARSE_CSR metadata) into the dense array. Vectorised level by level: each level maps every stored
    position of the previous level to its children, so no Python loop runs per element."""
    rank = len(dense_shape)
    order = [int(v) for v in sparsity.TraversalOrderAsNumpy()]
    block_map = [int(v) for v in sparsity.BlockMapAsNumpy()] if sparsity.BlockMapLength() else []
    levels = len(order)
    coords = np.zeros((1, levels), np.int64)  # coordinates (in traversal dims) of each stored position
    pos = np.zeros(1, np.int64)  # index into the next level's segments / the value array
    block_sizes: dict[int, int] = {}
    for lvl in range(levels):
        meta = sparsity.DimMetadata(lvl)
        dim = order[lvl]
        if meta.Format() == SparseFormat.DENSE:
            size = int(meta.DenseSize())
            if dim >= rank:
                block_sizes[block_map[dim - rank]] = size
            coords = np.repeat(coords, size, axis=0)
            j = np.tile(np.arange(size, dtype=np.int64), len(pos))
            pos = np.repeat(pos, size) * size + j
            coords[:, dim] = j
        else:
            segments = _sparse_vector(meta.ArraySegmentsType(), meta.ArraySegments())
            indices = _sparse_vector(meta.ArrayIndicesType(), meta.ArrayIndices())
            starts, ends = segments[pos], segments[pos + 1]
            counts = ends - starts
            coords = np.repeat(coords, counts, axis=0)
            first = np.repeat(starts, counts)
            offsets = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
            pos = first + offsets
            coords[:, dim] = indices[pos]
    dense_index = np.zeros((len(pos), rank), np.int64)
    for d in range(rank):
        if d in block_sizes:
            block_level = rank + block_map.index(d)
            dense_index[:, d] = coords[:, d] * block_sizes[d] + coords[:, block_level]
        else:
            dense_index[:, d] = coords[:, d]
    out = np.zeros(tuple(dense_shape), dtype=values.dtype)
    out[tuple(dense_index.T)] = values[pos]
    return out


def read_graph(path: str | pathlib.Path) -> TFLiteGraph:
    """Parses a .tflite file: tensors, ops with their options, and every constant buffer as numpy."""
    path = pathlib.Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc}", path=str(path)) from exc
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(f"{path} is not a TFLite flatbuffer", path=str(path), limit="TFL3", actual=data[4:8])
    try:
        graph = _parse(path, data)
    except (struct.error, IndexError, ValueError, TypeError, UnicodeDecodeError) as exc:
        # A truncated or corrupt flatbuffer fails deep inside the generated accessors.
        raise ModelError(f"cannot parse {path} as TFLite: {exc}", path=str(path)) from exc
    _fold_constants(graph)
    return graph


def _parse(path: pathlib.Path, data: bytes) -> TFLiteGraph:
    model = tflite.Model.GetRootAsModel(data, 0)
    if model.SubgraphsLength() < 1:
        raise ModelError(f"{path} has no subgraph", path=str(path))
    sg = model.Subgraphs(0)
    tensors: list[TensorInfo] = []
    constants: dict[int, np.ndarray] = {}
    sparse: dict[int, Any] = {}
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        shape = tuple(int(v) for v in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        dtype = _NUMPY_DTYPES.get(t.Type())
        info = TensorInfo(i, (t.Name() or b"").decode(), shape, dtype, int(t.Buffer()))
        tensors.append(info)
        buf = model.Buffers(info.buffer)
        raw: np.ndarray | None = None
        if buf.DataLength() > 0:
            raw = buf.DataAsNumpy()
        elif buf.Offset() > 1:  # large models keep buffers after the flatbuffer, addressed by offset
            raw = np.frombuffer(data, np.uint8, count=int(buf.Size()), offset=int(buf.Offset()))
        if raw is None:
            continue
        if dtype is None:
            raise ModelError(f"{path}: tensor {info.name!r} has unsupported type {t.Type()}", path=str(path))
        values = np.frombuffer(raw.tobytes(), dtype=dtype)
        if t.Sparsity() is not None:
            sparse[i] = t.Sparsity()
            constants[i] = values
        else:
            constants[i] = values.reshape(shape) if shape else values.reshape(())
        quant = t.Quantization()
        if quant is not None and quant.ScaleLength() and dtype in (np.int8, np.uint8, np.int16):
            info.quant = (quant.ScaleAsNumpy().astype(np.float32), quant.ZeroPointAsNumpy().astype(np.float32),
                          int(quant.QuantizedDimension()))
    ops: list[GraphOp] = []
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
        kind = _OP_NAMES.get(builtin, f"BUILTIN_{builtin}")
        if kind == "CUSTOM":
            kind = "CUSTOM:" + (code.CustomCode() or b"").decode()
        custom = op.CustomOptionsAsNumpy().tobytes() if op.CustomOptionsLength() else b""
        ops.append(GraphOp(kind, [int(v) for v in op.InputsAsNumpy()], [int(v) for v in op.OutputsAsNumpy()],
                           _options_of(op, kind), custom))
    graph = TFLiteGraph(path.stem, tensors, ops, [int(v) for v in sg.InputsAsNumpy()],
                        [int(v) for v in sg.OutputsAsNumpy()], constants)
    for i, sp in sparse.items():
        # DENSIFY's output shape is the dense shape; the sparse tensor itself carries the same shape.
        graph.constants[i] = densify(graph.constants[i], tensors[i].shape, sp)
    return graph


def _fold_constants(graph: TFLiteGraph) -> None:
    """Runs DEQUANTIZE / DENSIFY of constant inputs once at import, leaving only runtime ops."""
    kept: list[GraphOp] = []
    for op in graph.ops:
        if op.kind in ("DEQUANTIZE", "DENSIFY") and op.inputs[0] in graph.constants:
            src = graph.constants[op.inputs[0]]
            quant = graph.tensors[op.inputs[0]].quant
            if quant is not None:  # affine int8/uint8 quantisation
                scale, zero, axis = quant
                shape = [1] * src.ndim
                if scale.size > 1:
                    shape[axis] = scale.size
                value = (src.astype(np.float32) - zero.reshape(shape)) * scale.reshape(shape)
            elif op.kind == "DEQUANTIZE":
                value = src.astype(np.float32)
            else:
                value = src
            graph.constants[op.outputs[0]] = value.reshape(graph.tensors[op.outputs[0]].shape)
            continue
        kept.append(op)
    graph.ops = kept


# ---------------------------------------------------------------------------------------------------------
# Layout helpers


def _to_nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)


def _to_nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1)


def _const_for(value: np.ndarray, out_rank: int) -> torch.Tensor:
    """A constant operand of an elementwise op, laid out to broadcast against a tensor of `out_rank`
    (4-D tensors are NCHW inside the module)."""
    arr = np.asarray(value, dtype=np.float32)
    if out_rank == 4:
        arr = arr.reshape((1,) * (4 - arr.ndim) + arr.shape).transpose(0, 3, 1, 2)
    return torch.from_numpy(np.array(arr, order="C"))  # a writable copy of the read-only model buffer


def _same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TFLite SAME padding (before, after): extra padding goes after, as in TensorFlow."""
    eff = (kernel - 1) * dilation + 1
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


def _activation(x: torch.Tensor, act: int) -> torch.Tensor:
    if act == Activation.NONE:
        return x
    if act == Activation.RELU:
        return F.relu(x)
    if act == Activation.RELU6:
        return torch.clamp(x, 0.0, 6.0)
    if act == Activation.RELU_N1_TO_1:
        return torch.clamp(x, -1.0, 1.0)
    if act == Activation.TANH:
        return torch.tanh(x)
    raise ModelError(f"unsupported fused activation {act}", actual=act)


def _check_activation(act: int) -> int:
    if act not in (Activation.NONE, Activation.RELU, Activation.RELU6, Activation.RELU_N1_TO_1,
                   Activation.TANH):
        raise ModelError(f"unsupported fused activation {act}", limit="NONE|RELU|RELU6|RELU_N1_TO_1|TANH",
                         actual=act)
    return act


# ---------------------------------------------------------------------------------------------------------
# Op modules. Each takes the op's non-constant inputs (in graph order) and returns its one output.


class _Conv(nn.Module):
    weight: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, stride: tuple[int, int],
                 dilation: tuple[int, int], pad: tuple[int, int, int, int], groups: int, act: int) -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)
        self.stride, self.dilation, self.groups, self.act = stride, dilation, groups, act
        top, bottom, left, right = pad
        # Symmetric padding goes into the convolution itself (one kernel); asymmetric needs an F.pad.
        self.conv_pad = (top, left) if (top == bottom and left == right) else (0, 0)
        self.extra_pad = None if (top == bottom and left == right) else (left, right, top, bottom)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.extra_pad is not None:
            x = F.pad(x, self.extra_pad)
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.conv_pad, self.dilation, self.groups)
        return _activation(y, self.act)


class _TransposeConv(nn.Module):
    weight: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, stride: tuple[int, int],
                 crop: tuple[int, int], out_hw: tuple[int, int], act: int) -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)
        self.stride, self.crop, self.out_hw, self.act = stride, crop, out_hw, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv_transpose2d(x, self.weight, self.bias, self.stride)
        top, left = self.crop
        y = y[:, :, top:top + self.out_hw[0], left:left + self.out_hw[1]]
        return _activation(y, self.act)


class _Pool(nn.Module):
    divisor: torch.Tensor | None

    def __init__(self, kind: str, kernel: tuple[int, int], stride: tuple[int, int],
                 pad: tuple[int, int, int, int], in_hw: tuple[int, int], act: int) -> None:
        super().__init__()
        self.kind, self.kernel, self.stride, self.act = kind, kernel, stride, act
        top, bottom, left, right = pad
        self.pad = (left, right, top, bottom)
        self.padded = any(pad)
        count = None
        if kind == "avg" and self.padded:
            # TFLite averages over the valid (unpadded) cells only: precompute each window's count.
            ones = torch.ones(1, 1, *in_hw)
            count = F.avg_pool2d(F.pad(ones, self.pad), kernel, stride) * (kernel[0] * kernel[1])
        self.register_buffer("divisor", count)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "max":
            if self.padded:
                x = F.pad(x, self.pad, value=float("-inf"))
            y = F.max_pool2d(x, self.kernel, self.stride)
        elif self.divisor is not None:
            summed = F.avg_pool2d(F.pad(x, self.pad), self.kernel, self.stride) * (self.kernel[0] * self.kernel[1])
            y = summed / self.divisor
        else:
            y = F.avg_pool2d(x, self.kernel, self.stride)
        return _activation(y, self.act)


class _Binary(nn.Module):
    """ADD / MUL / SUB with an optional constant operand (`const_side` 0 or 1) and fused activation."""

    const: torch.Tensor | None

    def __init__(self, kind: str, const: torch.Tensor | None, const_side: int, act: int) -> None:
        super().__init__()
        self.kind, self.const_side, self.act = kind, const_side, act
        self.register_buffer("const", const)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if self.const is not None:
            a, b = (self.const, xs[0]) if self.const_side == 0 else (xs[0], self.const)
        else:
            a, b = xs
        if self.kind == "ADD":
            y = a + b
        elif self.kind == "MUL":
            y = a * b
        else:
            y = a - b
        return _activation(y, self.act)


class _Unary(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class _PRelu(nn.Module):
    alpha: torch.Tensor

    def __init__(self, alpha: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("alpha", alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x >= 0, x, x * self.alpha)


class _Pad(nn.Module):
    def __init__(self, pads: tuple[int, ...]) -> None:
        super().__init__()
        self.pads = pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pads)


class _Reshape(nn.Module):
    """Reshapes in TFLite (NHWC) element order; the batch axis stays free so N > 1 works."""

    def __init__(self, in_rank: int, out_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.in4, self.out_shape = in_rank == 4, (-1, *out_shape[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in4:
            x = _to_nhwc(x)
        y = x.reshape(self.out_shape)
        return _to_nchw(y) if len(self.out_shape) == 4 else y


class _Concat(nn.Module):
    def __init__(self, axis: int, act: int) -> None:
        super().__init__()
        self.axis, self.act = axis, act

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return _activation(torch.cat(xs, dim=self.axis), self.act)


class _ResizeBilinear(nn.Module):
    i0_0: torch.Tensor
    i1_0: torch.Tensor
    w_0: torch.Tensor
    i0_1: torch.Tensor
    i1_1: torch.Tensor
    w_1: torch.Tensor

    def __init__(self, in_hw: tuple[int, int], out_hw: tuple[int, int], align_corners: bool,
                 half_pixel: bool) -> None:
        super().__init__()
        self.out_hw, self.align_corners, self.half_pixel = out_hw, align_corners, half_pixel
        self.legacy = not align_corners and not half_pixel
        if self.legacy:
            # TF1 resize (no pixel-centre offset): src = dst * in / out. torch has no such mode, so the
            # indices and weights are precomputed for the graph's static sizes.
            for axis, (n_in, n_out) in enumerate(zip(in_hw, out_hw, strict=True)):
                src = np.arange(n_out, dtype=np.float64) * (n_in / n_out)
                i0 = np.floor(src).astype(np.int64)
                i1 = np.minimum(i0 + 1, n_in - 1)
                w = (src - i0).astype(np.float32)
                self.register_buffer(f"i0_{axis}", torch.from_numpy(i0))
                self.register_buffer(f"i1_{axis}", torch.from_numpy(i1))
                self.register_buffer(f"w_{axis}", torch.from_numpy(w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.legacy:
            return F.interpolate(x, size=self.out_hw, mode="bilinear", align_corners=self.align_corners)
        wy = self.w_0.to(x.dtype).view(1, 1, -1, 1)
        top, bottom = x.index_select(2, self.i0_0), x.index_select(2, self.i1_0)
        x = top + (bottom - top) * wy
        wx = self.w_1.to(x.dtype).view(1, 1, 1, -1)
        left, right = x.index_select(3, self.i0_1), x.index_select(3, self.i1_1)
        return left + (right - left) * wx


class _FullyConnected(nn.Module):
    weight: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, in_rank: int, weight: torch.Tensor, bias: torch.Tensor | None,
                 out_shape: tuple[int, ...], keep_dims: bool, act: int) -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)
        self.in4, self.act = in_rank == 4, act
        self.out_shape = (-1, *out_shape[1:]) if keep_dims else (-1, int(weight.shape[0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in4:
            x = _to_nhwc(x)
        y = F.linear(x.reshape(-1, self.weight.shape[1]), self.weight, self.bias)
        y = _activation(y, self.act).reshape(self.out_shape)
        return _to_nchw(y) if len(self.out_shape) == 4 else y


class _Mean(nn.Module):
    def __init__(self, in_rank: int, axes: tuple[int, ...], keep_dims: bool, out_rank: int) -> None:
        super().__init__()
        self.in4, self.axes, self.keep_dims, self.out4 = in_rank == 4, axes, keep_dims, out_rank == 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in4:
            x = _to_nhwc(x)
        y = x.mean(dim=self.axes, keepdim=self.keep_dims)
        return _to_nchw(y) if self.out4 else y


class _StridedSlice(nn.Module):
    def __init__(self, in_rank: int, slices: tuple[slice, ...], shrink: tuple[int, ...]) -> None:
        super().__init__()
        self.in4, self.slices, self.shrink = in_rank == 4, slices, shrink

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in4:
            x = _to_nhwc(x)
        y = x[self.slices]
        if self.shrink:
            y = y.squeeze(self.shrink)
        return _to_nchw(y) if y.dim() == 4 else y


class _DepthToSpace(nn.Module):
    """TensorFlow's DCR order (depth index = (i * block + j) * C + c), unlike torch's pixel_shuffle."""

    def __init__(self, block: int) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, c, h, w = x.shape
        b = self.block
        y = x.reshape(-1, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2)
        return y.reshape(-1, c // (b * b), h * b, w * b)


# ---------------------------------------------------------------------------------------------------------
# Graph -> module


@dataclass
class _Node:
    module_index: int
    inputs: list[int]  # dynamic tensor indices
    output: int
    free_after: list[int]  # tensors whose last use is this node (dropped to bound memory)


class TFLiteModule(nn.Module):
    """A TFLite graph as a torch module: `forward(x)` with x NHWC float (N, H, W, C) returns the graph's
    outputs (graph order, TFLite layout and shapes with batch N)."""

    def __init__(self, graph: TFLiteGraph) -> None:
        super().__init__()
        if len(graph.inputs) != 1:
            raise ModelError(f"{graph.name}: only single-input graphs are supported",
                             limit=1, actual=len(graph.inputs))
        self.graph_name = graph.name
        inp = graph.tensors[graph.inputs[0]]
        self.input_shape: tuple[int, ...] = inp.shape
        self.input_index = inp.index
        self.output_names = [graph.tensors[i].name for i in graph.outputs]
        self.output_shapes = [graph.tensors[i].shape for i in graph.outputs]
        self.output_indices = list(graph.outputs)
        self.ops = nn.ModuleList()
        self.nodes: list[_Node] = []
        for op in graph.ops:
            module, dyn = _build_op(graph, op)
            self.ops.append(module)
            self.nodes.append(_Node(len(self.ops) - 1, dyn, op.outputs[0], []))
        last_use: dict[int, int] = {}
        for k, node in enumerate(self.nodes):
            for t in node.inputs:
                last_use[t] = k
        for t, k in last_use.items():
            if t not in self.output_indices:
                self.nodes[k].free_after.append(t)
        produced = {self.input_index} | {n.output for n in self.nodes}
        for t in self.output_indices:
            if t not in produced:
                raise ModelError(f"{graph.name}: output {graph.tensors[t].name!r} is not computed by any op")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        env: dict[int, torch.Tensor] = {self.input_index: _to_nchw(x) if x.dim() == 4 else x}
        for node in self.nodes:
            env[node.output] = self.ops[node.module_index](*[env[i] for i in node.inputs])
            for t in node.free_after:
                del env[t]
        outs = []
        for i, shape in zip(self.output_indices, self.output_shapes, strict=True):
            y = env[i]
            outs.append(_to_nhwc(y) if len(shape) == 4 else y)
        return tuple(outs)


def import_tflite(path: str | pathlib.Path) -> TFLiteModule:
    """Reads a .tflite file into an eval-mode float32 `TFLiteModule` on the CPU."""
    graph = read_graph(path)
    unsupported = sorted({op.kind for op in graph.ops} - SUPPORTED_OPS)
    if unsupported:
        raise ModelError(f"{graph.name}: unsupported TFLite ops {unsupported}", limit=sorted(SUPPORTED_OPS),
                         actual=unsupported)
    return TFLiteModule(graph).eval()


def _build_op(graph: TFLiteGraph, op: GraphOp) -> tuple[nn.Module, list[int]]:
    kind, opts, consts, tensors = op.kind, op.options, graph.constants, graph.tensors
    out_info = tensors[op.outputs[0]]
    out_rank = len(out_info.shape)

    def const(i: int) -> np.ndarray:
        if op.inputs[i] not in consts:
            raise ModelError(f"{graph.name}: {kind} input {i} must be a constant", actual=tensors[op.inputs[i]].name)
        return consts[op.inputs[i]]

    def tensor(arr: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(arr, dtype=np.float32, order="C"))  # a copy: buffers are read-only

    def optional_bias(i: int) -> torch.Tensor | None:
        if len(op.inputs) <= i or op.inputs[i] < 0:
            return None
        return tensor(const(i))

    first = op.inputs[0]
    in_shape = tensors[first].shape if first >= 0 else ()

    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        w = const(1)  # CONV: [O, KH, KW, I]; DEPTHWISE: [1, KH, KW, C * M]
        stride, dil = (opts.StrideH(), opts.StrideW()), (opts.DilationHFactor(), opts.DilationWFactor())
        if kind == "CONV_2D":
            weight = tensor(w.transpose(0, 3, 1, 2))
            groups = in_shape[3] // w.shape[3]
        else:
            weight = tensor(w.transpose(3, 0, 1, 2))
            groups = in_shape[3]
        kh, kw = w.shape[1], w.shape[2]
        if opts.Padding() == Padding.SAME:
            pad = (*_same_padding(in_shape[1], kh, stride[0], dil[0]), *_same_padding(in_shape[2], kw, stride[1], dil[1]))
        else:
            pad = (0, 0, 0, 0)
        act = _check_activation(opts.FusedActivationFunction())
        return _Conv(weight, optional_bias(2), stride, dil, pad, groups, act), [first]

    if kind in ("TRANSPOSE_CONV", "CUSTOM:Convolution2DTransposeBias"):
        if kind == "TRANSPOSE_CONV":  # inputs: output_shape, weights, input, [bias]
            w, x_idx, bias = const(1), op.inputs[2], optional_bias(3)
            padding, stride = opts.Padding(), (opts.StrideH(), opts.StrideW())
            act = _check_activation(opts.FusedActivationFunction()) if hasattr(opts, "FusedActivationFunction") else 0
        else:  # MediaPipe's custom op: input, weights, bias; options = packed {padding, stride_w, stride_h}
            w, x_idx, bias = const(1), first, optional_bias(2)
            if len(op.custom_options) < 12:
                raise ModelError(f"{graph.name}: {kind} options are {len(op.custom_options)} bytes",
                                 limit=12, actual=len(op.custom_options))
            raw_pad, sw, sh = np.frombuffer(op.custom_options[:12], np.int32).tolist()
            padding = Padding.SAME if raw_pad == 1 else Padding.VALID  # TfLitePadding: 1 same, 2 valid
            stride, act = (sh, sw), 0
        in_hw = tensors[x_idx].shape[1:3]
        out_hw = (out_info.shape[1], out_info.shape[2])
        kh, kw = w.shape[1], w.shape[2]
        crop = (0, 0)
        if padding == Padding.SAME:
            crop = (max((in_hw[0] - 1) * stride[0] + kh - out_hw[0], 0) // 2,
                    max((in_hw[1] - 1) * stride[1] + kw - out_hw[1], 0) // 2)
        weight = tensor(w.transpose(3, 0, 1, 2))  # [O, KH, KW, I] -> [I, O, KH, KW]
        return _TransposeConv(weight, bias, stride, crop, out_hw, act), [x_idx]

    if kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        kernel, stride = (opts.FilterHeight(), opts.FilterWidth()), (opts.StrideH(), opts.StrideW())
        if opts.Padding() == Padding.SAME:
            pad = (*_same_padding(in_shape[1], kernel[0], stride[0]), *_same_padding(in_shape[2], kernel[1], stride[1]))
        else:
            pad = (0, 0, 0, 0)
        pool = "max" if kind == "MAX_POOL_2D" else "avg"
        act = _check_activation(opts.FusedActivationFunction())
        return _Pool(pool, kernel, stride, pad, (in_shape[1], in_shape[2]), act), [first]

    if kind in ("ADD", "MUL", "SUB"):
        act = _check_activation(opts.FusedActivationFunction()) if opts is not None else 0
        a, b = op.inputs[:2]
        if a in consts and b in consts:
            raise ModelError(f"{graph.name}: {kind} of two constants is not folded")
        if a in consts or b in consts:
            side = 0 if a in consts else 1
            dyn = b if side == 0 else a
            if len(tensors[dyn].shape) != out_rank:
                raise ModelError(f"{graph.name}: {kind} broadcasts a rank-{len(tensors[dyn].shape)} tensor",
                                 limit=out_rank, actual=len(tensors[dyn].shape))
            return _Binary(kind, _const_for(consts[a if side == 0 else b], out_rank), side, act), [dyn]
        if len(tensors[a].shape) != len(tensors[b].shape):
            raise ModelError(f"{graph.name}: {kind} of tensors with different ranks",
                             limit=len(tensors[a].shape), actual=len(tensors[b].shape))
        return _Binary(kind, None, 0, act), [a, b]

    unary: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "RELU": F.relu, "RELU6": lambda t: torch.clamp(t, 0.0, 6.0), "LOGISTIC": torch.sigmoid,
        "TANH": torch.tanh, "HARD_SWISH": F.hardswish,
        "DEQUANTIZE": lambda t: t,  # a run-time fp16 tensor: the module already computes in its own dtype
    }
    if kind == "DEQUANTIZE" and tensors[first].dtype is not np.float16:
        raise ModelError(f"{graph.name}: DEQUANTIZE of a run-time integer tensor is not supported",
                         limit="float16", actual=str(tensors[first].dtype))
    if kind in unary:
        return _Unary(unary[kind]), [first]

    if kind == "PRELU":
        return _PRelu(_const_for(const(1), out_rank)), [first]

    if kind == "PAD":
        pads = const(1).astype(np.int64)  # [rank, 2] in TFLite axis order
        if pads[0].any():
            raise ModelError(f"{graph.name}: PAD on the batch axis is not supported", actual=pads[0].tolist())
        rank = len(in_shape)
        order = [_NHWC_TO_NCHW_AXIS.index(d) for d in range(4)] if rank == 4 else list(range(rank))
        # F.pad lists (before, after) pairs from the last torch axis backwards.
        flat: list[int] = []
        for torch_axis in reversed(range(1, rank)):
            tfl_axis = order[torch_axis]
            flat += [int(pads[tfl_axis, 0]), int(pads[tfl_axis, 1])]
        return _Pad(tuple(flat)), [first]

    if kind == "RESHAPE":
        return _Reshape(len(in_shape), out_info.shape), [first]

    if kind == "CONCATENATION":
        axis = opts.Axis() % out_rank
        if axis == 0:
            raise ModelError(f"{graph.name}: concatenation on the batch axis is not supported", actual=axis)
        if out_rank == 4:
            axis = _NHWC_TO_NCHW_AXIS[axis]
        if any(i in consts for i in op.inputs):
            raise ModelError(f"{graph.name}: CONCATENATION with constant inputs is not supported")
        return _Concat(axis, _check_activation(opts.FusedActivationFunction())), list(op.inputs)

    if kind == "RESIZE_BILINEAR":
        return _ResizeBilinear((in_shape[1], in_shape[2]), (out_info.shape[1], out_info.shape[2]),
                               bool(opts.AlignCorners()), bool(opts.HalfPixelCenters())), [first]

    if kind == "FULLY_CONNECTED":
        if opts is not None and opts.WeightsFormat() != 0:
            raise ModelError(f"{graph.name}: shuffled FULLY_CONNECTED weights are not supported")
        keep = bool(opts.KeepNumDims()) if opts is not None else False
        act = _check_activation(opts.FusedActivationFunction()) if opts is not None else 0
        return _FullyConnected(len(in_shape), tensor(const(1)), optional_bias(2), out_info.shape, keep, act), [first]

    if kind == "MEAN":
        axes = tuple(sorted({int(a) % len(in_shape) for a in np.atleast_1d(const(1))}))
        if 0 in axes:
            raise ModelError(f"{graph.name}: MEAN over the batch axis is not supported", actual=axes)
        return _Mean(len(in_shape), axes, bool(opts.KeepDims()), out_rank), [first]

    if kind == "STRIDED_SLICE":
        if opts.EllipsisMask() or opts.NewAxisMask():
            raise ModelError(f"{graph.name}: STRIDED_SLICE with ellipsis/new-axis masks is not supported")
        begin, end, strides = (np.atleast_1d(const(i)).astype(np.int64) for i in (1, 2, 3))
        if opts.Offset():
            end = begin + end
        slices: list[slice] = []
        shrink: list[int] = []
        for d in range(len(in_shape)):
            start: int | None = None if opts.BeginMask() >> d & 1 else int(begin[d])
            stop: int | None = None if opts.EndMask() >> d & 1 else int(end[d])
            s = int(strides[d])
            if opts.ShrinkAxisMask() >> d & 1:
                stop, s = (start + 1 if start is not None and start != -1 else None), 1
                shrink.append(d)
            if d == 0:
                # The batch axis is free at run time: only a slice that keeps all of it is supported.
                if (start or 0) != 0 or s != 1 or (stop is not None and stop < in_shape[0]) or shrink:
                    raise ModelError(f"{graph.name}: STRIDED_SLICE on the batch axis is not supported")
                slices.append(slice(None))
                continue
            slices.append(slice(start, stop, s))
        return _StridedSlice(len(in_shape), tuple(slices), tuple(shrink)), [first]

    if kind == "DEPTH_TO_SPACE":
        return _DepthToSpace(int(opts.BlockSize())), [first]

    raise ModelError(f"{graph.name}: unsupported TFLite op {kind}", limit=sorted(SUPPORTED_OPS), actual=kind)
