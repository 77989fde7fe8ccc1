"""The openvino runtime: parity with LiteRT on real crops for every graph the pipeline runs, the whole
pipeline on a real clip, output pruning, the compiled-model pool, determinism, precision and "auto" choice.

Parity inputs are the crops the pipeline feeds each graph, cut from real frames of three videos and one
character image around the landmarks LiteRT finds (body, hands, face), plus the whole square frame for the
detectors. Tolerances (bf16 is the default where the CPU has it; f32 is ~100x tighter) are set at about 2x the
largest difference measured on these crops with bf16 (numbers beside each), so a wrong graph, a wrong
precision setting or a broken output order fails:
- landmark coordinates (only where LiteRT is confident: flag >= 0.5) in input pixels, max over points;
- detector boxes in input pixels, on the anchors LiteRT scores >= 0.5; scores as probabilities;
- hand_recrop's crop in input pixels.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from collections.abc import Callable

import cv2
import numpy as np
import pytest

from motion.errors import InputError
from motion.media import read_image
from tests.pose.conftest import read_frames

ov_runtime = pytest.importorskip("services.pose.runtime_openvino",
                                 reason="openvino is not importable here (pip install 'openvino>=2026.4,<2027')")

from services.pose.pipeline import POSE_LM_SEGMENTATION  # noqa: E402
from services.pose.runtime import LiteRTRuntime  # noqa: E402

# Whole pipeline, 12 frames of the dance video: mean landmark distance to LiteRT's in % of the performer's
# height; measured with bf16: body 0.23, hands 0.026, face 0.017 (animate_x__dance_1: 0.38, 0.19, 0.044).
BODY_PCT, HAND_PCT, FACE_PCT = 0.5, 0.06, 0.04
PIPELINE_GRAPHS = ("pose_detection", "pose_landmark_full", "hand_landmark_full", "hand_recrop",
                   "face_detection_short_range", "face_landmark")


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(v, -60.0, 60.0)))


def _square_around(img: np.ndarray, pts: np.ndarray, scale: float) -> np.ndarray:
    """A square crop centred on the points' box, `scale` x its longer side (padded with black at edges)."""
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    cx, cy = (lo + hi) / 2
    half = max(float((hi - lo).max()) * scale / 2, 8.0)
    m = np.float32([[1, 0, half - cx], [0, 1, half - cy]])
    side = int(round(2 * half))
    return cv2.warpAffine(img, m, (side, side), flags=cv2.INTER_AREA, borderValue=(0, 0, 0))


@pytest.fixture(scope="module")
def crops(shared_data: pathlib.Path, pose_models: dict[str, pathlib.Path]) -> dict[str, list[np.ndarray]]:
    """Real crops per input kind: 'frame' (whole square frame), 'body', 'hand', 'face'."""
    from services.pose.pipeline import PoseExtractor, PoseOptions

    images = []
    for name in ("musepose__ubc_91BjuE6irxS.mp4", "animate_x__dance_1.mp4", "unianimate__source_video.mp4"):
        frames, _ = read_frames(shared_data / "videos" / name, 1)
        images.append(frames[0])
    images.append(read_image(shared_data / "characters" / "musepose__ref.png")[:, :, :3])
    out: dict[str, list[np.ndarray]] = {"frame": [], "body": [], "hand": [], "face": []}
    with PoseExtractor(PoseOptions(runtime="litert", smoothing=False)) as ex:
        for img in images:
            img = np.ascontiguousarray(img)
            h, w = img.shape[:2]
            side = min(h, w)
            out["frame"].append(img[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side])
            f = ex.process_image(img)
            if f.body is not None:
                out["body"].append(_square_around(img, f.body[:, :2], 1.25))
            for hand in (f.left_hand, f.right_hand):
                if hand is not None:
                    out["hand"].append(_square_around(img, hand.landmarks[:, :2], 2.0))
            if f.face is not None:
                out["face"].append(_square_around(img, f.face.landmarks[:, :2], 1.5))
                out["frame"].append(_square_around(img, f.face.landmarks[:, :2], 4.0))  # head and shoulders
    for kind, items in out.items():
        assert len(items) >= 3, f"too few real {kind} crops ({len(items)}): the fixture videos changed?"
    return out


def _batch(items: list[np.ndarray], shape: tuple[int, ...], lo: float, hi: float) -> np.ndarray:
    _, h, w, _ = shape
    x = np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_AREA) for c in items]).astype(np.float32)
    return x * ((hi - lo) / 255.0) + lo


def _landmark_check(coords: str, flag: str, per_point: int, flag_is_logit: bool,
                    max_px: float, max_flag: float) -> Callable[[dict[str, np.ndarray], dict[str, np.ndarray]], None]:
    def check(ref: dict[str, np.ndarray], ours: dict[str, np.ndarray]) -> None:
        n = len(ref[coords])
        f_ref, f_ours = ref[flag].reshape(n), ours[flag].reshape(n)
        if flag_is_logit:
            f_ref, f_ours = _sigmoid(f_ref), _sigmoid(f_ours)
        assert float(np.abs(f_ref - f_ours).max()) <= max_flag
        confident = f_ref >= 0.5
        assert confident.sum() >= 3, "too few confident crops to compare landmarks"
        p_ref = ref[coords].reshape(n, -1, per_point)[confident, :, :2]
        p_ours = ours[coords].reshape(n, -1, per_point)[confident, :, :2]
        diff = float(np.abs(p_ref - p_ours).max())
        assert diff <= max_px, f"{coords}: max landmark diff {diff:.3g} px > {max_px}"
    return check


def _detector_check(boxes: str, scores: str, max_px: float, max_score: float
                    ) -> Callable[[dict[str, np.ndarray], dict[str, np.ndarray]], None]:
    def check(ref: dict[str, np.ndarray], ours: dict[str, np.ndarray]) -> None:
        s_ref, s_ours = _sigmoid(ref[scores][..., 0]), _sigmoid(ours[scores][..., 0])
        assert float(np.abs(s_ref - s_ours).max()) <= max_score
        confident = s_ref >= 0.5
        assert confident.sum() >= 3, "too few confident anchors to compare boxes"
        diff = float(np.abs(ref[boxes][confident] - ours[boxes][confident]).max())
        assert diff <= max_px, f"{boxes}: max box diff {diff:.3g} px > {max_px}"
    return check


def _recrop_check(ref: dict[str, np.ndarray], ours: dict[str, np.ndarray]) -> None:
    diff = float(np.abs(ref["output_crop"] - ours["output_crop"]).max())
    assert diff <= 2.0, f"output_crop: max diff {diff:.3g} px > 2.0"  # measured 0.94 px (of 256)


# graph -> (crop kind, input range, check). Measured maxima (bf16, these crops) in the comments; in f32 every
# difference is below 1e-3 px.
PARITY: dict[str, tuple[str, tuple[float, float], Callable[[dict[str, np.ndarray], dict[str, np.ndarray]], None]]] = {
    # boxes and keypoints 7.1 px of 224 (on 56 confident anchors), scores 0.034
    "pose_detection": ("frame", (-1.0, 1.0), _detector_check("Identity", "Identity_1", 14.0, 0.07)),
    # landmarks 3.7 px of 256 (4.4 on whole-frame crops), flag 0.03
    "pose_landmark_full": ("body", (0.0, 1.0), _landmark_check("Identity", "Identity_1", 5, False, 8.0, 0.06)),
    # landmarks 2.2 px of 224, flag 0.047
    "hand_landmark_full": ("hand", (0.0, 1.0), _landmark_check("Identity", "Identity_1", 3, False, 5.0, 0.1)),
    "hand_recrop": ("hand", (0.0, 1.0), _recrop_check),
    # boxes 0.58 px of 128, scores 0.012
    "face_detection_short_range": ("frame", (-1.0, 1.0), _detector_check("regressors", "classificators", 1.5, 0.03)),
    # landmarks 0.6 px of 192, flag (sigmoid of the logit) < 1e-3
    "face_landmark": ("face", (0.0, 1.0), _landmark_check("conv2d_21", "conv2d_31", 3, True, 1.5, 0.02)),
}


@pytest.fixture(scope="module")
def openvino_rt() -> object:
    return ov_runtime.OpenVINORuntime(num_threads=1, pool=ov_runtime.ModelPool())


@pytest.mark.parametrize("graph", PIPELINE_GRAPHS)
def test_openvino_outputs_match_litert_with_real_crops(
    graph: str, pose_models: dict[str, pathlib.Path], crops: dict[str, list[np.ndarray]], openvino_rt: object,
) -> None:
    kind, (lo, hi), check = PARITY[graph]
    unused = (POSE_LM_SEGMENTATION,) if graph == "pose_landmark_full" else ()
    ref_model = LiteRTRuntime(num_threads=1).load(pose_models[graph], unused_outputs=unused)
    our_model = openvino_rt.load(pose_models[graph], unused_outputs=unused)  # type: ignore[attr-defined]
    assert our_model.output_names == ref_model.output_names
    assert our_model.input_shape == ref_model.input_shape
    x = _batch(crops[kind], ref_model.input_shape, lo, hi)
    ref = dict(zip(ref_model.output_names, ref_model.run(x), strict=True))
    ours = dict(zip(our_model.output_names, our_model.run(x), strict=True))
    for name in ref:
        assert ours[name].shape == ref[name].shape, name
        assert np.isfinite(ours[name]).all(), name
    check(ref, ours)


def test_pruned_pose_landmark_drops_segmentation_and_keeps_other_outputs_with_real_crop(
    pose_models: dict[str, pathlib.Path], crops: dict[str, list[np.ndarray]],
) -> None:
    rt = ov_runtime.OpenVINORuntime(num_threads=1, pool=ov_runtime.ModelPool())
    full = rt.load(pose_models["pose_landmark_full"])
    pruned = rt.load(pose_models["pose_landmark_full"], unused_outputs=(POSE_LM_SEGMENTATION,))
    assert POSE_LM_SEGMENTATION in full.output_names
    assert pruned.output_names == [n for n in full.output_names if n != POSE_LM_SEGMENTATION]
    n_ops = [len(m._graph.compiled.get_runtime_model().get_ops()) for m in (full, pruned)]  # type: ignore[union-attr]
    assert n_ops[1] < n_ops[0], f"pruning removed no operator ({n_ops})"
    x = _batch(crops["body"][:2], full.input_shape, 0.0, 1.0)
    want = dict(zip(full.output_names, full.run(x), strict=True))
    for name, got in zip(pruned.output_names, pruned.run(x), strict=True):
        # Same kept operators and weights; bf16 rounding may differ where the compiler fused differently.
        np.testing.assert_allclose(got, want[name], rtol=0, atol=1e-3 * max(1.0, float(np.abs(want[name]).max())))


def test_pool_reuses_released_model_and_compiles_new_one_with_first_in_use(
    pose_models: dict[str, pathlib.Path],
) -> None:
    from motion.errors import FailedPreconditionError

    pool = ov_runtime.ModelPool()
    rt = ov_runtime.OpenVINORuntime(num_threads=1, pool=pool)
    first = rt.load(pose_models["hand_recrop"])
    second = rt.load(pose_models["hand_recrop"])  # the first is still held: a second compiled model
    assert (pool.compiles, pool.reuses, pool.free_count()) == (2, 0, 0)
    first_graph = first._graph
    first.close()
    first.close()  # idempotent: the graph goes back once
    assert pool.free_count() == 1
    with pytest.raises(FailedPreconditionError):
        first.run(np.zeros(first.input_shape, np.float32))
    third = rt.load(pose_models["hand_recrop"])
    assert (pool.compiles, pool.reuses) == (2, 1) and third._graph is first_graph
    del second  # collected: the finalizer gives its graph back
    assert pool.free_count() == 1
    rt.load(pose_models["hand_recrop"]).close()
    assert (pool.compiles, pool.reuses) == (2, 2)
    rt.load(pose_models["hand_recrop"], unused_outputs=())  # other graph/precision/threads keys compile anew
    ov_runtime.OpenVINORuntime(num_threads=2, pool=pool).load(pose_models["hand_recrop"])
    assert pool.compiles == 3


def test_second_extractor_compiles_nothing_with_first_closed(pose_models: dict[str, pathlib.Path]) -> None:
    from services.pose.pipeline import PoseExtractor, PoseOptions

    pool = ov_runtime.DEFAULT_POOL
    with PoseExtractor(PoseOptions(runtime="openvino")) as first:
        pass
    compiles = pool.compiles
    # `first` is still referenced: only close() can have given its models back.
    with PoseExtractor(PoseOptions(runtime="openvino")) as ex:
        assert ex._hand_lm_side["left"]._graph is not ex._hand_lm_side["right"]._graph  # type: ignore[attr-defined]
    assert pool.compiles == compiles
    assert first.stats["frames"] == 0


def test_outputs_identical_with_same_input_run_twice_and_compiled_twice(
    pose_models: dict[str, pathlib.Path], crops: dict[str, list[np.ndarray]],
) -> None:
    path = pose_models["hand_landmark_full"]
    a = ov_runtime.OpenVINORuntime(num_threads=1, pool=ov_runtime.ModelPool()).load(path)
    b = ov_runtime.OpenVINORuntime(num_threads=1, pool=ov_runtime.ModelPool()).load(path)
    x = _batch(crops["hand"][:1], a.input_shape, 0.0, 1.0)
    runs = [a.run(x), a.run(x), b.run(x)]
    for other in runs[1:]:
        for want, got in zip(runs[0], other, strict=True):
            np.testing.assert_array_equal(got, want)


def test_runtime_raises_input_error_naming_rule_with_unknown_precision_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.pose.runtime import get_runtime
    from services.pose.service import resolve_default_runtime

    monkeypatch.setenv(ov_runtime.PRECISION_ENV, "fp64")
    for make in (lambda: get_runtime("openvino"), lambda: resolve_default_runtime("openvino")):
        with pytest.raises(InputError) as err:
            make()
        assert err.value.rule == "pose.openvino_precision" and err.value.actual == "fp64"
        assert err.value.limit == ["bf16", "f32"]
    monkeypatch.setenv(ov_runtime.PRECISION_ENV, "F32")
    assert get_runtime("openvino").precision == "f32"  # type: ignore[attr-defined]
    monkeypatch.delenv(ov_runtime.PRECISION_ENV)
    native = "BF16" in ov_runtime._core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert get_runtime("openvino").precision == ("bf16" if native else "f32")  # type: ignore[attr-defined]


def test_auto_resolves_to_openvino_only_with_native_bf16_and_openvino_importable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from motion.settings import Settings
    from services.pose.service import resolve_default_runtime

    assert Settings().pose_runtime == "auto"
    monkeypatch.setattr(ov_runtime, "cpu_has_native_bf16", lambda: True)
    assert resolve_default_runtime("auto") == "openvino"
    monkeypatch.setenv("MOTION_POSE_RUNTIME", "AUTO")
    assert resolve_default_runtime() == "openvino"
    monkeypatch.setattr(ov_runtime, "cpu_has_native_bf16", lambda: False)
    assert resolve_default_runtime("auto") == "litert"
    monkeypatch.setattr(ov_runtime, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setitem(sys.modules, "services.pose.runtime_openvino", None)  # makes its import fail
    assert resolve_default_runtime("auto") == "litert"
    assert resolve_default_runtime("litert") == "litert"  # explicit names are kept


def test_options_from_proto_round_trips_openvino_with_enum() -> None:
    from motion.v1 import pose_service_pb2
    from services.pose.runtime import RUNTIME_NAMES
    from services.pose.service import options_from_proto

    for name, kind in RUNTIME_NAMES.items():
        assert pose_service_pb2.PoseRuntime.Value(f"POSE_RUNTIME_{name.upper()}") == int(kind)
        msg = pose_service_pb2.PoseOptions(runtime=int(kind), hands=True)  # type: ignore[arg-type]
        msg = pose_service_pb2.PoseOptions.FromString(msg.SerializeToString())
        assert options_from_proto(msg, True, "litert").runtime == name
    assert pose_service_pb2.POSE_RUNTIME_OPENVINO == 4


def test_pipeline_matches_litert_with_openvino_runtime_on_real_clip(
    pose_models: dict[str, pathlib.Path], dance_video: pathlib.Path,
) -> None:
    from services.pose.pipeline import PoseExtractor, PoseOptions

    frames, fps = read_frames(dance_video, 12, step=2)
    results = {}
    for runtime in ("litert", "openvino"):
        with PoseExtractor(PoseOptions(runtime=runtime, hands=True, face=True)) as ex:
            results[runtime] = [f for f, _ in ex.process_frames((i, i / fps, f) for i, f in enumerate(frames))]
    body_d, hand_d, face_d = [], [], []
    for ref, ours in zip(results["litert"], results["openvino"], strict=True):
        assert ref.present and ours.present and ref.body is not None and ours.body is not None
        height = float(np.ptp(ref.body[:, 1]))
        body_d.append(np.linalg.norm(ours.body[:, :2] - ref.body[:, :2], axis=1).mean() / height)
        for a, b in ((ref.left_hand, ours.left_hand), (ref.right_hand, ours.right_hand)):
            if a is not None and b is not None:
                hand_d.append(np.linalg.norm(a.landmarks[:, :2] - b.landmarks[:, :2], axis=1).mean() / height)
        if ref.face is not None and ours.face is not None:
            face_d.append(np.linalg.norm(ref.face.landmarks[:, :2] - ours.face.landmarks[:, :2], axis=1).mean() / height)
    assert hand_d and face_d
    assert 100 * float(np.mean(body_d)) <= BODY_PCT, np.mean(body_d)
    assert 100 * float(np.mean(hand_d)) <= HAND_PCT, np.mean(hand_d)
    assert 100 * float(np.mean(face_d)) <= FACE_PCT, np.mean(face_d)


def test_importing_runtime_sends_no_telemetry_and_cli_help_skips_openvino() -> None:
    code = (
        "import sys\n"
        "from motion import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('openvino' in sys.modules)\n"
        "import services.pose.runtime_openvino\n"
        "import openvino.tools.ovc.telemetry_utils as t, openvino.tools.ovc.convert_impl as c\n"
        "print(t.tm.__name__, c.tm.__name__, 'openvino_telemetry' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).resolve().parents[2])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                         check=True).stdout.split("\n")
    assert out[-3] == "False", out  # motionctl --help did not import openvino
    stub = "openvino.tools.ovc.telemetry_stub"
    assert out[-2] == f"{stub} {stub} False", out


def test_load_compiles_without_disk_cache_with_unwritable_cache_dir(
    pose_models: dict[str, pathlib.Path], tmp_path: pathlib.Path, crops: dict[str, list[np.ndarray]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import shutil

    shutil.copy(pose_models["pose_landmark_full"], tmp_path / "pose_landmark_full.tflite")
    (tmp_path / ov_runtime.CACHE_SUBDIR).write_text("a file where the cache dir would go")  # mkdir fails
    cached = ov_runtime.OpenVINORuntime(num_threads=1, pool=ov_runtime.ModelPool())
    uncached = ov_runtime.OpenVINORuntime(num_threads=1, pool=ov_runtime.ModelPool())
    with caplog.at_level("WARNING", logger="motion.pose.openvino"):
        a = uncached.load(tmp_path / "pose_landmark_full.tflite", unused_outputs=(POSE_LM_SEGMENTATION,))
        uncached.load(tmp_path / "pose_landmark_full.tflite", unused_outputs=(POSE_LM_SEGMENTATION,))
    assert sum("not writable" in r.message for r in caplog.records) == 1  # logged once per dir
    assert sorted(p.name for p in tmp_path.iterdir()) == [ov_runtime.CACHE_SUBDIR, "pose_landmark_full.tflite"]
    b = cached.load(pose_models["pose_landmark_full"], unused_outputs=(POSE_LM_SEGMENTATION,))
    assert a.output_names == b.output_names
    x = _batch(crops["body"][:1], a.input_shape, 0.0, 1.0)
    for got, want in zip(a.run(x), b.run(x), strict=True):
        np.testing.assert_array_equal(got, want)


def test_compiled_model_has_unpinned_single_stream_settings_with_requested_threads(
    pose_models: dict[str, pathlib.Path],
) -> None:
    for threads, precision in ((1, "f32"), (2, "bf16")):
        rt = ov_runtime.OpenVINORuntime(num_threads=threads, precision=precision, pool=ov_runtime.ModelPool())
        compiled = rt.load(pose_models["hand_recrop"])._graph.compiled  # type: ignore[union-attr]
        # Pinning would put separately compiled models on one core and serialise the pipeline's parts.
        assert compiled.get_property("ENABLE_CPU_PINNING") is False
        assert int(compiled.get_property("NUM_STREAMS")) == 1
        assert compiled.get_property("INFERENCE_NUM_THREADS") == threads
        assert str(compiled.get_property("PERFORMANCE_HINT")).endswith("LATENCY")
        want = "bfloat16" if precision == "bf16" else "float32"
        assert want in str(compiled.get_property("INFERENCE_PRECISION_HINT"))


def test_models_fetch_warms_compile_cache_with_openvino_default(
    pose_models: dict[str, pathlib.Path], tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import shutil

    from services.pose.cli import _warm_default_runtime

    src = next(iter(pose_models.values())).parent
    for f in src.iterdir():
        if f.is_file():
            shutil.copy(f, tmp_path / f.name)
    monkeypatch.setattr(ov_runtime, "DEFAULT_POOL", ov_runtime.ModelPool())  # a fresh process: nothing compiled
    monkeypatch.setenv("MOTION_POSE_RUNTIME", "litert")
    assert _warm_default_runtime(tmp_path) is None
    assert not (tmp_path / ov_runtime.CACHE_SUBDIR).exists()
    monkeypatch.setenv("MOTION_POSE_RUNTIME", "openvino")
    seconds = _warm_default_runtime(tmp_path)
    assert seconds is not None and seconds > 0
    blobs = list((tmp_path / ov_runtime.CACHE_SUBDIR).glob("*.blob"))
    assert len(blobs) >= len(PIPELINE_GRAPHS)  # every graph the pipeline loads, compiled once


def test_extractor_loads_models_on_two_threads_with_openvino_and_in_caller_with_litert(
    pose_models: dict[str, pathlib.Path],
) -> None:
    import threading

    from services.pose.pipeline import _load_models

    class Watched:
        """A real runtime; records the thread each load ran on."""

        def __init__(self, rt: object) -> None:
            self.rt, self.threads = rt, []
            self.parallel_load = getattr(rt, "parallel_load", False)

        def load(self, path: pathlib.Path, unused_outputs: tuple[str, ...] = ()) -> object:
            self.threads.append(threading.current_thread().name)
            return self.rt.load(path, unused_outputs=unused_outputs)  # type: ignore[attr-defined]

    wanted = {"pose_lm": ("pose_landmark_full", (POSE_LM_SEGMENTATION,)), "hand_l": ("hand_landmark_full", ()),
              "hand_r": ("hand_landmark_full", ()), "recrop": ("hand_recrop", ()), "face": ("face_landmark", ())}
    ov = Watched(ov_runtime.OpenVINORuntime(num_threads=1, pool=ov_runtime.ModelPool()))
    got = _load_models(ov, pose_models, wanted)
    assert set(got) == set(wanted) and got["hand_l"]._graph is not got["hand_r"]._graph  # type: ignore[attr-defined]
    assert {t.rsplit("_", 1)[0] for t in ov.threads} == {"pose-load"} and len(set(ov.threads)) == 2
    assert got["pose_lm"].output_names != got["hand_l"].output_names  # each key got its own graph
    lite = Watched(LiteRTRuntime(num_threads=1))
    assert set(_load_models(lite, pose_models, wanted)) == set(wanted)
    assert set(lite.threads) == {threading.current_thread().name}  # not known to be thread-safe: in turn
