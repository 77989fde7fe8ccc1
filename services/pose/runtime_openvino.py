"""The `openvino` pose runtime: the .tflite graphs compiled by OpenVINO's CPU plugin (it reads .tflite directly).

Same interface as the LiteRT runtime (`services.pose.runtime`): `load(path, unused_outputs=...)` returns a model
whose `run(batch)` takes NHWC float32 and returns the outputs sorted by name, batch first.

Why it exists: on a CPU with native bf16 (AVX512_BF16 / AMX, OpenVINO reports 'BF16') it computes in bf16 and
runs hand_landmark_full in ~4.4 ms vs 7.9 ms (litert XNNPACK, 1 thread), ~28 % less CPU for the whole pose
pipeline with the same agreement with MediaPipe Holistic. In f32 it is no faster than litert, so "auto"
(`resolve_auto_runtime` in services.pose.runtime) only picks it where bf16 is native.

Settings and why:
- `ENABLE_CPU_PINNING: False`: with pinning, separately compiled models are pinned to the same core and the
  pipeline's parallel parts (body, two hands, face) serialise.
- `NUM_STREAMS: 1`, `PERFORMANCE_HINT: LATENCY`, `INFERENCE_NUM_THREADS: num_threads`: one crop a call,
  the parallelism comes from the pipeline's threads.
- Two infer requests of one compiled model serialise (one stream), so every `load` gets its own compiled
  model: the left and right hand workers each load theirs.
- Compiling costs ~1.75 s for the pipeline's 8 models; a blob cache on disk (`<model_dir>/openvino-cache/`)
  brings it to ~0.4 s, and a process-wide pool of compiled models (returned when a Model is closed or
  collected) makes a second extractor in the same process compile nothing.

`import openvino` sends a usage event (openvino_telemetry, opt-out) from `openvino.tools.ovc`'s import;
`_import_openvino` makes that import fall back to the package's own no-op stub, so nothing phones home.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pathlib
import sys
import tempfile
import threading
import types
import weakref
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from motion.errors import FailedPreconditionError, InputError, ModelError
from services.pose.runtime import _natural_key, batch_input, prune_tflite_outputs

log = logging.getLogger("motion.pose.openvino")

PRECISION_ENV = "MOTION_OPENVINO_PRECISION"  # "" = bf16 where the CPU has it natively, else f32
PRECISIONS = ("bf16", "f32")
CACHE_SUBDIR = "openvino-cache"
# Free compiled models kept per (graph, precision, threads): a pipeline uses at most 2 of one graph (hands);
# more would only hold memory after a burst of parallel extractors.
MAX_FREE_PER_KEY = 4

_import_lock = threading.Lock()


def _import_openvino() -> types.ModuleType:
    """`import openvino`, with its import-time telemetry replaced by the stub it ships for when
    openvino_telemetry is missing (openvino.tools.ovc catches that ImportError)."""
    with _import_lock:
        if "openvino" in sys.modules:
            return sys.modules["openvino"]
        block = "openvino_telemetry" not in sys.modules
        if block:
            sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]  # makes its import fail
        try:
            import openvino
        except ImportError as exc:
            raise ImportError("the openvino pose runtime needs openvino (pip install 'openvino>=2026.4,<2027')") \
                from exc
        finally:
            if block and sys.modules.get("openvino_telemetry", 0) is None:
                del sys.modules["openvino_telemetry"]
        if not block:
            log.warning("openvino_telemetry was imported before openvino: its opt-out telemetry may be active")
        return openvino


# get_runtime turns an ImportError here into "runtime 'openvino' is not available here".
_ov = _import_openvino()


_core_lock = threading.Lock()
_core_instance: Any = None


def _core() -> Any:
    """The process's one ov.Core (plugins load once; compile_model is thread-safe on it)."""
    global _core_instance
    with _core_lock:
        if _core_instance is None:
            _core_instance = _ov.Core()
        return _core_instance


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True where OpenVINO's CPU plugin reports 'BF16' (AVX512_BF16 or AMX): bf16 inference runs natively."""
    try:
        caps = _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except RuntimeError:  # no CPU plugin: the runtime cannot work at all, get_runtime reports it
        return False
    return "BF16" in caps


def resolve_precision(env: dict[str, str] | None = None) -> str:
    """The inference precision: MOTION_OPENVINO_PRECISION when set (for diagnosis), else bf16 where native."""
    raw = (os.environ if env is None else env).get(PRECISION_ENV, "").strip().lower()
    if not raw:
        return "bf16" if cpu_has_native_bf16() else "f32"
    if raw not in PRECISIONS:
        raise InputError("pose.openvino_precision", f"{PRECISION_ENV} must be one of {list(PRECISIONS)}",
                         limit=list(PRECISIONS), actual=raw)
    if raw == "bf16" and not cpu_has_native_bf16():
        log.warning("%s=bf16 on a CPU without native bf16: OpenVINO may ignore it or emulate it slowly",
                    PRECISION_ENV)
    return raw


def compile_config(precision: str, num_threads: int) -> dict[str, Any]:
    return {
        "INFERENCE_PRECISION_HINT": precision,
        "INFERENCE_NUM_THREADS": num_threads,
        "NUM_STREAMS": 1,
        "PERFORMANCE_HINT": "LATENCY",
        # Pinning puts separately compiled models on the same core: the pipeline's parallel parts serialise.
        "ENABLE_CPU_PINNING": False,
    }


_cache_dir_lock = threading.Lock()
_unwritable_logged: set[str] = set()


def _writable_cache_dir(model_dir: pathlib.Path) -> pathlib.Path | None:
    """`<model_dir>/openvino-cache`, or None (logged once per dir) where it cannot be written."""
    cache = model_dir / CACHE_SUBDIR
    try:
        cache.mkdir(parents=True, exist_ok=True)
        # os.access can say yes on read-only mounts; a real write is the test.
        with tempfile.NamedTemporaryFile(dir=cache, prefix=".probe-"):
            pass
        return cache
    except OSError as exc:
        with _cache_dir_lock:
            if str(cache) not in _unwritable_logged:
                _unwritable_logged.add(str(cache))
                log.warning("openvino compiled-model cache %s is not writable (%s): compiling without a disk cache",
                            cache, exc)
        return None


@dataclass
class CompiledGraph:
    """One compiled model and its single infer request (one stream: a second request would only queue)."""

    key: tuple[str, str, int]
    name: str
    compiled: Any
    request: Any
    input_shape: tuple[int, ...]
    output_ports: list[Any]
    output_names: list[str]


@dataclass
class ModelPool:
    """Compiled models shared by the whole process, keyed by (graph content digest, precision, threads).

    `acquire` hands out a free one or compiles a new one; `release` takes it back. A compiled model is never
    used by two Models at once (its one infer request is not re-entrant and would serialise anyway)."""

    max_free_per_key: int = MAX_FREE_PER_KEY
    compiles: int = 0  # graphs compiled (from a disk blob or from scratch)
    reuses: int = 0  # acquisitions served from the pool
    _free: dict[tuple[str, str, int], list[CompiledGraph]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def acquire(self, model_path: pathlib.Path, unused_outputs: Collection[str], precision: str,
                num_threads: int) -> CompiledGraph:
        data = model_path.read_bytes()
        if unused_outputs:
            data = prune_tflite_outputs(data, unused_outputs)
        digest = hashlib.sha256(data).hexdigest()
        key = (digest, precision, num_threads)
        with self._lock:
            free = self._free.get(key)
            if free:
                self.reuses += 1
                return free.pop()
        cache = _writable_cache_dir(model_path.parent)
        graph = _compile(model_path, data, digest, bool(unused_outputs), key, cache)
        with self._lock:
            self.compiles += 1
            first = self.compiles == 1
        if first:
            log.info("openvino pose runtime: precision %s, %d thread(s) per model, compiled-model cache %s",
                     precision, num_threads, cache or "none")
        return graph

    def release(self, graph: CompiledGraph) -> None:
        with self._lock:
            free = self._free.setdefault(graph.key, [])
            if len(free) < self.max_free_per_key:
                free.append(graph)

    def free_count(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._free.values())

    def clear(self) -> None:
        with self._lock:
            self._free.clear()


DEFAULT_POOL = ModelPool()


def _compile(model_path: pathlib.Path, data: bytes, digest: str, pruned: bool, key: tuple[str, str, int],
             cache: pathlib.Path | None) -> CompiledGraph:
    core = _core()
    config = compile_config(key[1], key[2])
    try:
        if cache is not None:
            config["CACHE_DIR"] = str(cache)
            source = model_path
            if pruned:
                # OpenVINO reads .tflite from a file; named by content so the blob cache (keyed by path and
                # config) never mixes two graphs.
                source = cache / f"{model_path.stem}-{digest[:16]}.tflite"
                if not source.exists():
                    tmp = source.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
                    tmp.write_bytes(data)
                    tmp.replace(source)  # atomic: a parallel compile never reads half a file
            compiled = core.compile_model(str(source), "CPU", config)
        elif pruned:
            fd, tmp_name = tempfile.mkstemp(suffix=".tflite")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                compiled = core.compile_model(core.read_model(tmp_name), "CPU", config)
            finally:
                os.unlink(tmp_name)
        else:
            compiled = core.compile_model(str(model_path), "CPU", config)
    except (RuntimeError, OSError) as exc:
        raise ModelError(f"openvino cannot compile {model_path}: {exc}", path=str(model_path)) from exc
    ports = sorted(compiled.outputs, key=lambda p: _natural_key(p.get_any_name()))
    return CompiledGraph(
        key=key, name=model_path.stem, compiled=compiled, request=compiled.create_infer_request(),
        input_shape=tuple(int(v) for v in compiled.inputs[0].shape), output_ports=ports,
        output_names=[p.get_any_name() for p in ports],
    )


class OpenVINOModel:
    """A compiled graph lent by the pool. Thread-safe (one run at a time; `infer` releases the GIL so different
    models run in parallel). `close()`, or garbage collection, gives the compiled graph back to the pool."""

    def __init__(self, graph: CompiledGraph, pool: ModelPool) -> None:
        self.name = graph.name
        self.input_shape = graph.input_shape
        self.output_names = list(graph.output_names)
        self._graph: CompiledGraph | None = graph
        self._lock = threading.Lock()
        # The finalizer holds the graph and the pool, never the model, so the model can be collected.
        self._finalizer = weakref.finalize(self, pool.release, graph)

    def run(self, inputs: np.ndarray) -> list[np.ndarray]:
        x = batch_input(inputs, self.name, self.input_shape)
        with self._lock:
            graph = self._graph
            if graph is None:
                raise FailedPreconditionError(f"openvino model {self.name} is closed", model=self.name)
            # The graph's batch is fixed at 1: one request a crop (the pipeline sends one crop a call).
            # share_outputs=False (the default) returns arrays the next infer will not overwrite.
            results = [graph.request.infer({0: x[i:i + 1]}, share_inputs=True) for i in range(len(x))]
        if len(results) == 1:
            return [results[0][p] for p in graph.output_ports]
        return [np.concatenate([r[p] for r in results]) for p in graph.output_ports]

    def close(self) -> None:
        """Gives the compiled graph back to the pool (waits for a run in progress); idempotent."""
        with self._lock:
            self._graph = None
        self._finalizer()


class OpenVINORuntime:
    name = "openvino"
    # Loads may run in parallel threads: the pool is locked and compile_model releases the GIL.
    parallel_load = True

    def __init__(self, num_threads: int = 1, precision: str | None = None, pool: ModelPool | None = None) -> None:
        if precision is not None and precision not in PRECISIONS:
            raise InputError("pose.openvino_precision", "unknown openvino precision", limit=list(PRECISIONS),
                             actual=precision)
        self.num_threads = num_threads
        self.precision = precision or resolve_precision()
        self.pool = pool if pool is not None else DEFAULT_POOL

    def load(self, model_path: pathlib.Path, unused_outputs: Collection[str] = ()) -> OpenVINOModel:
        path = pathlib.Path(model_path)
        graph = self.pool.acquire(path, tuple(sorted(unused_outputs)), self.precision, self.num_threads)
        return OpenVINOModel(graph, self.pool)


def make_runtime(num_threads: int = 1) -> OpenVINORuntime:
    """Entry point used by `services.pose.runtime.get_runtime("openvino")`."""
    return OpenVINORuntime(num_threads=num_threads)
