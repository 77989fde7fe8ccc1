"""gRPC adapter of the render service, plus the store-facing domain code it calls (`RenderWorker`).

- BuildRig: character image (object ref) -> stored ``CharacterRig``; cached by image content hash and
  joints override under ``rigs/index/<image sha>/<override sha or "auto">.json``.
- RenderRange: rig + retargeted skeleton + options + [start, end) -> encoded MP4 segment in the store
  (``segments/<digest>/<start>-<end>.mp4``), streaming progress. Segments carry no audio: the gateway joins
  them with ``motion.media.concat_segments`` and adds the reference audio once.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import queue
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from motion.errors import InputError
from motion.fingerprint import stage_digest
from motion.rig import CharacterRig
from motion.skeleton import SkeletonSequence
from motion.storage import BaseStore
from motion.telemetry import counter
from motion.v1 import common_pb2, render_service_pb2, render_service_pb2_grpc
from services.render.layers import RigModel, build_rig_model
from services.render.renderer import Renderer, RenderOptions, render_video

SERVICE_NAME = render_service_pb2.DESCRIPTOR.services_by_name["RenderService"].full_name
RIG_INDEX_PREFIX = "rigs/index"
SEGMENT_PREFIX = "segments"
RENDER_VERSION = 1
_RESOLUTIONS = {common_pb2.RESOLUTION_UNSPECIFIED: "720p", common_pb2.RESOLUTION_720P: "720p",
                common_pb2.RESOLUTION_1080P: "1080p"}

ProgressFn = Callable[[int, int], None]
# Frames rendered and encoded by this worker (cached segments are not counted: no work was done for them).
FRAMES = counter("render", "frames", "Frames rendered and encoded")


@dataclass
class RigResult:
    rig: common_pb2.ObjectRef
    cache_hit: bool
    warnings: list[str]


@dataclass
class SegmentResult:
    segment: common_pb2.ObjectRef
    frame_count: int
    cache_hit: bool


def _suffix(ref: common_pb2.ObjectRef, default: str) -> str:
    suffix = pathlib.PurePosixPath(ref.key).suffix.lower()
    return suffix if suffix else default


class RenderWorker:
    """Domain side of the service: reads inputs from the store, analyses and renders, stores results."""

    def __init__(self, store: BaseStore, model_dir: str | pathlib.Path | None = None, max_parallel: int = 1,
                 rig_cache_size: int = 4) -> None:
        self.store = store
        self.model_dir = model_dir
        # Rendering + encoding already keep both cores busy; parallel renders would only add memory.
        self._slots = threading.Semaphore(max_parallel)
        self._models: OrderedDict[str, tuple[CharacterRig, RigModel]] = OrderedDict()
        self._models_lock = threading.Lock()
        self._rig_cache_size = rig_cache_size
        # Parsed skeletons by key (content-addressed, so immutable): a job's ranges share one parse.
        self._sequences: OrderedDict[str, SkeletonSequence] = OrderedDict()
        # One load per key at a time: a job's first ranges start together, and two threads parsing the same
        # skeleton (~0.1 s of GIL-bound Python each) or building the same model only wait on each other.
        self._loading: dict[tuple[str, str], threading.Lock] = {}
        self._local = threading.local()  # a Renderer kept per thread (render_range(keep_renderer=True))

    def _cached(self, cache: OrderedDict[str, Any], kind: str, key: str, load: Callable[[], Any]) -> Any:
        with self._models_lock:
            hit = cache.get(key)
            if hit is not None:
                cache.move_to_end(key)
                return hit
            gate = self._loading.setdefault((kind, key), threading.Lock())
        with gate:
            with self._models_lock:
                hit = cache.get(key)
                if hit is not None:
                    return hit
            try:
                value = load()
                with self._models_lock:
                    cache[key] = value
                    while len(cache) > self._rig_cache_size:
                        cache.popitem(last=False)
            finally:
                with self._models_lock:
                    self._loading.pop((kind, key), None)
        return value

    # ---- rigs -----------------------------------------------------------------------------------------
    def build_rig(self, image: common_pb2.ObjectRef, joints_override: common_pb2.ObjectRef | None) -> RigResult:
        from services.pose.pipeline import PoseExtractor, PoseOptions
        from services.render.character import analyse_character

        if not image.key:
            raise InputError("render.image_ref", "BuildRig needs an image reference", limit="ObjectRef with a key",
                             actual="")
        with tempfile.TemporaryDirectory(prefix="rig-") as tmp:
            img_path = self.store.get_file(image, pathlib.Path(tmp) / f"image{_suffix(image, '.png')}")
            image_sha = hashlib.sha256(img_path.read_bytes()).hexdigest()
            joints_path = None
            override = "auto"
            if joints_override is not None and joints_override.key:
                joints_path = self.store.get_file(
                    joints_override, pathlib.Path(tmp) / f"joints{_suffix(joints_override, '.json')}")
                override = hashlib.sha256(joints_path.read_bytes()).hexdigest()
            index_key = f"{RIG_INDEX_PREFIX}/{image_sha}/{override}-{stage_digest('rig')}.json"
            if self.store.exists(index_key):
                doc = json.loads(self.store.get_bytes(index_key))
                ref = self.store.stat(doc["key"])
                return RigResult(ref, True, list(doc.get("warnings", [])))
            with self._slots:
                extractor = None if joints_path is not None else PoseExtractor(
                    PoseOptions(hands=True, face=True, smoothing=False), model_dir=self.model_dir)
                try:
                    rig = analyse_character(img_path, joints_override=joints_path, pose_extractor=extractor)
                finally:
                    if extractor is not None:
                        extractor.close()
            ref = rig.save(self.store)
            self.store.put_json(index_key, {"key": ref.key, "warnings": list(rig.warnings)})
            return RigResult(ref, False, list(rig.warnings))

    def warm(self, ref: common_pb2.ObjectRef) -> None:
        """Builds (and keeps) the render model of a rig ahead of its first range."""
        self._rig_and_model(ref)

    def _rig_and_model(self, ref: common_pb2.ObjectRef) -> tuple[CharacterRig, RigModel]:
        def load() -> tuple[CharacterRig, RigModel]:
            rig = CharacterRig.load(self.store, ref)
            return rig, build_rig_model(rig)

        entry: tuple[CharacterRig, RigModel] = self._cached(self._models, "rig", ref.key, load)
        return entry

    # ---- segments -------------------------------------------------------------------------------------
    def render_range(self, rig_ref: common_pb2.ObjectRef, skeleton_ref: common_pb2.ObjectRef,
                     options: render_service_pb2.RenderOptions, start: int, end: int,
                     progress: ProgressFn | None = None, keep_renderer: bool = False) -> SegmentResult:
        """Renders one range to a stored segment. ``keep_renderer``: keep this thread's Renderer (GL context,
        uploaded textures, compiled shaders: ~0.05-0.2 s to make) open for the thread's next range of the same
        rig and options; the thread must call ``release_thread_renderer`` when it is done. For a caller whose
        threads render a job's ranges one after another (the embedded orchestrator), not for gRPC's pool."""
        for label, ref in (("rig", rig_ref), ("skeleton", skeleton_ref)):
            if not ref.key:
                raise InputError(f"render.{label}_ref", f"RenderRange needs a {label} reference",
                                 limit="ObjectRef with a key", actual="")
        seq = self._sequence(skeleton_ref)
        stop = len(seq.frames) if end <= 0 else min(end, len(seq.frames))
        if start < 0 or start >= stop:
            raise InputError("render.frame_range", "empty or invalid frame range",
                             limit=f"0 <= start < {stop}", actual=[start, end])
        digest = hashlib.sha256(json.dumps({
            "v": RENDER_VERSION, "code": stage_digest("render"), "rig": rig_ref.key, "skeleton": skeleton_ref.key,
            "options": options.SerializeToString(deterministic=True).hex()}, sort_keys=True).encode()).hexdigest()
        transparent = options.background.mode == render_service_pb2.BACKGROUND_MODE_TRANSPARENT
        ext = ".webm" if transparent else ".mp4"
        key = f"{SEGMENT_PREFIX}/{digest[:32]}/{start:06d}-{stop:06d}{ext}"
        if self.store.exists(key):
            if progress is not None:
                progress(stop - start, stop - start)
            return SegmentResult(self.store.stat(key), stop - start, True)
        with tempfile.TemporaryDirectory(prefix="render-") as tmp:
            opts = self._options(options, pathlib.Path(tmp))
            rig, model = self._rig_and_model(rig_ref)
            out = pathlib.Path(tmp) / f"segment{ext}"
            with self._slots:
                kept = self._thread_renderer(rig_ref.key, options, rig, opts, model) if keep_renderer else None
                try:
                    render_video(rig, seq, out, opts, start=start, end=stop, model=model, progress=progress,
                                 renderer=kept)
                except BaseException:
                    if kept is not None:
                        self.release_thread_renderer()  # a failed range leaves nothing half-drawn behind
                    raise
            FRAMES.inc(stop - start)
            ref = self.store.put_file(key, out, content_type="video/webm" if transparent else "video/mp4")
        return SegmentResult(ref, stop - start, False)

    def prepare_thread_renderer(self, rig_ref: common_pb2.ObjectRef,
                                options: render_service_pb2.RenderOptions) -> None:
        """Opens this thread's kept Renderer (see ``render_range(keep_renderer=True)``) for a rig and options
        before the thread's first range, so a caller can make it while it still has other work to do."""
        with tempfile.TemporaryDirectory(prefix="render-") as tmp:
            opts = self._options(options, pathlib.Path(tmp))
            rig, model = self._rig_and_model(rig_ref)
            with self._slots:
                self._thread_renderer(rig_ref.key, options, rig, opts, model)

    def _thread_renderer(self, rig_key: str, options: render_service_pb2.RenderOptions, rig: CharacterRig,
                         opts: RenderOptions, model: RigModel) -> Renderer:
        key = (rig_key, options.SerializeToString(deterministic=True))
        held = getattr(self._local, "renderer", None)
        if held is not None and held[0] == key:
            renderer: Renderer = held[1]
            return renderer
        self.release_thread_renderer()
        renderer = Renderer(rig, opts, model=model)
        self._local.renderer = (key, renderer)
        return renderer

    def release_thread_renderer(self) -> None:
        """Closes the Renderer this thread kept (see ``render_range(keep_renderer=True)``), if any."""
        held = getattr(self._local, "renderer", None)
        if held is not None:
            self._local.renderer = None
            held[1].close()

    def _sequence(self, ref: common_pb2.ObjectRef) -> SkeletonSequence:
        seq: SkeletonSequence = self._cached(
            self._sequences, "skeleton", ref.key, lambda: SkeletonSequence.from_bytes(self.store.get_bytes(ref)))
        return seq

    def _options(self, msg: render_service_pb2.RenderOptions, tmp: pathlib.Path) -> RenderOptions:
        bg = msg.background
        mode = bg.mode
        if mode in (render_service_pb2.BACKGROUND_MODE_UNSPECIFIED, render_service_pb2.BACKGROUND_MODE_KEEP):
            spec = "keep"
        elif mode == render_service_pb2.BACKGROUND_MODE_SOLID:
            spec = f"solid:{bg.color}"
        elif mode == render_service_pb2.BACKGROUND_MODE_TRANSPARENT:
            spec = "transparent"
        else:
            if not bg.image.key:
                raise InputError("render.background", "image background needs an image reference",
                                 limit="ObjectRef with a key", actual="")
            path = self.store.get_file(bg.image, tmp / f"background{_suffix(bg.image, '.png')}")
            spec = f"image:{path}"
        return RenderOptions(resolution=_RESOLUTIONS.get(msg.resolution, "720p"), background=spec,
                             width=msg.width, height=msg.height)


class RenderServicer(render_service_pb2_grpc.RenderServiceServicer):
    def __init__(self, worker: RenderWorker) -> None:
        self.worker = worker

    def BuildRig(self, request: render_service_pb2.BuildRigRequest,  # noqa: N802 - gRPC name
                 context: grpc.ServicerContext) -> render_service_pb2.BuildRigResponse:
        res = self.worker.build_rig(request.image,
                                    request.joints_override if request.HasField("joints_override") else None)
        return render_service_pb2.BuildRigResponse(rig=res.rig, cache_hit=res.cache_hit, warnings=res.warnings)

    def RenderRange(self, request: render_service_pb2.RenderRangeRequest,  # noqa: N802 - gRPC name
                    context: grpc.ServicerContext) -> Iterator[render_service_pb2.RenderRangeResponse]:
        # Rendering runs in a thread so progress messages can be streamed while it works.
        q: queue.Queue[tuple[int, int] | None] = queue.Queue()
        box: dict[str, object] = {}

        def run() -> None:
            try:
                box["result"] = self.worker.render_range(
                    request.rig, request.skeleton, request.options, request.start_frame, request.end_frame,
                    progress=lambda d, t: q.put((d, t)))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the RPC thread below
                box["error"] = exc
            finally:
                q.put(None)

        thread = threading.Thread(target=run, name="render-range", daemon=True)
        thread.start()
        last = 0
        while (item := q.get()) is not None:
            done, total = item
            if done == total or done - last >= max(1, total // 20):  # at most ~20 progress messages
                last = done
                yield render_service_pb2.RenderRangeResponse(
                    progress=common_pb2.Progress(stage="render", done=done, total=total), frame_count=done)
        thread.join()
        err = box.get("error")
        if isinstance(err, BaseException):
            raise err
        res = box["result"]
        if not isinstance(res, SegmentResult):
            raise RuntimeError("render produced no result")
        yield render_service_pb2.RenderRangeResponse(
            segment=res.segment, frame_count=res.frame_count,
            progress=common_pb2.Progress(stage="render", done=res.frame_count, total=res.frame_count,
                                         message="cached" if res.cache_hit else "done"))
