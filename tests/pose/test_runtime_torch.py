"""The torch runtime (tflite -> torch importer) and the TensorRT runtime's CPU-checkable parts: batching,
the runtime registry, input checks, errors, the ONNX export with a dynamic batch, and the whole pose
pipeline on a real clip with runtime="torch" against runtime="litert"."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from motion.errors import InputError, ModelError
from services.pose.runtime import get_runtime
from tests.pose.conftest import read_frames

torch = pytest.importorskip("torch")
pytest.importorskip("tflite")

from services.pose.runtime_torch import TorchOptions, TorchRuntime  # noqa: E402
from services.pose.tflite_import import import_tflite, read_graph  # noqa: E402


@pytest.fixture(scope="module")
def cpu_runtime() -> TorchRuntime:
    return TorchRuntime(TorchOptions(device="cpu"))


def _real_batch(video: pathlib.Path, n: int, h: int, w: int) -> np.ndarray:
    import cv2

    frames, _ = read_frames(video, n, step=5)
    return np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames]).astype(np.float32) / 255


def test_run_batch_matches_single_runs_with_four_real_frames(
        cpu_runtime: TorchRuntime, pose_models: dict[str, pathlib.Path], dance_video: pathlib.Path) -> None:
    model = cpu_runtime.load(pose_models["face_landmark"])
    _, h, w, _ = model.input_shape
    x = _real_batch(dance_video, 4, h, w)
    batched = model.run(x)
    singles = [model.run(x[i]) for i in range(4)]  # (H, W, C) without batch axis is accepted too
    for k, name in enumerate(model.output_names):
        assert batched[k].shape[0] == 4, name
        stacked = np.concatenate([s[k] for s in singles])
        np.testing.assert_allclose(batched[k], stacked, atol=1e-4, rtol=1e-4, err_msg=name)
    # Different frames give different landmarks: the batch is not one frame broadcast.
    assert np.abs(batched[0][0] - batched[0][3]).max() > 1.0


def test_run_splits_batches_larger_than_max_batch_with_same_results(
        pose_models: dict[str, pathlib.Path], dance_video: pathlib.Path) -> None:
    small = TorchRuntime(TorchOptions(device="cpu", max_batch=2)).load(pose_models["hand_recrop"])
    big = TorchRuntime(TorchOptions(device="cpu")).load(pose_models["hand_recrop"])
    _, h, w, _ = big.input_shape
    x = _real_batch(dance_video, 5, h, w)
    np.testing.assert_allclose(small.run(x)[0], big.run(x)[0], atol=1e-4)


def test_get_runtime_returns_torch_runtime_with_name_torch(pose_models: dict[str, pathlib.Path]) -> None:
    rt = get_runtime("torch", num_threads=2)
    assert rt.name == "torch"
    model = rt.load(pose_models["pose_landmark_full"])
    # Same contract as LiteRT: (1, H, W, C) input shape and outputs sorted by name.
    assert model.input_shape == (1, 256, 256, 3)
    assert model.output_names == ["Identity", "Identity_1", "Identity_2", "Identity_3", "Identity_4"]


def test_run_rejects_input_with_wrong_shape_with_tensor_shape_rule(
        cpu_runtime: TorchRuntime, pose_models: dict[str, pathlib.Path]) -> None:
    model = cpu_runtime.load(pose_models["hand_recrop"])
    with pytest.raises(InputError) as info:
        model.run(np.zeros((1, 100, 100, 3), np.float32))
    assert info.value.rule == "pose.tensor_shape"
    assert info.value.actual == (100, 100, 3)


def test_import_raises_model_error_with_truncated_file(
        pose_models: dict[str, pathlib.Path], tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "truncated.tflite"
    bad.write_bytes(pose_models["hand_recrop"].read_bytes()[:4096])
    with pytest.raises(ModelError):
        import_tflite(bad)


def test_read_graph_folds_fp16_and_sparse_weights_with_pose_detection(
        pose_models: dict[str, pathlib.Path]) -> None:
    graph = read_graph(pose_models["pose_detection"])
    counts = graph.op_counts()
    # 144 DEQUANTIZE and 38 DENSIFY of constant weights are folded at import: none is left to run.
    assert "DEQUANTIZE" not in counts and "DENSIFY" not in counts
    assert counts["CONV_2D"] == 45 and counts["DEPTH_TO_SPACE"] == 3
    for op in graph.ops:
        if op.kind == "CONV_2D":
            weight = graph.constants[op.inputs[1]]
            assert weight.dtype == np.float32 and weight.shape == graph.tensors[op.inputs[1]].shape


def test_pipeline_matches_litert_with_torch_runtime_on_real_clip(
        pose_models: dict[str, pathlib.Path], dance_video: pathlib.Path) -> None:
    from services.pose.pipeline import PoseExtractor, PoseOptions

    frames, fps = read_frames(dance_video, 4, step=3)
    results = {}
    for runtime in ("litert", "torch"):
        with PoseExtractor(PoseOptions(runtime=runtime, hands=True, face=True)) as ex:
            results[runtime] = list(ex.process_frames((i, i / fps, f) for i, f in enumerate(frames)))
    for (ref, _), (ours, _) in zip(results["litert"], results["torch"], strict=True):
        assert ref.present and ours.present and ref.body is not None and ours.body is not None
        # Landmarks in video pixels (540 x 414 frame): within 0.5 px of LiteRT's.
        assert np.abs(ours.body[:, :2] - ref.body[:, :2]).max() <= 0.5
        for a, b in ((ref.left_hand, ours.left_hand), (ref.right_hand, ours.right_hand)):
            assert (a is None) == (b is None)
            if a is not None and b is not None:
                assert np.abs(a.landmarks[:, :2] - b.landmarks[:, :2]).max() <= 0.5
        assert (ref.face is None) == (ours.face is None)
        if ref.face is not None and ours.face is not None:
            assert np.abs(ref.face.landmarks[:, :2] - ours.face.landmarks[:, :2]).max() <= 0.5


def test_onnx_export_runs_with_dynamic_batch_in_onnxruntime(
        cpu_runtime: TorchRuntime, pose_models: dict[str, pathlib.Path], dance_video: pathlib.Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from services.pose.runtime_tensorrt import export_onnx

    module = import_tflite(pose_models["face_detection_short_range"])
    onnx_bytes = export_onnx(module, module.input_shape, module.output_names)
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    _, h, w, _ = module.input_shape
    x = _real_batch(dance_video, 3, h, w) * 2 - 1  # batch 3: the export used 2, so the axis is dynamic
    got = session.run(None, {"input": x})
    with torch.inference_mode():
        ref = module(torch.from_numpy(x))
    for name, g, r in zip(module.output_names, got, ref, strict=True):
        assert g.shape == tuple(r.shape), name
        np.testing.assert_allclose(g, r.numpy(), atol=1e-3, err_msg=name)


def test_tensorrt_runtime_raises_model_error_without_gpu() -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible: the no-GPU error path cannot be exercised")
    with pytest.raises(ModelError) as info:
        get_runtime("tensorrt")
    assert "GPU" in info.value.message


def test_engine_cache_key_changes_with_gpu_trt_version_and_model() -> None:
    from services.pose.runtime_tensorrt import TensorRTOptions, engine_cache_key

    opts = TensorRTOptions()
    base = engine_cache_key("NVIDIA H100", "10.3.0", "ab" * 32, opts)
    assert base == engine_cache_key("NVIDIA H100", "10.3.0", "ab" * 32, TensorRTOptions())
    others = {engine_cache_key("NVIDIA A10G", "10.3.0", "ab" * 32, opts),
              engine_cache_key("NVIDIA H100", "10.4.0", "ab" * 32, opts),
              engine_cache_key("NVIDIA H100", "10.3.0", "cd" * 32, opts),
              engine_cache_key("NVIDIA H100", "10.3.0", "ab" * 32, TensorRTOptions(half=False))}
    assert base not in others and len(others) == 4


@pytest.mark.gpu
def test_cuda_outputs_match_cpu_with_fp32_and_fp16(
        pose_models: dict[str, pathlib.Path], dance_video: pathlib.Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    cpu = TorchRuntime(TorchOptions(device="cpu")).load(pose_models["pose_landmark_full"])
    x = _real_batch(dance_video, 4, 256, 256)
    ref = cpu.run(x)
    for half, tol in ((False, 1e-2), (True, 1.0)):
        gpu = TorchRuntime(TorchOptions(device="cuda", half=half)).load(pose_models["pose_landmark_full"])
        got = gpu.run(x)
        # Identity: 39 landmarks x 5 in 256-px input units; fp16 gets a 1 px budget.
        assert np.abs(got[0] - ref[0]).max() <= tol


@pytest.mark.gpu
def test_tensorrt_engine_matches_torch_and_is_cached_with_gpu(
        pose_models: dict[str, pathlib.Path], dance_video: pathlib.Path, tmp_path: pathlib.Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    pytest.importorskip("tensorrt")
    from services.pose.runtime_tensorrt import TensorRTOptions, TensorRTRuntime

    rt = TensorRTRuntime(TensorRTOptions(half=False, max_batch=8, opt_batch=4, cache_dir=tmp_path))
    model = rt.load(pose_models["pose_landmark_full"])
    engine = rt.engine_path(pose_models["pose_landmark_full"])
    assert engine.is_file()
    mtime = engine.stat().st_mtime_ns
    rt.load(pose_models["pose_landmark_full"])
    assert engine.stat().st_mtime_ns == mtime  # the second load reused the cached engine
    x = _real_batch(dance_video, 6, 256, 256)
    ref = TorchRuntime(TorchOptions(device="cpu")).load(pose_models["pose_landmark_full"]).run(x)
    got = model.run(x)
    assert model.output_names == ["Identity", "Identity_1", "Identity_2", "Identity_3", "Identity_4"]
    assert np.abs(got[0] - ref[0]).max() <= 0.256  # 1e-3 x 256-px input


def _sparsity(traversal: list[int], block_map: list[int], levels: list[tuple[int, int, list[int], list[int]]]) -> object:
    """A real `SparsityParameters` flatbuffer (built with the schema's builder) read back with the bindings.
    levels: (format 0 dense / 1 CSR, dense_size, segments, indices)."""
    import flatbuffers
    import tflite

    b = flatbuffers.Builder(256)

    def int_vector(values: list[int]) -> int:
        tflite.Int32VectorStartValuesVector(b, len(values))
        for v in reversed(values):
            b.PrependInt32(v)
        vec = b.EndVector()
        tflite.Int32VectorStart(b)
        tflite.Int32VectorAddValues(b, vec)
        return int(tflite.Int32VectorEnd(b))

    metas = []
    for fmt, dense_size, segments, indices in levels:
        seg = int_vector(segments) if fmt == 1 else 0
        idx = int_vector(indices) if fmt == 1 else 0
        tflite.DimensionMetadataStart(b)
        tflite.DimensionMetadataAddFormat(b, fmt)
        tflite.DimensionMetadataAddDenseSize(b, dense_size)
        if fmt == 1:
            tflite.DimensionMetadataAddArraySegmentsType(b, 1)  # Int32Vector
            tflite.DimensionMetadataAddArraySegments(b, seg)
            tflite.DimensionMetadataAddArrayIndicesType(b, 1)
            tflite.DimensionMetadataAddArrayIndices(b, idx)
        metas.append(tflite.DimensionMetadataEnd(b))

    def offsets_vector(start: object, items: list[int], prepend: object) -> int:
        start(b, len(items))  # type: ignore[operator]
        for v in reversed(items):
            prepend(v)  # type: ignore[operator]
        return int(b.EndVector())

    order = offsets_vector(tflite.SparsityParametersStartTraversalOrderVector, traversal, b.PrependInt32)
    bmap = offsets_vector(tflite.SparsityParametersStartBlockMapVector, block_map, b.PrependInt32)
    dims = offsets_vector(tflite.SparsityParametersStartDimMetadataVector, metas, b.PrependUOffsetTRelative)
    tflite.SparsityParametersStart(b)
    tflite.SparsityParametersAddTraversalOrder(b, order)
    tflite.SparsityParametersAddBlockMap(b, bmap)
    tflite.SparsityParametersAddDimMetadata(b, dims)
    b.Finish(tflite.SparsityParametersEnd(b))
    return tflite.SparsityParameters.GetRootAs(b.Output(), 0)


def test_densify_expands_block_sparse_matrix_with_2x2_blocks() -> None:
    from services.pose.tflite_import import densify

    dense = np.array([[1, 0, 2, 3], [0, 4, 0, 0], [0, 0, 5, 0], [0, 0, 0, 6]], np.float32)
    # Block rows dense (2), block columns CSR (row 0 has blocks 0 and 1, row 1 has block 1), 2x2 dense blocks.
    sparsity = _sparsity([0, 1, 2, 3], [0, 1], [(0, 2, [], []), (1, 0, [0, 2, 3], [0, 1, 1]),
                                                (0, 2, [], []), (0, 2, [], [])])
    values = np.array([1, 0, 0, 4, 2, 3, 0, 0, 5, 0, 0, 6], np.float32)
    np.testing.assert_array_equal(densify(values, (4, 4), sparsity), dense)


def test_densify_expands_csr_rows_with_unblocked_matrix() -> None:
    from services.pose.tflite_import import densify

    dense = np.array([[0, 7, 0], [0, 0, 0], [8, 0, 9]], np.float16)
    sparsity = _sparsity([0, 1], [], [(0, 3, [], []), (1, 0, [0, 1, 1, 3], [1, 0, 2])])
    values = np.array([7, 8, 9], np.float16)
    np.testing.assert_array_equal(densify(values, (3, 3), sparsity), dense)
