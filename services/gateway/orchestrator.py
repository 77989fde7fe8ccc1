"""The one orchestrator shared by the embedded CLI (`motionctl animate`) and the gateway (mesh mode).

pose -> rig -> retarget -> render (fanned out by frame range over the render workers) -> join.
Stages are reached through the `Stages` interface: `InProcessStages` calls the domain code directly,
`GrpcStages` calls the services' stubs. Both exchange object-store references, never media, so the
orchestration (caching, fan-out, retries, joining) is the same code in both modes.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import functools
import hashlib
import json
import logging
import pathlib
import queue
import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc

from motion.errors import (
    FailedPreconditionError,
    InputError,
    MotionError,
    ResourceExhaustedError,
    UnavailableError,
)
from motion.fingerprint import stage_digest
from motion.v1 import (
    common_pb2,
    pose_service_pb2,
    pose_service_pb2_grpc,
    render_service_pb2,
    render_service_pb2_grpc,
    retarget_service_pb2,
    retarget_service_pb2_grpc,
)
from services.gateway import metrics

log = logging.getLogger("motion.gateway.orchestrator")

ObjectRef = common_pb2.ObjectRef

# Metadata key carrying the shared secret internal services require (checked by motion.grpcutil).
INTERNAL_TOKEN_METADATA = "x-motion-internal-token"  # == motion.grpcutil.TOKEN_METADATA_KEY
RENDER_SERVICE_NAME = render_service_pb2.DESCRIPTOR.services_by_name["RenderService"].full_name

TRANSIENT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)

# Frames per render range. Fixed (not derived from the worker count) so the embedded and the mesh
# runs cut the video at the same frames and produce the same segments, hence the same output. Each range
# costs a GL context, an encoder start and a keyframe (~0.1 s of CPU on a laptop core), so ranges are
# ~2 s of video: a 10 s clip still spreads over 5 render workers.
DEFAULT_FRAMES_PER_RANGE = 64
# Output limits of the orientation modes (product spec).
VIDEO_MODE_MAX_S = 30.0
IMAGE_MODE_MAX_S = 10.0

ProgressFn = Callable[[str, int, int, str], None]


class Cancelled(MotionError):
    """The job was cancelled while running."""

    code = grpc.StatusCode.CANCELLED


class StageError(MotionError):
    """A stage failed with a non-transient status (or ran out of retries); keeps the remote code."""

    def __init__(self, message: str, code: grpc.StatusCode, **details: Any) -> None:
        super().__init__(message, **details)
        self.code = code


@dataclass(frozen=True)
class AnimateOptions:
    """Everything a job asks for, in the product spec's terms (mirrors motion.v1.JobOptions)."""

    orientation: str = "video"  # "video" | "image"
    resolution: str = "720p"  # "720p" | "1080p"
    background: str = "keep"  # "keep" | "solid:#RRGGBB" | "transparent" | "image" (see background_image)
    background_image: str = ""  # object key of the background picture when background == "image"
    width: int = 0
    height: int = 0
    keep_original_sound: bool = True
    loop: bool = False
    track_id: int = 0
    # "" = the pose service's default (MOTION_POSE_RUNTIME: tensorrt on GPU nodes; "auto" elsewhere: openvino
    # where the CPU computes bf16 natively, else litert).
    pose_runtime: str = ""
    hands: bool = True
    face: bool = True
    smoothing: bool = True
    pin_feet: bool = True
    prompt: str = ""
    negative_prompt: str = ""
    cfg_scale: float = 0.0
    export_skeleton: bool = False
    frames_per_range: int = DEFAULT_FRAMES_PER_RANGE
    # Manual joints file for the character (object key), overriding pose detection on the image.
    joints_override: str = ""

    @property
    def pose_max_duration_s(self) -> float:
        """Poses are only needed for the orientation mode's output limit; decoding more is wasted."""
        return IMAGE_MODE_MAX_S if self.orientation == "image" else VIDEO_MODE_MAX_S

    def pose_digest(self) -> str:
        """Digest of the options that change the performer's skeleton (skeleton cache key part)."""
        part = {
            "runtime": self.pose_runtime, "hands": self.hands, "face": self.face,
            "smoothing": self.smoothing, "track_id": self.track_id, "max_duration_s": self.pose_max_duration_s,
        }
        return hashlib.sha256(json.dumps(part, sort_keys=True).encode()).hexdigest()[:16]

    def ignored_options(self) -> list[str]:
        """Options the deterministic renderer accepts but cannot honour (reported on the job)."""
        out = []
        if self.prompt:
            out.append("prompt")
        if self.negative_prompt:
            out.append("negative_prompt")
        if self.cfg_scale:
            out.append("cfg_scale")
        return out


@dataclass
class RetargetResult:
    skeleton: ObjectRef
    frame_count: int
    trimmed_s: float = 0.0
    warnings: list[str] = field(default_factory=list)


@dataclass
class RigResult:
    rig: ObjectRef
    warnings: list[str] = field(default_factory=list)


@dataclass
class OrchestratorResult:
    result: ObjectRef
    frame_count: int
    trimmed_s: float
    warnings: list[str]
    ignored_options: list[str]
    skeleton_cache_hit: bool
    rig_cache_hit: bool
    ranges: int
    range_retries: int
    rig: ObjectRef
    retargeted: ObjectRef
    skeleton_export: ObjectRef | None = None
    # Seconds each stage ran in this job (cache hits absent); rig and pose overlap, so they need not add up.
    stage_s: dict[str, float] = field(default_factory=dict)


class Stages(Protocol):
    """The four stage calls; refs point into the object store shared by every stage.

    Optional hooks, used when a stages object has them: ``prepare_render(rig, opts)`` once the rig exists
    (InProcessStages opens its render threads' renderers then) and ``worker_finished(worker)`` from each
    render thread when it has no more ranges.
    """

    def extract_pose(self, video: ObjectRef, opts: AnimateOptions, progress: ProgressFn | None = None) -> ObjectRef:
        ...

    def build_rig(self, image: ObjectRef, joints: ObjectRef | None = None) -> RigResult:
        ...

    def retarget(self, skeleton: ObjectRef, rig: ObjectRef, opts: AnimateOptions) -> RetargetResult:
        ...

    def render_range(
        self, rig: ObjectRef, skeleton: ObjectRef, opts: AnimateOptions, start: int, end: int, worker: int,
        cancel: threading.Event | None = None,
    ) -> ObjectRef:
        ...

    def render_workers(self) -> int:
        ...


# ---------------------------------------------------------------------------------------------------------
# In-process stages (embedded mode, and the worker side of tests)
# ---------------------------------------------------------------------------------------------------------


class InProcessStages:
    """Calls the domain code directly; used by `motionctl animate` (local-directory store)."""

    def __init__(self, store: Any, *, model_dir: pathlib.Path | None = None, workers: int = 1,
                 render_threads: bool = False) -> None:
        """``render_threads``: ranges render on this object's own threads, one per worker, which open their
        Renderer in ``prepare_render`` (as soon as the rig exists, while pose still runs) and keep it across
        ranges; for one job at a time (`motionctl animate`), not for a gateway running several jobs on one
        stages object."""
        self.store = store
        self.model_dir = model_dir
        self._workers = max(1, workers)
        self._render: Any = None
        self._threads: list[concurrent.futures.ThreadPoolExecutor] | None = (
            [concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"render-{w}")
             for w in range(self._workers)] if render_threads else None)

    def render_workers(self) -> int:
        return self._workers

    def extract_pose(self, video: ObjectRef, opts: AnimateOptions, progress: ProgressFn | None = None) -> ObjectRef:
        # The services' domain workers (no gRPC in them): the same code and store keys as the mesh.
        from services.pose.pipeline import PoseOptions
        from services.pose.service import PoseWorker

        worker = PoseWorker(self.store, model_dir=self.model_dir)
        popts = PoseOptions(
            runtime=opts.pose_runtime or worker.default_runtime, hands=opts.hands, face=opts.face,
            smoothing=opts.smoothing, track_id=opts.track_id, min_detection_confidence=0.5, min_tracking_confidence=0.5,
            max_duration_s=opts.pose_max_duration_s,
        )
        result = worker.extract_video(
            video, popts, progress=(lambda d, t: progress("pose", d, t, "")) if progress else None
        )
        return result.skeleton

    def build_rig(self, image: ObjectRef, joints: ObjectRef | None = None) -> RigResult:
        worker = self._render_worker()
        res = worker.build_rig(image, joints if joints is not None and joints.key else None)
        # The same worker renders the ranges: its mesh/skin model is built now, while the pose stage runs
        # (the orchestrator builds the rig in parallel with it), rather than ahead of the first range.
        worker.warm(res.rig)
        return RigResult(rig=res.rig, warnings=list(res.warnings))

    def retarget(self, skeleton: ObjectRef, rig: ObjectRef, opts: AnimateOptions) -> RetargetResult:
        from services.retarget.retarget import RetargetOptions
        from services.retarget.service import RetargetWorker

        out = RetargetWorker(self.store).retarget(
            skeleton, rig, RetargetOptions(orientation=opts.orientation, loop=opts.loop, pin_feet=opts.pin_feet)
        )
        return RetargetResult(skeleton=out.skeleton, frame_count=out.frame_count, trimmed_s=out.trimmed_s,
                              warnings=list(out.warnings))

    def prepare_render(self, rig: ObjectRef, opts: AnimateOptions) -> None:
        """With ``render_threads``: each render thread opens its Renderer for this rig and these options now
        (a GL context, textures and shaders: ~0.1-0.3 s before a first frame), while the job's pose and
        retarget stages still run. A failure here is left to the first range, which makes the same call and
        reports it."""
        if self._threads is None:
            return
        worker, options = self._render_worker(), render_options_pb(opts)
        for pool in self._threads:
            pool.submit(contextvars.copy_context().run, worker.prepare_thread_renderer, rig, options)

    def render_range(
        self, rig: ObjectRef, skeleton: ObjectRef, opts: AnimateOptions, start: int, end: int, worker: int,
        cancel: threading.Event | None = None,
    ) -> ObjectRef:
        if self._threads is not None:
            pool = self._threads[worker % len(self._threads)]
            return pool.submit(contextvars.copy_context().run, self._render_here, rig, skeleton, opts, start,
                               end).result()
        return self._render_here(rig, skeleton, opts, start, end)

    def _render_here(self, rig: ObjectRef, skeleton: ObjectRef, opts: AnimateOptions, start: int,
                     end: int) -> ObjectRef:
        # This thread keeps its Renderer for its next range (released in worker_finished).
        res = self._render_worker().render_range(rig, skeleton, render_options_pb(opts), start, end,
                                                 keep_renderer=True)
        segment: ObjectRef = res.segment
        return segment

    def worker_finished(self, worker: int) -> None:
        """Called by each orchestrator render thread when it has no more ranges (in that thread): the thread
        that rendered them lets its Renderer go."""
        if self._render is None:
            return
        if self._threads is not None:
            self._threads[worker % len(self._threads)].submit(self._render.release_thread_renderer).result()
        else:
            self._render.release_thread_renderer()

    def close(self) -> None:
        """Lets the render threads' Renderers go and stops the threads (``render_threads`` only)."""
        threads, self._threads = self._threads, None
        for pool in threads or ():
            if self._render is not None:
                pool.submit(self._render.release_thread_renderer)
            pool.shutdown(wait=True)

    def _render_worker(self) -> Any:
        # One worker per stages object: it keeps the rig models of recent characters in memory.
        if self._render is None:
            from services.render.service import RenderWorker

            self._render = RenderWorker(self.store, model_dir=self.model_dir, max_parallel=self._workers)
        return self._render


# ---------------------------------------------------------------------------------------------------------
# gRPC stages (mesh mode)
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 5.0
    multiplier: float = 2.0

    def delays_s(self) -> Iterator[float]:
        delay = self.initial_backoff_s
        for _ in range(self.attempts - 1):
            # Full jitter: replicas that failed together do not retry together.
            yield random.uniform(0.5 * delay, delay)
            delay = min(self.max_backoff_s, delay * self.multiplier)


def _error_from_rpc(exc: grpc.RpcError, stage: str) -> MotionError:
    """The typed error the service raised (rule, limit, actual survive the hop), with its status code."""
    from motion.grpcutil import error_from_rpc

    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    err = error_from_rpc(exc)
    if type(err) is MotionError:
        return StageError(f"{stage}: {err.message}", code, stage=stage)
    return err


def call_with_retry(
    fn: Callable[[], Any], *, stage: str, policy: RetryPolicy, cancel: threading.Event | None = None
) -> Any:
    """Runs fn, retrying with exponential backoff on transient status codes only."""
    delays = policy.delays_s()
    while True:
        try:
            return fn()
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            delay = next(delays, None) if code in TRANSIENT_CODES else None
            if delay is None or (cancel is not None and cancel.is_set()):
                raise _error_from_rpc(exc, stage) from exc
            log.warning("stage %s: transient %s, retrying in %.2fs", stage, code, delay)
            if cancel is not None and cancel.wait(delay):
                raise Cancelled(f"{stage}: cancelled") from exc
            if cancel is None:
                time.sleep(delay)


def pose_options_pb(opts: AnimateOptions) -> pose_service_pb2.PoseOptions:
    runtime = {
        "litert": pose_service_pb2.POSE_RUNTIME_LITERT,
        "torch": pose_service_pb2.POSE_RUNTIME_TORCH,
        "tensorrt": pose_service_pb2.POSE_RUNTIME_TENSORRT,
        "openvino": pose_service_pb2.POSE_RUNTIME_OPENVINO,
    }.get(opts.pose_runtime, pose_service_pb2.POSE_RUNTIME_UNSPECIFIED)
    return pose_service_pb2.PoseOptions(
        runtime=runtime, hands=opts.hands, face=opts.face, smoothing=opts.smoothing, track_id=opts.track_id,
        min_detection_confidence=0.5, min_tracking_confidence=0.5, max_duration_s=opts.pose_max_duration_s,
    )


def render_options_pb(opts: AnimateOptions) -> render_service_pb2.RenderOptions:
    res = common_pb2.RESOLUTION_1080P if opts.resolution == "1080p" else common_pb2.RESOLUTION_720P
    bg = render_service_pb2.Background(mode=render_service_pb2.BACKGROUND_MODE_KEEP)
    if opts.background.startswith("solid:"):
        bg = render_service_pb2.Background(mode=render_service_pb2.BACKGROUND_MODE_SOLID,
                                           color=opts.background.split(":", 1)[1])
    elif opts.background == "transparent":
        bg = render_service_pb2.Background(mode=render_service_pb2.BACKGROUND_MODE_TRANSPARENT)
    elif opts.background == "image":
        bg = render_service_pb2.Background(mode=render_service_pb2.BACKGROUND_MODE_IMAGE,
                                           image=ObjectRef(key=opts.background_image))
    return render_service_pb2.RenderOptions(resolution=res, background=bg, width=opts.width, height=opts.height)


@dataclass(frozen=True)
class GrpcDeadlines:
    pose_s: float = 900.0
    rig_s: float = 300.0
    retarget_s: float = 120.0
    render_range_s: float = 600.0


class GrpcStages:
    """Calls PoseService / RetargetService / RenderService over gRPC with deadlines and retries."""

    def __init__(
        self,
        pose: grpc.Channel,
        retarget: grpc.Channel,
        render: Sequence[grpc.Channel],
        *,
        internal_token: str = "",
        deadlines: GrpcDeadlines | None = None,
        retry: RetryPolicy | None = None,
        render_retry: RetryPolicy | None = None,
        ray_serve: bool = False,
    ) -> None:
        if not render:
            raise FailedPreconditionError("at least one render worker is required", limit=1, actual=0)
        self._pose = pose_service_pb2_grpc.PoseServiceStub(pose)
        self._retarget = retarget_service_pb2_grpc.RetargetServiceStub(retarget)
        self._render = [render_service_pb2_grpc.RenderServiceStub(ch) for ch in render]
        self._render_channels = list(render)
        self._ray_serve = ray_serve
        base: tuple[tuple[str, str], ...] = ((INTERNAL_TOKEN_METADATA, internal_token),) if internal_token else ()
        # Behind Ray Serve's gRPC ingress every service shares one port; `application` picks the app.
        self._md = {
            name: base + ((("application", name),) if ray_serve else ()) for name in ("pose", "retarget", "render")
        }
        self.deadlines = deadlines or GrpcDeadlines()
        self.retry = retry or RetryPolicy()
        # A range that keeps failing on one worker should move on quickly: the orchestrator retries it
        # on another worker, so few same-worker attempts.
        self.render_retry = render_retry or RetryPolicy(attempts=2, initial_backoff_s=0.2)

    @classmethod
    def connect(
        cls, pose_addr: str, retarget_addr: str, render_addrs: Sequence[str], **kw: Any
    ) -> GrpcStages:
        from motion.grpcutil import MAX_MESSAGE_BYTES

        # Plain channels: retries with backoff are done per stage here (and move render ranges between
        # workers), so no channel-level retry policy underneath.
        def channel(addr: str) -> grpc.Channel:
            return grpc.insecure_channel(addr, options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                                                        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)])

        return cls(channel(pose_addr), channel(retarget_addr), [channel(a) for a in render_addrs], **kw)

    def render_workers(self) -> int:
        return len(self._render)

    def render_health(self, timeout_s: float = 2.0) -> int:
        """How many render addresses answer healthy now: grpc.health.v1 SERVING for the render service on
        standalone workers; Serve's own Healthz on a Ray Serve ingress (which has no grpc.health.v1)."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        healthy = 0
        for ch in self._render_channels:
            try:
                if self._ray_serve:
                    healthz = ch.unary_unary("/ray.serve.RayServeAPIService/Healthz",
                                             request_serializer=lambda b: b, response_deserializer=lambda b: b)
                    healthz(b"", timeout=timeout_s)
                    healthy += 1
                    continue
                resp = health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(service=RENDER_SERVICE_NAME), timeout=timeout_s)
                healthy += int(resp.status == health_pb2.HealthCheckResponse.SERVING)
            except grpc.RpcError:
                # Down, starting or draining: not healthy, and the next poll asks again.
                continue
        return healthy

    def extract_pose(self, video: ObjectRef, opts: AnimateOptions, progress: ProgressFn | None = None) -> ObjectRef:
        req = pose_service_pb2.ExtractVideoRequest(video=video, options=pose_options_pb(opts))

        def call() -> ObjectRef:
            last: pose_service_pb2.ExtractVideoResponse | None = None
            for msg in self._pose.StreamExtractVideo(req, timeout=self.deadlines.pose_s,
                                                     metadata=self._md["pose"]):
                last = msg
                if progress is not None and msg.HasField("progress"):
                    progress("pose", msg.progress.done, msg.progress.total, msg.progress.message)
            if last is None or not last.skeleton.key:
                raise StageError("pose: stream ended without a skeleton", grpc.StatusCode.INTERNAL)
            return last.skeleton

        return call_with_retry(call, stage="pose", policy=self.retry)

    def build_rig(self, image: ObjectRef, joints: ObjectRef | None = None) -> RigResult:
        req = render_service_pb2.BuildRigRequest(image=image, joints_override=joints)
        # Any render worker can build the rig; spread the first attempt, rotate on retries.
        order = list(range(len(self._render)))
        start = int(hashlib.sha256(image.key.encode()).hexdigest(), 16) % len(order)
        order = order[start:] + order[:start]
        last_exc: MotionError | None = None
        for idx in order:
            stub = self._render[idx]
            try:
                resp = call_with_retry(
                    functools.partial(stub.BuildRig, req, timeout=self.deadlines.rig_s, metadata=self._md["render"]),
                    stage="rig", policy=self.render_retry,
                )
                return RigResult(rig=resp.rig, warnings=list(resp.warnings))
            except (UnavailableError, ResourceExhaustedError) as exc:
                last_exc = exc
            except StageError as exc:
                if exc.code not in TRANSIENT_CODES:
                    raise
                last_exc = exc
        if last_exc is None:
            raise UnavailableError("rig: no render worker")
        raise last_exc

    def retarget(self, skeleton: ObjectRef, rig: ObjectRef, opts: AnimateOptions) -> RetargetResult:
        orientation = common_pb2.ORIENTATION_IMAGE if opts.orientation == "image" else common_pb2.ORIENTATION_VIDEO
        req = retarget_service_pb2.RetargetRequest(
            skeleton=skeleton, rig=rig,
            options=retarget_service_pb2.RetargetOptions(orientation=orientation, loop=opts.loop,
                                                         pin_feet=opts.pin_feet),
        )
        resp = call_with_retry(
            lambda: self._retarget.Retarget(req, timeout=self.deadlines.retarget_s, metadata=self._md["retarget"]),
            stage="retarget", policy=self.retry,
        )
        return RetargetResult(skeleton=resp.skeleton, frame_count=resp.frame_count, trimmed_s=resp.trimmed_s,
                              warnings=list(resp.warnings))

    def render_range(
        self, rig: ObjectRef, skeleton: ObjectRef, opts: AnimateOptions, start: int, end: int, worker: int,
        cancel: threading.Event | None = None,
    ) -> ObjectRef:
        stub = self._render[worker % len(self._render)]
        req = render_service_pb2.RenderRangeRequest(
            rig=rig, skeleton=skeleton, options=render_options_pb(opts), start_frame=start, end_frame=end
        )

        def call() -> ObjectRef:
            stream = stub.RenderRange(req, timeout=self.deadlines.render_range_s, metadata=self._md["render"])
            segment: ObjectRef | None = None
            for msg in stream:
                if cancel is not None and cancel.is_set():
                    stream.cancel()
                    raise Cancelled("render: cancelled")
                if msg.HasField("segment") and msg.segment.key:
                    segment = msg.segment
            if segment is None:
                raise StageError("render: stream ended without a segment", grpc.StatusCode.INTERNAL)
            return segment

        return call_with_retry(call, stage="render", policy=self.render_retry, cancel=cancel)


# ---------------------------------------------------------------------------------------------------------
# The orchestrator
# ---------------------------------------------------------------------------------------------------------


def frame_ranges(frame_count: int, frames_per_range: int) -> list[tuple[int, int]]:
    """Half-open [start, end) ranges of at most frames_per_range frames covering the sequence.

    The ranges are as equal as possible and, when there is more than one, an even number of them: workers
    come in pairs (an embedded run renders two ranges at once), and a short last range rendered alone left
    one of two cores idle (300 frames: 64,64,64,64,44 -> six of 50). The split depends only on the frame
    count and frames_per_range, so a mesh job and an embedded run cut the same segments.
    """
    if frames_per_range <= 0:
        raise InputError("render.frames_per_range", "must be positive", limit=">0", actual=frames_per_range)
    if frame_count <= 0:
        return []
    n = -(-frame_count // frames_per_range)
    if n > 1 and n % 2:
        n = min(n + 1, frame_count)
    bounds = [frame_count * k // n for k in range(n + 1)]
    return [(bounds[k], bounds[k + 1]) for k in range(n)]


@contextlib.contextmanager
def _timed(stage: str, into: dict[str, float] | None = None) -> Iterator[None]:
    t0 = time.monotonic()
    try:
        yield
    finally:
        elapsed = time.monotonic() - t0
        metrics.STAGE_DURATION_S.labels(stage).observe(elapsed)
        if into is not None:
            into[stage] = into.get(stage, 0.0) + elapsed


def _sha256_of(store: Any, ref: ObjectRef) -> str:
    if ref.sha256:
        return ref.sha256
    h = hashlib.sha256()
    h.update(store.get_bytes(ref))
    return h.hexdigest()


class Orchestrator:
    """Runs a job's stages; caches skeletons by video hash + options and rigs by image hash."""

    def __init__(self, stages: Stages, store: Any, *, max_range_attempts: int = 4) -> None:
        self.stages = stages
        self.store = store
        self.max_range_attempts = max_range_attempts

    # ---- cache index: small objects pointing at a stage's output ref --------------------------------
    def _cache_get(self, key: str) -> ObjectRef | None:
        if not self.store.exists(key):
            return None
        ref = ObjectRef()
        ref.ParseFromString(self.store.get_bytes(key))
        # The index could outlive its target (manual cleanup): verify before trusting it.
        return ref if ref.key and self.store.exists(ref.key) else None

    def _cache_put(self, key: str, ref: ObjectRef) -> None:
        self.store.put_bytes(key, ref.SerializeToString(deterministic=True),
                             content_type="application/x-protobuf")

    def skeleton_cache_key(self, video_sha: str, opts: AnimateOptions) -> str:
        return f"cache/skeletons/{video_sha}/{opts.pose_digest()}-{stage_digest('pose')}"

    def rig_cache_key(self, image_sha: str, joints_sha: str = "") -> str:
        return f"cache/rigs/{image_sha}-{stage_digest('rig')}" + (f"-{joints_sha[:16]}" if joints_sha else "")

    def segment_cache_key(
        self, rig: ObjectRef, skeleton: ObjectRef, opts: AnimateOptions, start: int, end: int
    ) -> str:
        render_part = render_options_pb(opts).SerializeToString(deterministic=True)
        digest = hashlib.sha256(
            b"\x00".join([rig.key.encode(), skeleton.key.encode(), render_part, f"{start}:{end}".encode(),
                          stage_digest("render").encode()])
        ).hexdigest()
        return f"cache/segments/{digest[:2]}/{digest}"

    def run(
        self,
        image: ObjectRef,
        video: ObjectRef,
        opts: AnimateOptions,
        *,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
        output_path: pathlib.Path | None = None,
    ) -> OrchestratorResult:
        cancel = cancel or threading.Event()
        report: ProgressFn = progress or (lambda stage, done, total, msg: None)

        def check_cancel() -> None:
            if cancel.is_set():
                raise Cancelled("job cancelled")

        video_sha = _sha256_of(self.store, video)
        image_sha = _sha256_of(self.store, image)

        stage_s: dict[str, float] = {}
        check_cancel()
        # The character's rig does not depend on the video: it is built while the pose stage runs (each
        # stage uses about one core on a laptop's two, and they are separate services in the mesh).
        joints = ObjectRef(key=opts.joints_override) if opts.joints_override else None
        joints_sha = _sha256_of(self.store, joints) if joints is not None else ""
        rig_key = self.rig_cache_key(image_sha, joints_sha)
        rig = self._cache_get(rig_key)
        rig_hit = rig is not None
        rig_future: concurrent.futures.Future[RigResult] | None = None
        if rig is None:
            metrics.CACHE_MISSES.labels("rig").inc()
            report("rig", 0, 1, "")
            pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="rig")
            # A copy of the caller's context so the rig stage's log lines keep the job id.
            rig_future = pool.submit(contextvars.copy_context().run, self._build_rig, image, joints, stage_s)
            pool.shutdown(wait=False)
        else:
            metrics.CACHE_HITS.labels("rig").inc()
        # Stages that render on their own threads open their renderers as soon as the rig exists, while pose
        # (and the retarget after it) still run: ~0.1-0.3 s of GL setup off the path to the first frame.
        prepare = getattr(self.stages, "prepare_render", None)
        if prepare is not None:
            if rig_future is None:
                prepare(rig, opts)
            else:
                rig_future.add_done_callback(
                    lambda f: None if f.cancelled() or f.exception() is not None else prepare(f.result().rig, opts))

        report("pose", 0, 1, "")
        skel_key = self.skeleton_cache_key(video_sha, opts)
        performer = self._cache_get(skel_key)
        skeleton_hit = performer is not None
        try:
            if performer is None:
                metrics.CACHE_MISSES.labels("skeleton").inc()
                with _timed("pose", stage_s):
                    performer = self.stages.extract_pose(video, opts, report)
                self._cache_put(skel_key, performer)
            else:
                metrics.CACHE_HITS.labels("skeleton").inc()
        except BaseException:
            if rig_future is not None:
                rig_future.cancel()  # the job fails on the pose error; a rig already under way finishes alone
            raise
        report("pose", 1, 1, "cache hit" if skeleton_hit else "")

        check_cancel()
        warnings: list[str] = []
        if rig_future is not None:
            rig_result = rig_future.result()
            rig = rig_result.rig
            warnings.extend(rig_result.warnings)
            self._cache_put(rig_key, rig)
        assert rig is not None  # noqa: S101 - for mypy: from the cache or from the stage
        report("rig", 1, 1, "cache hit" if rig_hit else "")

        check_cancel()
        report("retarget", 0, 1, "")
        with _timed("retarget", stage_s):
            rt = self.stages.retarget(performer, rig, opts)
        warnings.extend(w for w in rt.warnings if w not in warnings)
        report("retarget", 1, 1, f"trimmed {rt.trimmed_s:.2f}s" if rt.trimmed_s > 0 else "")
        if rt.frame_count <= 0:
            raise InputError("pose.no_person", "no frames to render after retargeting", limit=">=1", actual=0)

        check_cancel()
        ranges = frame_ranges(rt.frame_count, opts.frames_per_range)
        with _timed("render", stage_s):
            segments, retries = self._render_ranges(rig, rt.skeleton, opts, ranges, rt.frame_count, report, cancel)
        metrics.FRAMES_RENDERED.inc(rt.frame_count)

        check_cancel()
        report("join", 0, 1, "")
        with _timed("join", stage_s):
            result = self._join(segments, video, opts, output_path)
        report("join", 1, 1, "")
        return OrchestratorResult(
            result=result, frame_count=rt.frame_count, trimmed_s=rt.trimmed_s, warnings=warnings,
            ignored_options=opts.ignored_options(), skeleton_cache_hit=skeleton_hit, rig_cache_hit=rig_hit,
            ranges=len(ranges), range_retries=retries, rig=rig, retargeted=rt.skeleton,
            skeleton_export=rt.skeleton if opts.export_skeleton else None, stage_s=stage_s,
        )

    def _build_rig(self, image: ObjectRef, joints: ObjectRef | None, stage_s: dict[str, float]) -> RigResult:
        with _timed("rig", stage_s):
            return self.stages.build_rig(image, joints)

    def _render_ranges(
        self,
        rig: ObjectRef,
        skeleton: ObjectRef,
        opts: AnimateOptions,
        ranges: list[tuple[int, int]],
        frame_count: int,
        report: ProgressFn,
        cancel: threading.Event,
    ) -> tuple[list[ObjectRef], int]:
        """Renders every range on the available workers; a range that fails on one moves to another."""
        n_workers = max(1, self.stages.render_workers())
        pending: queue.Queue[int] = queue.Queue()
        for i in range(len(ranges)):
            pending.put(i)
        results: dict[int, ObjectRef] = {}
        failed_on: dict[int, set[int]] = {i: set() for i in range(len(ranges))}
        attempts: dict[int, int] = dict.fromkeys(range(len(ranges)), 0)
        dead: set[int] = set()
        lock = threading.Lock()
        fatal: list[BaseException] = []
        retries = 0
        frames_done = 0
        report("render", 0, frame_count, f"{len(ranges)} ranges on {n_workers} workers")

        def worker_loop(w: int) -> None:
            nonlocal retries, frames_done
            while not cancel.is_set() and not fatal:
                with lock:
                    if len(results) == len(ranges):
                        return
                try:
                    i = pending.get(timeout=0.05)
                except queue.Empty:
                    continue
                with lock:
                    alive_others = [x for x in range(n_workers) if x != w and x not in dead]
                    if w in failed_on[i] and any(x not in failed_on[i] for x in alive_others):
                        # Leave the range to a worker it has not failed on yet.
                        pending.put(i)
                        skip = True
                    else:
                        skip = False
                if skip:
                    time.sleep(0.02)
                    continue
                start, end = ranges[i]
                seg_key = self.segment_cache_key(rig, skeleton, opts, start, end)
                try:
                    cached = self._cache_get(seg_key)
                    if cached is not None:
                        # A resumed job (gateway restarted) keeps the ranges it had finished.
                        metrics.CACHE_HITS.labels("segment").inc()
                        ref = cached
                    else:
                        ref = self.stages.render_range(rig, skeleton, opts, start, end, w, cancel)
                        self._cache_put(seg_key, ref)
                except Cancelled:
                    return
                except (UnavailableError, ResourceExhaustedError, StageError) as exc:
                    transient = not isinstance(exc, StageError) or exc.code in TRANSIENT_CODES
                    with lock:
                        attempts[i] += 1
                        failed_on[i].add(w)
                        if not transient or attempts[i] >= self.max_range_attempts:
                            fatal.append(exc)
                            return
                        retries += 1
                        metrics.RANGE_RETRIES.inc()
                        if isinstance(exc, UnavailableError):
                            dead.add(w)
                        all_dead = len(dead) >= n_workers
                    log.warning("render range %d-%d failed on worker %d (%s); retrying elsewhere",
                                start, end, w, exc)
                    pending.put(i)
                    if all_dead:
                        # Every worker looked down: clear the marks and keep trying (bounded by attempts).
                        with lock:
                            dead.clear()
                    if w in dead:
                        # Back off this worker; it may come back (restarted pod) and rejoin later.
                        cancel.wait(1.0)
                        with lock:
                            dead.discard(w)
                    continue
                except BaseException as exc:  # non-transient: fail the job with its own error
                    with lock:
                        fatal.append(exc)
                    return
                with lock:
                    results[i] = ref
                    frames_done += end - start
                    done = frames_done
                report("render", done, frame_count, "")

        def worker_main(w: int) -> None:
            try:
                worker_loop(w)
            finally:
                # In-process stages keep per-thread render state (a GL context) between ranges.
                finished = getattr(self.stages, "worker_finished", None)
                if finished is not None:
                    finished(w)

        # Each thread gets a copy of the caller's context so log lines keep the job id.
        threads = [threading.Thread(target=contextvars.copy_context().run, args=(worker_main, w),
                                    name=f"render-{w}", daemon=True)
                   for w in range(min(n_workers, len(ranges)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if cancel.is_set():
            raise Cancelled("job cancelled")
        if fatal:
            raise fatal[0]
        if len(results) != len(ranges):
            raise UnavailableError("render: not every range was rendered", limit=len(ranges), actual=len(results))
        return [results[i] for i in range(len(ranges))], retries

    def _join(
        self, segments: list[ObjectRef], video: ObjectRef, opts: AnimateOptions, output_path: pathlib.Path | None
    ) -> ObjectRef:
        from motion.media import concat_segments

        ext = ".webm" if opts.background == "transparent" else ".mp4"
        content_type = "video/webm" if ext == ".webm" else "video/mp4"
        with tempfile.TemporaryDirectory(prefix="motion-join-") as tmp_s:
            tmp = pathlib.Path(tmp_s)
            paths = []
            for i, seg in enumerate(segments):
                paths.append(self.store.get_file(seg, tmp / f"seg{i:05d}{ext}"))
            audio_from = None
            # A loop's end blends into its start: the reference audio would not fit it.
            if opts.keep_original_sound and not opts.loop:
                audio_from = self.store.get_file(video, tmp / ("reference" + pathlib.Path(video.key).suffix))
            out = tmp / f"result{ext}"
            concat_segments(paths, out, audio_from=audio_from)
            data = out.read_bytes()
            if output_path is not None:
                from motion.storage.atomic import atomic_write_bytes

                atomic_write_bytes(pathlib.Path(output_path), data)
            return self.store.put_content_addressed(data, "results", ext, content_type)
