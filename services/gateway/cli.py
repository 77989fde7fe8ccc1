"""`motionctl` subcommands of the gateway: serve (mesh), and the jobs client (submit/status/watch/download/list)."""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import signal
import sys
import time
import urllib.parse
import urllib.request
import uuid
from typing import Any

import grpc

from motion.cli import add_common_flags, emit
from motion.errors import InputError, MotionError, NotFoundError, UnauthenticatedError, UnavailableError
from motion.v1 import common_pb2, render_service_pb2
from motion.v1 import gateway_service_pb2 as gw
from motion.v1 import gateway_service_pb2_grpc as gw_grpc
from services.gateway.auth import API_KEY_METADATA
from services.gateway.service import MAX_REQUEST_BYTES

DEFAULT_GATEWAY_ADDR = "127.0.0.1:50051"
STATE_NAMES = {"queued": 1, "running": 2, "succeeded": 3, "failed": 4, "cancelled": 5}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="run a service of the mesh (or all of them with a local S3)")
    p.add_argument("service", choices=["pose", "retarget", "render", "gateway", "all"])
    p.add_argument("--host", default=None, help="bind address (default MOTION_BIND_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="gRPC port (default MOTION_GRPC_PORT, 0 = any)")
    p.add_argument("--metrics-port", type=int, default=None, help="Prometheus port (0 = any)")
    p.add_argument("--store", default=None, help="object store URL (file:///dir or s3://bucket)")
    p.add_argument("--in-process", action="store_true", help="gateway: run the stages in-process (no workers)")
    p.add_argument("--render-workers", type=int, default=2, help="all: number of render workers")
    p.add_argument("--data-dir", default=None, help="all: directory for the local S3 data and logs")
    p.set_defaults(func=_cmd_serve)

    def client(name: str, help_text: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help_text)
        c.add_argument("--gateway", default=os.environ.get("MOTION_GATEWAY_ADDR", DEFAULT_GATEWAY_ADDR),
                       help="gateway address (MOTION_GATEWAY_ADDR)")
        c.add_argument("--api-key", default=None, help="API key (default MOTION_API_KEY)")
        add_common_flags(c)
        return c

    s = client("submit", "submit a job to the gateway")
    s.add_argument("--image", required=True, type=pathlib.Path)
    s.add_argument("--video", required=True, type=pathlib.Path)
    s.add_argument("--orientation", choices=["video", "image"], default="video")
    s.add_argument("--resolution", choices=["720p", "1080p"], default="720p")
    s.add_argument("--background", default="keep", help="keep | solid:#RRGGBB | transparent")
    s.add_argument("--no-sound", action="store_true", help="drop the reference audio")
    s.add_argument("--loop", action="store_true")
    s.add_argument("--prompt", default="")
    s.add_argument("--negative-prompt", default="")
    s.add_argument("--cfg-scale", type=float, default=0.0)
    s.add_argument("--track-id", type=int, default=0)
    s.add_argument("--joints", type=pathlib.Path, default=None,
                   help="manual character joints (our JSON or AnimatedDrawings char_cfg.yaml)")
    s.add_argument("--export-skeleton", action="store_true", help="also store the retargeted skeleton (protobuf)")
    s.add_argument("--preview", action="store_true", help="also store a side-by-side preview MP4")
    s.add_argument("--request-id", default=None, help="idempotency key (default: a new one)")
    s.add_argument("--wait", action="store_true", help="watch until the job ends")
    s.add_argument("-o", "--output", type=pathlib.Path, default=None, help="with --wait: download the result here")
    s.set_defaults(func=_cmd_submit)

    st = client("status", "show a job")
    st.add_argument("job")
    st.set_defaults(func=_cmd_status)

    w = client("watch", "follow a job's progress until it ends")
    w.add_argument("job")
    w.set_defaults(func=_cmd_watch)

    d = client("download", "download a finished job's video")
    d.add_argument("job")
    d.add_argument("-o", "--output", type=pathlib.Path, required=True)
    d.set_defaults(func=_cmd_download)

    ls = client("list", "list your jobs")
    ls.add_argument("--state", choices=sorted(STATE_NAMES), default=None)
    ls.add_argument("--limit", type=int, default=50)
    ls.set_defaults(func=_cmd_list)

    cancel = client("cancel", "cancel a job")
    cancel.add_argument("job")
    cancel.set_defaults(func=_cmd_cancel)


# ---- client ------------------------------------------------------------------------------------------


class GatewayClient:
    """A thin client of the jobs API; maps gRPC errors to motion errors for the CLI."""

    def __init__(self, addr: str, api_key: str) -> None:
        self.channel = grpc.insecure_channel(addr, options=[("grpc.max_send_message_length", MAX_REQUEST_BYTES)])
        self.stub = gw_grpc.GatewayServiceStub(self.channel)
        self.metadata = ((API_KEY_METADATA, api_key),)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, request: Any, timeout_s: float = 120.0) -> Any:
        try:
            return getattr(self.stub, method)(request, metadata=self.metadata, timeout=timeout_s)
        except grpc.RpcError as exc:
            raise _motion_error(exc) from None

    def create(self, request: gw.CreateJobRequest, max_wait_s: float = 300.0) -> gw.Job:
        """CreateJob, waiting out admission control (RESOURCE_EXHAUSTED + retry-after-s) up to max_wait_s."""
        deadline = time.monotonic() + max_wait_s
        while True:
            try:
                return self.stub.CreateJob(request, metadata=self.metadata, timeout=300.0)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    raise _motion_error(exc) from None
                hint = dict(exc.trailing_metadata() or ()).get("retry-after-s", "1")
                delay = max(0.1, float(hint))
                if time.monotonic() + delay > deadline:
                    raise _motion_error(exc) from None
                time.sleep(delay)

    def watch(self, name: str) -> Any:
        try:
            yield from self.stub.WatchJob(gw.WatchJobRequest(name=name), metadata=self.metadata)
        except grpc.RpcError as exc:
            raise _motion_error(exc) from None


def _motion_error(exc: grpc.RpcError) -> MotionError:
    code, details = exc.code(), exc.details() or ""
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        rule, _, message = details.partition(": ")
        return InputError(rule, message or details)
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFoundError(details)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return UnauthenticatedError(f"{details} (set MOTION_API_KEY or --api-key)")
    if code == grpc.StatusCode.UNAVAILABLE:
        return UnavailableError(f"gateway unavailable: {details}")
    err = MotionError(f"{code.name}: {details}")
    err.code = code
    return err


def _client(args: argparse.Namespace) -> GatewayClient:
    key = args.api_key or os.environ.get("MOTION_API_KEY", "")
    if not key:
        raise UnauthenticatedError("no API key: set MOTION_API_KEY or pass --api-key")
    return GatewayClient(args.gateway, key)


def _job_name(job: str) -> str:
    return job if job.startswith("jobs/") else f"jobs/{job}"


def job_summary(job: gw.Job) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": job.name,
        "state": gw.JobState.Name(job.state).removeprefix("JOB_STATE_").lower(),
        "stage": job.progress.stage,
        "done": job.progress.done,
        "total": job.progress.total,
    }
    if job.result.key:
        out["result"] = job.result.key
        out["download_url"] = job.download_url
        out["download_url_expires"] = job.download_url_expires.ToJsonString()
    for ref_field, url_field in (("skeleton_export", "skeleton_export_url"), ("preview", "preview_url"),
                                 ("report", "report_url")):
        if getattr(job, ref_field).key:
            out[url_field] = getattr(job, url_field)
    if job.error_code:
        out["error"] = f"{job.error_code}: {job.error_message}"
    if job.trimmed_s:
        out["trimmed_s"] = job.trimmed_s
    if job.warnings:
        out["warnings"] = list(job.warnings)
    if job.ignored_options:
        out["ignored_options"] = list(job.ignored_options)
    return out


def _options(args: argparse.Namespace) -> gw.JobOptions:
    bg = render_service_pb2.Background(mode=render_service_pb2.BACKGROUND_MODE_KEEP)
    if args.background.startswith("solid:"):
        bg = render_service_pb2.Background(mode=render_service_pb2.BACKGROUND_MODE_SOLID,
                                           color=args.background.split(":", 1)[1])
    elif args.background == "transparent":
        bg = render_service_pb2.Background(mode=render_service_pb2.BACKGROUND_MODE_TRANSPARENT)
    elif args.background != "keep":
        raise InputError("options.background", "background must be keep, solid:#RRGGBB or transparent",
                         actual=args.background)
    return gw.JobOptions(
        orientation=common_pb2.ORIENTATION_IMAGE if args.orientation == "image" else common_pb2.ORIENTATION_VIDEO,
        resolution=common_pb2.RESOLUTION_1080P if args.resolution == "1080p" else common_pb2.RESOLUTION_720P,
        background=bg, keep_original_sound=not args.no_sound, loop=args.loop, prompt=args.prompt,
        negative_prompt=args.negative_prompt, cfg_scale=args.cfg_scale, track_id=args.track_id,
        export_skeleton=args.export_skeleton, preview=args.preview,
    )


def _cmd_submit(args: argparse.Namespace) -> int:
    for path in (args.image, args.video, *([args.joints] if args.joints is not None else [])):
        if not path.is_file():
            raise InputError("request.file_missing", "no such file", actual=str(path))
    req = gw.CreateJobRequest(
        request_id=args.request_id or uuid.uuid4().hex,
        image_data=args.image.read_bytes(), image_filename=args.image.name,
        video_data=args.video.read_bytes(), video_filename=args.video.name,
        options=_options(args),
        joints_data=args.joints.read_bytes() if args.joints is not None else b"",
    )
    with _client(args) as client:
        job = client.create(req)
        if not args.wait:
            emit(args, job_summary(job), f"{job.name} {job_summary(job)['state']}")
            return 0
        job = _follow(client, job.name, args)
        if job.state == gw.JOB_STATE_SUCCEEDED and args.output is not None:
            _download(job, args.output)
        emit(args, job_summary(job), _human(job))
        return 0 if job.state == gw.JOB_STATE_SUCCEEDED else 1


def _human(job: gw.Job) -> str:
    s = job_summary(job)
    lines = [f"{s['name']}: {s['state']}"]
    for k in ("result", "download_url", "download_url_expires", "error", "trimmed_s", "warnings", "ignored_options",
              "skeleton_export_url", "preview_url", "report_url"):
        if k in s:
            lines.append(f"  {k}: {s[k]}")
    return "\n".join(lines)


def _follow(client: GatewayClient, name: str, args: argparse.Namespace) -> gw.Job:
    """Watches the job, drawing a progress bar per stage on stderr (unless --quiet/--json)."""
    from tqdm import tqdm

    show = not (getattr(args, "quiet", False) or getattr(args, "json", False))
    bar: Any = None
    stage = ""
    last = gw.Job()
    for job in client.watch(name):
        last = job
        if not show:
            continue
        p = job.progress
        if p.stage != stage:
            if bar is not None:
                bar.close()
            stage = p.stage
            bar = tqdm(total=max(1, p.total), desc=f"{name} {stage}", file=sys.stderr, leave=False)
        if bar is not None:
            bar.total = max(1, p.total)
            bar.n = min(p.done, bar.total)
            bar.refresh()
    if bar is not None:
        bar.close()
    return last


def _cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.call("GetJob", gw.GetJobRequest(name=_job_name(args.job)))
    emit(args, job_summary(job), _human(job))
    return 0


def _cmd_watch(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = _follow(client, _job_name(args.job), args)
    emit(args, job_summary(job), _human(job))
    return 0 if job.state == gw.JOB_STATE_SUCCEEDED else 1


def _cmd_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.call("CancelJob", gw.CancelJobRequest(name=_job_name(args.job)))
    emit(args, job_summary(job), _human(job))
    return 0


def _download(job: gw.Job, out: pathlib.Path) -> pathlib.Path:
    if job.state != gw.JOB_STATE_SUCCEEDED or not job.download_url:
        raise InputError("job.not_succeeded", "the job has no result to download",
                         actual=gw.JobState.Name(job.state))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.part")
    url = job.download_url
    if url.startswith("file://"):
        shutil.copyfile(urllib.parse.unquote(urllib.parse.urlparse(url).path), tmp)
    else:
        with urllib.request.urlopen(url, timeout=120) as resp, open(tmp, "wb") as fh:  # noqa: S310 - presigned
            shutil.copyfileobj(resp, fh)
    os.replace(tmp, out)
    return out


def _cmd_download(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.call("GetJob", gw.GetJobRequest(name=_job_name(args.job)))
    path = _download(job, args.output)
    emit(args, {"name": job.name, "output": str(path), "bytes": path.stat().st_size}, str(path))
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    jobs: list[dict[str, Any]] = []
    token = ""
    with _client(args) as client:
        while len(jobs) < args.limit:
            resp = client.call("ListJobs", gw.ListJobsRequest(
                page_size=min(100, args.limit - len(jobs)), page_token=token,
                state=STATE_NAMES.get(args.state or "", 0)))  # type: ignore[arg-type]
            jobs.extend(job_summary(j) for j in resp.jobs)
            token = resp.next_page_token
            if not token:
                break
    human = "\n".join(f"{j['name']}  {j['state']:<10} {j['stage']}" for j in jobs) or "(no jobs)"
    emit(args, {"jobs": jobs}, human)
    return 0


# ---- serve -------------------------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> Any:
    from motion.settings import Settings

    return Settings.from_env().with_overrides(
        bind_host=args.host, grpc_port=args.port, metrics_port=args.metrics_port, store_url=args.store
    )


def _cmd_serve(args: argparse.Namespace) -> int:
    if args.service == "gateway":
        return _serve_gateway(args)
    if args.service == "all":
        from services.gateway.mesh import serve_all

        return serve_all(_settings(args), render_workers=args.render_workers,
                         data_dir=pathlib.Path(args.data_dir) if args.data_dir else None)
    from services.gateway.mesh import serve_worker

    return serve_worker(args.service, _settings(args))


def _serve_gateway(args: argparse.Namespace) -> int:
    import threading

    from motion.telemetry import configure_from_settings
    from services.gateway.server import GatewayConfig, GatewayServer

    settings = _settings(args)
    configure_from_settings(settings)
    config = GatewayConfig.from_env()
    if args.in_process:
        config.in_process = True
    server = GatewayServer(settings, config)

    def on_signal(signum: int, _frame: Any) -> None:
        # Drain on a helper thread: the handler must return so the server keeps answering meanwhile.
        threading.Thread(target=server.stop, name="drain", daemon=True).start()

    server.start()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"gateway listening on {settings.bind_host}:{server.port} metrics :{server.metrics_port}", flush=True)
    # Returns once stop() (SIGTERM: after draining) has stopped the server.
    server.wait()
    return 0
