"""GatewayService: the public jobs API (long-running-operation style) over the runner and job store."""

from __future__ import annotations

import base64
import logging
import pathlib
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from motion.errors import (
    InputError,
    MotionError,
    NotFoundError,
    ResourceExhaustedError,
    TooLargeError,
    UnavailableError,
)
from motion.v1 import common_pb2, render_service_pb2
from motion.v1 import gateway_service_pb2 as gw
from motion.v1 import gateway_service_pb2_grpc as gw_grpc
from services.gateway.auth import API_KEY_METADATA, ApiKeys, metadata_value
from services.gateway.jobs import TERMINAL_STATES, JobStore, new_job_id, parse_name
from services.gateway.runner import JobRunner, now_ts

log = logging.getLogger("motion.gateway.service")

IMAGE_MAX_BYTES = 10 * 1024 * 1024
VIDEO_MAX_BYTES = 50 * 1024 * 1024
JOINTS_MAX_BYTES = 1024 * 1024  # a joints file is a few hundred bytes; this only bounds abuse
# Room for both inline uploads at their limits plus the rest of the request.
MAX_REQUEST_BYTES = IMAGE_MAX_BYTES + VIDEO_MAX_BYTES + 1024 * 1024
PROMPT_MAX_CHARS = 2500
CFG_SCALE_RANGE = (1.0, 30.0)
REQUEST_ID_MAX_CHARS = 128
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
VIDEO_EXTENSIONS = (".mp4", ".mov")
_COLOR_RE = re.compile(r"^#[0-9A-Fa-f]{6}$")
# Keys of the gateway's own records: a client reference may not point at them.
_PRIVATE_PREFIXES = ("jobs/", "leases/", "active/", "cancel/", "cache/")
RETRY_AFTER_METADATA = "retry-after-s"
_PAGE_TOKEN_PREFIX = "after:"


@dataclass
class GatewayOptions:
    download_url_ttl_s: int = 3600
    retry_after_s: int = 5
    watch_poll_s: float = 0.5
    max_page_size: int = 100
    default_page_size: int = 20


def validate_options(o: gw.JobOptions) -> None:
    """The product spec's option rules, checked at the door."""
    if len(o.prompt) > PROMPT_MAX_CHARS:
        raise InputError("options.prompt", "prompt is too long", limit=PROMPT_MAX_CHARS,
                         actual=len(o.prompt))
    if len(o.negative_prompt) > PROMPT_MAX_CHARS:
        raise InputError("options.negative_prompt", "negative prompt is too long",
                         limit=PROMPT_MAX_CHARS, actual=len(o.negative_prompt))
    lo, hi = CFG_SCALE_RANGE
    # 0 is proto3's "not set"; a set value must be in the documented range (as in `motionctl animate`).
    if o.cfg_scale and not lo <= o.cfg_scale <= hi:
        raise InputError("options.cfg", "cfg scale out of range", limit=[lo, hi], actual=o.cfg_scale)
    if o.track_id < 0:
        raise InputError("options.track_id", "track id must be >= 0", limit=">=0", actual=o.track_id)
    bg = o.background
    if bg.mode == render_service_pb2.BACKGROUND_MODE_SOLID and not _COLOR_RE.match(bg.color):
        raise InputError("options.background_color", "solid background needs a colour #RRGGBB",
                         limit="#RRGGBB", actual=bg.color)
    if bg.mode == render_service_pb2.BACKGROUND_MODE_IMAGE and not bg.image.key:
        raise InputError("options.background_image", "image background needs a picture reference",
                         actual="")
    if o.orientation not in (common_pb2.ORIENTATION_UNSPECIFIED, common_pb2.ORIENTATION_VIDEO,
                             common_pb2.ORIENTATION_IMAGE):
        raise InputError("options.orientation", "unknown orientation", limit="video|image", actual=o.orientation)
    if o.resolution not in (common_pb2.RESOLUTION_UNSPECIFIED, common_pb2.RESOLUTION_720P,
                            common_pb2.RESOLUTION_1080P):
        raise InputError("options.resolution", "unknown resolution", limit="720p|1080p", actual=o.resolution)


def _set_error(context: grpc.ServicerContext, exc: MotionError) -> None:
    context.set_code(exc.code)
    context.set_details(exc.message)


def _with_defaults(o: gw.JobOptions) -> gw.JobOptions:
    out = gw.JobOptions()
    out.CopyFrom(o)
    if out.orientation == common_pb2.ORIENTATION_UNSPECIFIED:
        out.orientation = common_pb2.ORIENTATION_VIDEO
    if out.resolution == common_pb2.RESOLUTION_UNSPECIFIED:
        out.resolution = common_pb2.RESOLUTION_720P
    if out.background.mode == render_service_pb2.BACKGROUND_MODE_UNSPECIFIED:
        out.background.mode = render_service_pb2.BACKGROUND_MODE_KEEP
    return out


class GatewayService(gw_grpc.GatewayServiceServicer):
    def __init__(self, store: Any, runner: JobRunner, api_keys: ApiKeys, options: GatewayOptions | None = None):
        self.store = store
        self.runner = runner
        self.jobs = JobStore(store)
        self.api_keys = api_keys
        self.options = options or GatewayOptions()

    # ---- helpers ------------------------------------------------------------------------------------
    def _tenant(self, context: grpc.ServicerContext) -> str:
        return self.api_keys.tenant_for(metadata_value(context.invocation_metadata(), API_KEY_METADATA))

    def _public(self, job: gw.Job) -> gw.Job:
        """The job as the client sees it: a fresh presigned download URL once it has succeeded."""
        if job.state == gw.JOB_STATE_SUCCEEDED and job.result.key:
            ttl = self.options.download_url_ttl_s
            job.download_url = self.store.presign_get(job.result, expires_s=ttl)
            expires = timestamp_pb2.Timestamp()
            expires.FromSeconds(int(time.time()) + ttl)
            job.download_url_expires.CopyFrom(expires)
            # Extra outputs share the result's expiry.
            for ref_field, url_field in (("skeleton_export", "skeleton_export_url"), ("preview", "preview_url"),
                                         ("report", "report_url")):
                ref = getattr(job, ref_field)
                if job.HasField(ref_field) and ref.key:
                    setattr(job, url_field, self.store.presign_get(ref, expires_s=ttl))
        return job

    def _joints(self, tenant: str, request: gw.CreateJobRequest, tmp: pathlib.Path) -> common_pb2.ObjectRef | None:
        """Stores (or checks) the job's manual character joints, parsed against the character image."""
        from motion.media import validate_image
        from services.render.character.joints import load_joints_file

        if request.joints_data:
            data = bytes(request.joints_data)
        elif request.joints_override.key:
            key = request.joints_override.key
            other_upload = key.startswith("uploads/") and not key.startswith(f"uploads/{tenant}/")
            if key.startswith(_PRIVATE_PREFIXES) or other_upload or not self.store.exists(key):
                raise InputError("joints.ref", "joints reference does not exist", actual=key)
            data = self.store.get_bytes(key, max_bytes=JOINTS_MAX_BYTES)
        else:
            return None
        if len(data) > JOINTS_MAX_BYTES:
            raise TooLargeError("joints.max_bytes", "joints file is too large", limit=JOINTS_MAX_BYTES,
                                actual=len(data))
        # Our format is JSON; anything else is read as an AnimatedDrawings char_cfg.yaml.
        ext = ".json" if data.lstrip()[:1] == b"{" else ".yaml"
        path = tmp / f"joints{ext}"
        path.write_bytes(data)
        images = sorted(tmp.glob("image.*"))
        if images:
            # Fails early (INVALID_ARGUMENT with the loader's rule) instead of failing the job later.
            info = validate_image(images[0])
            load_joints_file(path, info.width, info.height)
        return self.store.put_content_addressed(data, f"uploads/{tenant}", ext, "")

    def _store_upload(self, tenant: str, data: bytes, filename: str, kind: str, tmp: pathlib.Path) -> common_pb2.ObjectRef:
        from motion.media import validate_image, validate_video

        limit = IMAGE_MAX_BYTES if kind == "image" else VIDEO_MAX_BYTES
        if len(data) > limit:
            # Refused before anything is written anywhere.
            raise TooLargeError(f"{kind}.max_bytes", f"{kind} upload is too large", limit=limit, actual=len(data))
        ext = pathlib.Path(filename or "").suffix.lower()
        allowed = IMAGE_EXTENSIONS if kind == "image" else VIDEO_EXTENSIONS
        if ext not in allowed:
            raise InputError(f"{kind}.format", f"{kind} file name must end in one of {', '.join(allowed)}",
                             limit=list(allowed), actual=ext or filename)
        path = tmp / f"{kind}{ext}"
        path.write_bytes(data)
        if kind == "image":
            validate_image(path)
        else:
            validate_video(path)
        return self.store.put_content_addressed(data, f"uploads/{tenant}", ext, "")

    def _check_ref(self, tenant: str, ref: common_pb2.ObjectRef, kind: str,
                   tmp: pathlib.Path) -> common_pb2.ObjectRef:
        from motion.media import validate_image, validate_video

        other_upload = ref.key.startswith("uploads/") and not ref.key.startswith(f"uploads/{tenant}/")
        if ref.key.startswith(_PRIVATE_PREFIXES) or other_upload:
            # Same answer as for a missing object: no hint that the key exists.
            raise InputError(f"{kind}.ref", f"{kind} reference does not exist", actual=ref.key)
        try:
            stat = self.store.stat(ref.key)
        except NotFoundError:
            raise InputError(f"{kind}.ref", f"{kind} reference does not exist", actual=ref.key) from None
        limit = IMAGE_MAX_BYTES if kind == "image" else VIDEO_MAX_BYTES
        if stat.size_bytes > limit:
            raise TooLargeError(f"{kind}.max_bytes", f"{kind} is too large", limit=limit, actual=stat.size_bytes)
        path = self.store.get_file(ref.key, tmp / f"{kind}{pathlib.Path(ref.key).suffix.lower()}")
        if kind == "image":
            validate_image(path)
        else:
            validate_video(path)
        return stat if stat.sha256 else self.store.put_content_addressed(
            path.read_bytes(), "uploads/refs", pathlib.Path(ref.key).suffix.lower(), "")

    # ---- RPCs -------------------------------------------------------------------------------------
    def CreateJob(self, request: gw.CreateJobRequest, context: grpc.ServicerContext) -> gw.Job:
        try:
            tenant = self._tenant(context)
            if len(request.request_id) > REQUEST_ID_MAX_CHARS:
                raise InputError("request.request_id_max_chars", "request id is too long",
                                 limit=REQUEST_ID_MAX_CHARS, actual=len(request.request_id))
            job_id = new_job_id(tenant, request.request_id)
            if request.request_id and self.jobs.exists(tenant, job_id):
                return self._public(self.jobs.get(tenant, job_id))
            if self.runner.draining:
                raise UnavailableError("gateway is shutting down; retry on another replica")
            if not self.runner.has_capacity():
                context.set_trailing_metadata(((RETRY_AFTER_METADATA, str(self.options.retry_after_s)),))
                raise ResourceExhaustedError(
                    f"queue full ({self.runner.queue_depth()} jobs waiting); retry in {self.options.retry_after_s}s",
                    limit=self.runner.options.max_queue, actual=self.runner.queue_depth(),
                )
            validate_options(request.options)
            with tempfile.TemporaryDirectory(prefix="motion-upload-") as tmp_s:
                tmp = pathlib.Path(tmp_s)
                # Sizes first, for both inputs, before anything is written.
                if len(request.image_data) > IMAGE_MAX_BYTES:
                    raise TooLargeError("image.max_bytes", "image upload is too large", limit=IMAGE_MAX_BYTES,
                                        actual=len(request.image_data))
                if len(request.video_data) > VIDEO_MAX_BYTES:
                    raise TooLargeError("video.max_bytes", "video upload is too large", limit=VIDEO_MAX_BYTES,
                                        actual=len(request.video_data))
                if request.image_data:
                    image = self._store_upload(tenant, request.image_data, request.image_filename, "image", tmp)
                elif request.image.key:
                    image = self._check_ref(tenant, request.image, "image", tmp)
                else:
                    raise InputError("request.image_missing", "a character image is required (data or reference)")
                if request.video_data:
                    video = self._store_upload(tenant, request.video_data, request.video_filename, "video", tmp)
                elif request.video.key:
                    video = self._check_ref(tenant, request.video, "video", tmp)
                else:
                    raise InputError("request.video_missing", "a reference video is required (data or reference)")
                joints = self._joints(tenant, request, tmp)
            job = gw.Job(
                name=f"jobs/{job_id}", request_id=request.request_id, tenant=tenant, state=gw.JOB_STATE_QUEUED,
                options=_with_defaults(request.options), image=image, video=video,
                progress=common_pb2.Progress(stage="queued"),
            )
            if joints is not None:
                job.joints_override.CopyFrom(joints)
            ts = now_ts()
            job.create_time.CopyFrom(ts)
            job.update_time.CopyFrom(ts)
            stored, created = self.jobs.create(job)
            if created:
                self.runner.record_created(stored)
                log.info("job created", extra={"job_id": job_id, "tenant": tenant})
                # If the lease is taken elsewhere (cannot happen for a new id), the scan adopts it.
                self.runner.admit(tenant, job_id)
            return self._public(stored)
        except MotionError as exc:
            _set_error(context, exc)
            return gw.Job()

    def GetJob(self, request: gw.GetJobRequest, context: grpc.ServicerContext) -> gw.Job:
        try:
            tenant = self._tenant(context)
            return self._public(self.jobs.get(tenant, parse_name(request.name)))
        except MotionError as exc:
            _set_error(context, exc)
            return gw.Job()

    def WatchJob(self, request: gw.WatchJobRequest, context: grpc.ServicerContext) -> Iterator[gw.Job]:
        try:
            tenant = self._tenant(context)
            job_id = parse_name(request.name)
            job = self.jobs.get(tenant, job_id)
        except MotionError as exc:
            _set_error(context, exc)
            return
        last = b""
        while context.is_active():
            data = job.SerializeToString(deterministic=True)
            if data != last:
                last = data
                yield self._public(job)
            if job.state in TERMINAL_STATES:
                return
            # Local jobs notify at once; jobs run by another replica are seen by polling the record.
            self.runner.wait_for_change(self.options.watch_poll_s)
            try:
                job = self.jobs.get(tenant, job_id)
            except MotionError as exc:
                _set_error(context, exc)
                return

    def CancelJob(self, request: gw.CancelJobRequest, context: grpc.ServicerContext) -> gw.Job:
        try:
            tenant = self._tenant(context)
            job_id = parse_name(request.name)
            job = self.jobs.get(tenant, job_id)
            if job.state in TERMINAL_STATES:
                return self._public(job)
            self.runner.cancel(tenant, job_id)
            # Give the runner (here or on another replica) a moment to stop and record it.
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline and job.state not in TERMINAL_STATES:
                self.runner.wait_for_change(0.2)
                job = self.jobs.get(tenant, job_id)
            return self._public(job)
        except MotionError as exc:
            _set_error(context, exc)
            return gw.Job()

    def ListJobs(self, request: gw.ListJobsRequest, context: grpc.ServicerContext) -> gw.ListJobsResponse:
        try:
            tenant = self._tenant(context)
            if request.page_size < 0:
                raise InputError("request.page_size", "page size must be >= 0", limit=">=0",
                                 actual=request.page_size)
            size = min(request.page_size or self.options.default_page_size, self.options.max_page_size)
            after = ""
            if request.page_token:
                try:
                    decoded = base64.b64decode(request.page_token.encode(), altchars=b"-_", validate=True).decode()
                except (ValueError, UnicodeDecodeError):
                    decoded = ""
                if not decoded.startswith(_PAGE_TOKEN_PREFIX):
                    raise InputError("request.page_token", "page token is not one this API issued",
                                     actual=request.page_token[:32])
                after = decoded[len(_PAGE_TOKEN_PREFIX):]
            out = gw.ListJobsResponse()
            last_id = ""
            more = False
            for job_id in self.jobs.list_ids(tenant):
                if job_id <= after:
                    continue
                if len(out.jobs) >= size:
                    more = True
                    break
                try:
                    job = self.jobs.get(tenant, job_id)
                except NotFoundError:
                    continue
                last_id = job_id
                if request.state and job.state != request.state:
                    continue
                out.jobs.append(self._public(job))
            if more and last_id:
                out.next_page_token = base64.urlsafe_b64encode((_PAGE_TOKEN_PREFIX + last_id).encode()).decode()
            return out
        except MotionError as exc:
            _set_error(context, exc)
            return gw.ListJobsResponse()
