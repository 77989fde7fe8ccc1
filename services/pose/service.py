"""gRPC adapter of the pose service, plus the store-facing domain code it calls (`PoseWorker`).

Results are cached in the object store under `skeletons/<video sha256>/<options digest>.pb`: the same video
with the same options is a cache hit and is not extracted again.
"""

from __future__ import annotations

import logging
import pathlib
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import grpc
import numpy as np

from motion.errors import InputError, MotionError
from motion.fingerprint import stage_digest
from motion.skeleton import SkeletonFrame, SkeletonSequence
from motion.storage import BaseStore
from motion.telemetry import counter
from motion.v1 import common_pb2, pose_service_pb2, pose_service_pb2_grpc, skeleton_pb2
from services.pose.pipeline import PoseExtractor, PoseOptions, sha256_file

log = logging.getLogger("motion.pose.service")

SERVICE_NAME = pose_service_pb2.DESCRIPTOR.services_by_name["PoseService"].full_name
SKELETON_PREFIX = "skeletons"
SKELETON_CONTENT_TYPE = "application/x-protobuf"
# Frames run through the models (cache hits are not counted: no work was done for them).
FRAMES = counter("pose", "frames", "Video frames run through pose extraction")
_RUNTIME_NAMES = {
    pose_service_pb2.POSE_RUNTIME_UNSPECIFIED: "litert",
    pose_service_pb2.POSE_RUNTIME_LITERT: "litert",
    pose_service_pb2.POSE_RUNTIME_TORCH: "torch",
    pose_service_pb2.POSE_RUNTIME_TENSORRT: "tensorrt",
    pose_service_pb2.POSE_RUNTIME_OPENVINO: "openvino",
}


def options_from_proto(msg: pose_service_pb2.PoseOptions | None, has_options: bool = True,
                       default_runtime: str = "litert") -> PoseOptions:
    """Proto -> PoseOptions. An absent options message means the defaults (hands, face, smoothing on);
    zero confidences mean the default 0.5 (proto3 cannot tell unset from 0). An unspecified runtime is
    `default_runtime` (the service's MOTION_POSE_RUNTIME)."""
    if msg is None or not has_options:
        return PoseOptions(runtime=default_runtime)
    runtime = default_runtime if msg.runtime == pose_service_pb2.POSE_RUNTIME_UNSPECIFIED else (
        _RUNTIME_NAMES.get(msg.runtime, default_runtime))
    return PoseOptions(
        runtime=runtime, hands=msg.hands, face=msg.face,
        smoothing=msg.smoothing, track_id=msg.track_id,
        min_detection_confidence=msg.min_detection_confidence or 0.5,
        min_tracking_confidence=msg.min_tracking_confidence or 0.5, max_duration_s=msg.max_duration_s,
    )


def resolve_default_runtime(name: str | None = None) -> str:
    """The runtime for requests that name none: `name`, else Settings.pose_runtime (MOTION_POSE_RUNTIME).

    "auto" (the default) becomes "openvino" where the CPU computes bf16 natively, else "litert"
    (services.pose.runtime.resolve_auto_runtime), so the options digest always names a concrete runtime.
    An unknown name is a configuration error at start. A known runtime that is not installed here (e.g.
    tensorrt on a CPU node) is only logged: requests that use it fail with FAILED_PRECONDITION naming it
    (from services.pose.runtime.get_runtime), while requests naming another runtime keep working.
    """
    from services.pose.runtime import AUTO_RUNTIME, RUNTIME_NAMES, get_runtime, resolve_auto_runtime

    if name is None:
        from motion.settings import Settings

        name = Settings.from_env().pose_runtime
    name = name.strip().lower()
    if name == AUTO_RUNTIME:
        name = resolve_auto_runtime()
    if name not in RUNTIME_NAMES:
        raise InputError("settings.pose_runtime", "MOTION_POSE_RUNTIME names an unknown pose runtime",
                         limit=sorted([*RUNTIME_NAMES, AUTO_RUNTIME]), actual=name)
    if name != "litert":
        try:
            get_runtime(name)
        except InputError:
            raise  # a configuration error (e.g. MOTION_OPENVINO_PRECISION): fail at start, not per request
        except MotionError as exc:
            log.error("default pose runtime %r is unavailable here: %s", name, exc.message)
    return name


def skeleton_key(video_sha256: str, options_digest: str) -> str:
    # The code digest keeps a new release of the pipeline from serving the old one's skeletons.
    return f"{SKELETON_PREFIX}/{video_sha256}/{options_digest}-{stage_digest('pose')}.pb"


@dataclass
class VideoResult:
    skeleton: common_pb2.ObjectRef
    cache_hit: bool
    frame_count: int
    frames_with_person: int


class PoseWorker:
    """Domain side of the service: reads inputs from the store, runs the extractor, stores results."""

    def __init__(self, store: BaseStore, model_dir: str | pathlib.Path | None = None, max_parallel: int = 1,
                 default_runtime: str | None = None) -> None:
        self.store = store
        self.model_dir = model_dir
        self.default_runtime = resolve_default_runtime(default_runtime)
        # Inference already uses both cores; more parallel extractions would only add memory.
        self._slots = threading.Semaphore(max_parallel)

    def extract_video(self, video: common_pb2.ObjectRef, opts: PoseOptions,
                      progress: Callable[[int, int], None] | None = None) -> VideoResult:
        opts.validate()
        digest = opts.digest()
        if not video.key:
            raise InputError("pose.video_ref", "ExtractVideo needs a video reference", limit="ObjectRef with a key",
                             actual="")
        with tempfile.TemporaryDirectory(prefix="pose-") as tmp:
            local = pathlib.Path(tmp) / ("video" + (pathlib.PurePosixPath(video.key).suffix or ".mp4"))
            video_sha = video.sha256
            path: pathlib.Path | None = None
            if not video_sha:
                path = self.store.get_file(video, local)
                video_sha = sha256_file(path)
            key = skeleton_key(video_sha, digest)
            if self.store.exists(key):
                msg = self.store.get_proto(key, skeleton_pb2.SkeletonSequence)
                return VideoResult(self.store.stat(key), True, len(msg.frames), sum(f.present for f in msg.frames))
            if path is None:
                path = self.store.get_file(video, local)
            with self._slots, PoseExtractor(opts, model_dir=self.model_dir) as ex:
                seq = ex.process_video(path, progress=progress)
            FRAMES.inc(len(seq))
            ref = self.store.put_bytes(key, seq.to_bytes(), content_type=SKELETON_CONTENT_TYPE)
            return VideoResult(ref, False, len(seq), sum(f.present for f in seq.frames))

    def extract_image(self, image: common_pb2.ObjectRef, opts: PoseOptions) -> tuple[SkeletonFrame, int, int]:
        opts.validate()
        data = self.store.get_bytes(image)
        buf = np.frombuffer(data, np.uint8)
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
        if img is None:
            raise InputError("image.corrupt", "the image cannot be decoded", actual=f"{len(data)} bytes")
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        elif img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
        else:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        if img.dtype != np.uint8:  # 16-bit PNGs
            img = (img / 257).astype(np.uint8)
        with self._slots, PoseExtractor(opts, model_dir=self.model_dir) as ex:
            frame = ex.process_image(img)
        return frame, int(img.shape[1]), int(img.shape[0])


def _abort(context: grpc.ServicerContext, exc: MotionError) -> None:
    context.abort(exc.code, exc.message)


class PoseServicer(pose_service_pb2_grpc.PoseServiceServicer):
    def __init__(self, worker: PoseWorker) -> None:
        self.worker = worker

    def ExtractVideo(self, request: pose_service_pb2.ExtractVideoRequest,  # noqa: N802 - gRPC name
                     context: grpc.ServicerContext) -> pose_service_pb2.ExtractVideoResponse:
        try:
            res = self.worker.extract_video(request.video, options_from_proto(
                request.options, request.HasField("options"), self.worker.default_runtime))
        except MotionError as exc:
            _abort(context, exc)
            raise
        return _response(res)

    def StreamExtractVideo(self, request: pose_service_pb2.ExtractVideoRequest,  # noqa: N802 - gRPC name
                           context: grpc.ServicerContext) -> Iterator[pose_service_pb2.ExtractVideoResponse]:
        # The extraction runs in a thread so progress messages can be yielded while it works.
        import queue

        q: queue.Queue[tuple[int, int] | None] = queue.Queue()
        box: dict[str, object] = {}

        def run() -> None:
            try:
                box["result"] = self.worker.extract_video(
                    request.video,
                    options_from_proto(request.options, request.HasField("options"), self.worker.default_runtime),
                    progress=lambda d, t: q.put((d, t)))
            except BaseException as exc:  # reported to the client below
                box["error"] = exc
            finally:
                q.put(None)

        worker = threading.Thread(target=run, name="pose-stream", daemon=True)
        worker.start()
        last_sent = -1
        while True:
            item = q.get()
            if item is None:
                break
            done, total = item
            # At most ~50 progress messages per video.
            if done == total or done - last_sent >= max(1, total // 50):
                last_sent = done
                yield pose_service_pb2.ExtractVideoResponse(
                    progress=common_pb2.Progress(stage="pose", done=done, total=total))
        worker.join()
        err = box.get("error")
        if isinstance(err, MotionError):
            _abort(context, err)
        elif isinstance(err, BaseException):
            context.abort(grpc.StatusCode.INTERNAL, f"pose extraction failed: {err}")
        res = box["result"]
        if not isinstance(res, VideoResult):  # pragma: no cover - run() always sets one of the two
            context.abort(grpc.StatusCode.INTERNAL, "pose extraction produced no result")
            return
        yield _response(res)

    def ExtractImage(self, request: pose_service_pb2.ExtractImageRequest,  # noqa: N802 - gRPC name
                     context: grpc.ServicerContext) -> pose_service_pb2.ExtractImageResponse:
        try:
            frame, w, h = self.worker.extract_image(
                request.image,
                options_from_proto(request.options, request.HasField("options"), self.worker.default_runtime))
        except MotionError as exc:
            _abort(context, exc)
            raise
        msg = SkeletonSequence(fps=0.0, width=w, height=h, frames=[frame]).to_proto().frames[0]
        return pose_service_pb2.ExtractImageResponse(frame=msg, width=w, height=h)


def _response(res: VideoResult) -> pose_service_pb2.ExtractVideoResponse:
    return pose_service_pb2.ExtractVideoResponse(
        skeleton=res.skeleton, cache_hit=res.cache_hit, frame_count=res.frame_count,
        frames_with_person=res.frames_with_person,
        progress=common_pb2.Progress(stage="pose", done=res.frame_count, total=res.frame_count, message="done"),
    )
