"""Runs admitted jobs through the orchestrator: a bounded local queue, lease renewal, recovery of
orphaned jobs (after a SIGKILL or when another replica died), cancellation and graceful drain."""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from motion.errors import MotionError
from motion.telemetry import job_context
from motion.v1 import common_pb2, render_service_pb2
from motion.v1 import gateway_service_pb2 as gw
from services.gateway import metrics
from services.gateway.jobs import TERMINAL_STATES, JobStore, Lease, LeaseManager, state_name
from services.gateway.orchestrator import AnimateOptions, Cancelled, Orchestrator, Stages

log = logging.getLogger("motion.gateway.runner")


def now_ts() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return ts


def _rig_check_frames() -> int:
    try:
        import services.render.layers  # noqa: F401 - only probing that the render code is importable
    except ImportError:
        return 0
    return 6


def cancel_key(tenant: str, job_id: str) -> str:
    return f"cancel/{tenant}/{job_id}"


def options_from_job(job: gw.Job) -> AnimateOptions:
    o = job.options
    background = "keep"
    bg_image = ""
    mode = o.background.mode
    if mode == render_service_pb2.BACKGROUND_MODE_SOLID:
        background = f"solid:{o.background.color}"
    elif mode == render_service_pb2.BACKGROUND_MODE_TRANSPARENT:
        background = "transparent"
    elif mode == render_service_pb2.BACKGROUND_MODE_IMAGE:
        background, bg_image = "image", o.background.image.key
    return AnimateOptions(
        orientation="image" if o.orientation == common_pb2.ORIENTATION_IMAGE else "video",
        resolution="1080p" if o.resolution == common_pb2.RESOLUTION_1080P else "720p",
        background=background, background_image=bg_image, keep_original_sound=o.keep_original_sound,
        loop=o.loop, track_id=o.track_id, prompt=o.prompt, negative_prompt=o.negative_prompt,
        cfg_scale=o.cfg_scale, export_skeleton=o.export_skeleton, joints_override=job.joints_override.key,
    )


@dataclass
class RunnerOptions:
    owner: str
    max_queue: int = 16
    concurrency: int = 2
    lease_ttl_s: float = 15.0
    scan_interval_s: float = 2.0
    progress_write_interval_s: float = 0.5
    frames_per_range: int = 0  # 0 = the orchestrator's default


@dataclass
class _Running:
    lease: Lease
    cancel: threading.Event = field(default_factory=threading.Event)
    lost: threading.Event = field(default_factory=threading.Event)
    started: bool = False


class JobRunner:
    def __init__(self, store: Any, stages: Stages, options: RunnerOptions) -> None:
        self.store = store
        self.jobs = JobStore(store)
        self.leases = LeaseManager(store, options.owner, ttl_s=options.lease_ttl_s)
        self.orchestrator = Orchestrator(stages, store)
        self.options = options
        self._queue: queue.Queue[Lease] = queue.Queue()
        self._held: dict[tuple[str, str], _Running] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._draining = threading.Event()
        self._threads: list[threading.Thread] = []
        self._changed = threading.Condition()
        self._states: dict[str, int] = {}

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        for i in range(self.options.concurrency):
            self._threads.append(threading.Thread(target=self._work, name=f"job-runner-{i}", daemon=True))
        self._threads.append(threading.Thread(target=self._renew_loop, name="lease-renew", daemon=True))
        self._threads.append(threading.Thread(target=self._scan_loop, name="job-scan", daemon=True))
        for t in self._threads:
            t.start()

    def stop(self, drain_timeout_s: float = 30.0) -> None:
        """Graceful drain: admit nothing, let running jobs finish (up to the timeout), hand back the rest."""
        self._draining.set()
        deadline = time.monotonic() + drain_timeout_s
        while time.monotonic() < deadline and self._busy():
            time.sleep(0.1)
        self._stopping.set()
        with self._lock:
            held = list(self._held.values())
        for r in held:
            r.cancel.set()
        for t in self._threads:
            t.join(timeout=5.0)
        # Jobs still queued or cut short stay active in the store; releasing the lease lets another
        # replica (or this one after a restart) take them over at once.
        with self._lock:
            held = list(self._held.values())
            self._held.clear()
        for r in held:
            self.leases.release(r.lease)

    def _busy(self) -> list[tuple[str, str]]:
        with self._lock:
            return [k for k, r in self._held.items() if r.started]

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    # ---- admission ------------------------------------------------------------------------------
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def has_capacity(self) -> bool:
        return not self._draining.is_set() and self._queue.qsize() < self.options.max_queue

    def admit(self, tenant: str, job_id: str) -> bool:
        """Queues a job this replica just created or adopted; False when its lease is held elsewhere."""
        with self._lock:
            if (tenant, job_id) in self._held:
                return True
        lease = self.leases.acquire(tenant, job_id)
        if lease is None:
            return False
        with self._lock:
            self._held[(tenant, job_id)] = _Running(lease)
        self._queue.put(lease)
        metrics.QUEUE_DEPTH.set(self._queue.qsize())
        return True

    # ---- state notifications (WatchJob waits on these) -------------------------------------------
    def wait_for_change(self, timeout_s: float) -> None:
        with self._changed:
            self._changed.wait(timeout_s)

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def _track_state(self, job: gw.Job) -> None:
        self._states[job.name] = job.state
        counts: dict[str, int] = {}
        for s in self._states.values():
            counts[state_name(s)] = counts.get(state_name(s), 0) + 1
        for name in ("queued", "running", "succeeded", "failed", "cancelled"):
            metrics.JOBS.labels(name).set(counts.get(name, 0))

    def record_created(self, job: gw.Job) -> None:
        self._track_state(job)
        self._notify()

    # ---- cancellation ----------------------------------------------------------------------------
    def cancel(self, tenant: str, job_id: str) -> None:
        self.store.put_bytes(cancel_key(tenant, job_id), b"1", content_type="text/plain")
        with self._lock:
            running = self._held.get((tenant, job_id))
            queued = running is not None and not running.started
            if queued:
                # Still waiting in our queue: nothing runs it, so record the outcome here.
                self._held.pop((tenant, job_id), None)
        if running is None:
            return
        if queued:
            job = self.jobs.get(tenant, job_id)
            if job.state not in TERMINAL_STATES:
                self._finish(running, job, gw.JOB_STATE_CANCELLED)
            metrics.QUEUE_DEPTH.set(self._queue.qsize())
            return
        running.cancel.set()

    def _cancel_requested(self, tenant: str, job_id: str) -> bool:
        return bool(self.store.exists(cancel_key(tenant, job_id)))

    # ---- the work ---------------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                lease = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            metrics.QUEUE_DEPTH.set(self._queue.qsize())
            key = (lease.tenant, lease.job_id)
            with self._lock:
                running = self._held.get(key)
                draining = self._draining.is_set()
                if running is not None and not draining:
                    running.started = True
                elif running is not None:
                    self._held.pop(key, None)
            if running is None:
                continue
            if draining:
                # Not started: leave it for another replica (or this one after restart).
                self.leases.release(lease)
                continue
            try:
                with job_context(lease.job_id):
                    self._run(running)
            except Exception:  # a bug in the runner must not kill the worker thread
                log.exception("job %s: runner error", lease.job_id)
            finally:
                with self._lock:
                    self._held.pop(key, None)
                self._notify()

    def _run(self, running: _Running) -> None:
        lease = running.lease
        tenant, job_id = lease.tenant, lease.job_id
        job = self.jobs.get(tenant, job_id)
        if job.state in TERMINAL_STATES:
            # Killed between writing the outcome and clearing the marker: finish the bookkeeping.
            self.jobs.put(job)
            self.leases.release(lease)
            return
        if self._cancel_requested(tenant, job_id):
            self._finish(running, job, gw.JOB_STATE_CANCELLED)
            return
        job.state = gw.JOB_STATE_RUNNING
        job.update_time.CopyFrom(now_ts())
        self._save(running, job)
        log.info("job started", extra={"job_id": job_id, "tenant": tenant})
        last_write = [0.0]
        last_stage = [""]

        def progress(stage: str, done: int, total: int, message: str) -> None:
            job.progress.CopyFrom(common_pb2.Progress(stage=stage, done=done, total=total, message=message))
            now = time.monotonic()
            if stage != last_stage[0] or done >= total or now - last_write[0] >= self.options.progress_write_interval_s:
                last_stage[0], last_write[0] = stage, now
                job.update_time.CopyFrom(now_ts())
                if self._cancel_requested(tenant, job_id):
                    running.cancel.set()
                self._save(running, job)

        opts = options_from_job(job)
        if self.options.frames_per_range > 0:
            from dataclasses import replace

            opts = replace(opts, frames_per_range=self.options.frames_per_range)
        try:
            result = self.orchestrator.run(job.image, job.video, opts, progress=progress, cancel=running.cancel)
        except Cancelled:
            if running.lost.is_set() or self._stopping.is_set():
                # Taken over or shutting down: the record stays as it is for the next runner.
                log.info("job handed over", extra={"job_id": job_id})
                return
            self._finish(running, job, gw.JOB_STATE_CANCELLED)
            return
        except MotionError as exc:
            if running.lost.is_set():
                return
            job.error_code = exc.code.name
            job.error_message = exc.message
            self._finish(running, job, gw.JOB_STATE_FAILED)
            return
        except Exception as exc:
            if running.lost.is_set():
                return
            log.exception("job failed", extra={"job_id": job_id})
            job.error_code = grpc.StatusCode.INTERNAL.name
            job.error_message = f"internal error: {type(exc).__name__}: {exc}"
            self._finish(running, job, gw.JOB_STATE_FAILED)
            return
        if running.lost.is_set():
            return
        job.result.CopyFrom(result.result)
        job.trimmed_s = result.trimmed_s
        del job.warnings[:]
        job.warnings.extend(result.warnings)
        del job.ignored_options[:]
        job.ignored_options.extend(result.ignored_options)
        if result.skeleton_export is not None:
            job.skeleton_export.CopyFrom(result.skeleton_export)
        if job.options.preview:
            preview = self._write_preview(job, result, opts)
            if preview is not None:
                job.preview.CopyFrom(preview)
            else:
                job.warnings.append("preview: could not be made on this gateway (see its log)")
        report = self._write_report(job, result, opts)
        if report is not None:
            job.report.CopyFrom(report)
        self._finish(running, job, gw.JOB_STATE_SUCCEEDED)

    def _write_preview(self, job: gw.Job, result: Any, opts: AnimateOptions) -> common_pb2.ObjectRef | None:
        """The side-by-side preview MP4 (reference | render, 360 px high), rendered here with the render code."""
        import pathlib
        import tempfile

        from motion.rig import CharacterRig
        from motion.skeleton import SkeletonSequence

        try:
            from services.render.animate import write_preview
            from services.render.renderer import RenderOptions

            rig = CharacterRig.load(self.store, result.rig)
            seq = SkeletonSequence.from_bytes(self.store.get_bytes(result.retargeted))
            # A preview is an MP4 for a quick look: picture and transparent backgrounds show the kept one.
            background = opts.background if opts.background.startswith(("keep", "solid:")) else "keep"
            with tempfile.TemporaryDirectory(prefix="motion-preview-") as tmp_s:
                tmp = pathlib.Path(tmp_s)
                video = self.store.get_file(job.video, tmp / ("reference" + pathlib.Path(job.video.key).suffix))
                out = write_preview(rig, seq, video, tmp / "preview.mp4",
                                    RenderOptions(resolution=opts.resolution, background=background))
                tenant, job_id = job.tenant, job.name.split("/", 1)[1]
                ref: common_pb2.ObjectRef = self.store.put_file(f"previews/{tenant}/{job_id}.mp4", out,
                                                                content_type="video/mp4")
                return ref
        except Exception:
            log.warning("preview failed", exc_info=True, extra={"job_id": job.name})
            return None

    def _write_report(self, job: gw.Job, result: Any, opts: AnimateOptions) -> common_pb2.ObjectRef | None:
        """Stores the job's quality report (motion.quality) next to its result; a failure here only warns."""
        import pathlib
        import tempfile

        from motion.quality import build_report
        from motion.rig import CharacterRig
        from motion.skeleton import SkeletonSequence
        from services.gateway.orchestrator import _sha256_of

        try:
            index = self.orchestrator
            ref = index._cache_get(index.skeleton_cache_key(_sha256_of(self.store, job.video), opts))
            performer = SkeletonSequence.from_bytes(self.store.get_bytes(ref)) if ref is not None else None
            rig = CharacterRig.load(self.store, result.rig)
            retargeted = SkeletonSequence.from_bytes(self.store.get_bytes(result.retargeted))
            with tempfile.TemporaryDirectory(prefix="motion-report-") as tmp:
                out = self.store.get_file(result.result, pathlib.Path(tmp) / ("result" + pathlib.Path(
                    result.result.key).suffix))
                # The rig check needs the render code; the gateway image may not carry it (it only warns then).
                report = build_report(performer=performer, rig=rig, retargeted=retargeted, output=out,
                                      orientation=opts.orientation, loop=opts.loop, pin_feet=opts.pin_feet,
                                      trimmed_s=result.trimmed_s, ignored_options=list(result.ignored_options),
                                      warnings=list(result.warnings), rig_check_frames=_rig_check_frames())
            if report.output is not None:
                report.output.path = result.result.key
            tenant, job_id = job.tenant, job.name.split("/", 1)[1]
            ref_out: common_pb2.ObjectRef = self.store.put_bytes(
                f"reports/{tenant}/{job_id}.json", report.to_json().encode(), content_type="application/json")
            return ref_out
        except Exception:
            log.warning("quality report failed", exc_info=True, extra={"job_id": job.name})
            return None

    def _save(self, running: _Running, job: gw.Job) -> None:
        if running.lost.is_set():
            return
        self.jobs.put(job)
        self._track_state(job)
        self._notify()

    def _finish(self, running: _Running, job: gw.Job, state: int) -> None:
        job.state = state  # type: ignore[assignment]
        job.update_time.CopyFrom(now_ts())
        if state == gw.JOB_STATE_SUCCEEDED:
            job.progress.CopyFrom(common_pb2.Progress(stage="done", done=1, total=1))
        # The lease must still be ours: a replica that took over will write the outcome itself.
        if not self.leases.holds(running.lease):
            running.lost.set()
            return
        self._save(running, job)
        metrics.JOBS_COMPLETED.labels(state_name(state)).inc()
        if state in (gw.JOB_STATE_SUCCEEDED, gw.JOB_STATE_FAILED) and job.HasField("create_time"):
            # Cancelled jobs are left out: their time says how long the client waited before giving up.
            metrics.JOB_DURATION_S.observe(max(0.0, time.time() - job.create_time.ToNanoseconds() / 1e9))
        log.info("job finished: %s", state_name(state), extra={"job_id": job.name, "tenant": job.tenant})
        self.leases.release(running.lease)
        try:
            self.store.delete(cancel_key(job.tenant, job.name.split("/", 1)[1]))
        except Exception:  # a missing marker is the common case
            pass

    def _renew_loop(self) -> None:
        interval = max(0.2, self.options.lease_ttl_s / 3)
        while not self._stopping.wait(interval):
            with self._lock:
                held = list(self._held.values())
            for r in held:
                try:
                    ok = self.leases.renew(r.lease)
                except Exception:
                    log.exception("lease renewal failed for %s", r.lease.job_id)
                    continue
                if not ok:
                    log.warning("lease of job %s lost to another replica", r.lease.job_id)
                    r.lost.set()
                    r.cancel.set()

    def _scan_loop(self) -> None:
        # First scan at once: a restarted gateway resumes its jobs without waiting.
        while not self._stopping.is_set():
            if not self._draining.is_set():
                try:
                    self.scan_once()
                except Exception:
                    log.exception("recovery scan failed")
            self._stopping.wait(self.options.scan_interval_s)

    def scan_once(self) -> int:
        """Adopts active jobs whose lease is free, expired or ours; returns how many were adopted."""
        adopted = 0
        for tenant, job_id in list(self.jobs.active()):
            if not self.has_capacity():
                break
            with self._lock:
                if (tenant, job_id) in self._held:
                    continue
            if self.admit(tenant, job_id):
                adopted += 1
        return adopted
