"""The mesh end to end: pose, retarget, two render workers and the gateway as separate processes on
127.0.0.1, sharing a real S3 bucket (weed mini); a real reference video from ../shared/data.

Covers: output identical to the embedded run, the skeleton cache across characters, a render worker
killed mid-job (its range moves to the other worker), the gateway killed with SIGKILL mid-job and
restarted (the job finishes, once), and 20 concurrent jobs from 3 tenants.
"""

from __future__ import annotations

import hashlib
import pathlib
import re
import signal
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

# The in-process stages' code, loaded before the mesh processes start, so both sides run the same version
# of it even while the working tree is being edited.
import services.pose.service  # noqa: F401
import services.render.service  # noqa: F401
import services.retarget.service  # noqa: F401
from motion.settings import Settings
from motion.v1 import gateway_service_pb2 as gw
from motion.v1 import render_service_pb2
from services.gateway.cli import GatewayClient
from services.gateway.embedded import run_embedded
from services.gateway.mesh import LocalMesh, MeshOptions
from services.gateway.orchestrator import AnimateOptions
from tests.gateway.media import trim_video

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEYS = {"mesh-key-alpha": "alpha", "mesh-key-beta-": "beta", "mesh-key-gamma": "gamma"}
KEY_OF = {t: k for k, t in KEYS.items()}
REFERENCE = "videos/controlnext__svd2_video_01.mp4"
CHARACTERS = ("characters/musev__man.jpg", "characters/moore_aa__anyone-11.png",
              "characters/moore_aa__anyone-3.png")


@pytest.fixture(scope="module")
def inputs(shared_data: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, pathlib.Path]:
    d = tmp_path_factory.mktemp("mesh-inputs")
    # 3 s at 10 fps, short side 340 px: 30 frames, one range of 32 frames... two with 16 per range.
    video = trim_video(shared_data / REFERENCE, d / "reference.mp4", seconds=3.0, fps=10, short_side_px=340)
    out = {"video": video}
    for i, rel in enumerate(CHARACTERS):
        out[f"image{i}"] = shared_data / rel
    return out


@pytest.fixture(scope="module")
def mesh(s3_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    data_dir = tmp_path_factory.mktemp("mesh")
    options = MeshOptions(
        data_dir=data_dir, render_workers=2, s3_env=s3_server.env(f"mesh-{uuid.uuid4().hex[:8]}"),
        api_keys=KEYS,
        gateway_env={
            "MOTION_GATEWAY_LEASE_TTL_S": "4", "MOTION_GATEWAY_SCAN_INTERVAL_S": "1",
            "MOTION_GATEWAY_CONCURRENCY": "2", "MOTION_GATEWAY_MAX_QUEUE": "8",
            "MOTION_GATEWAY_RETRY_AFTER_S": "1", "MOTION_GATEWAY_FRAMES_PER_RANGE": "16",
            "MOTION_GATEWAY_DRAIN_TIMEOUT_S": "10",
        },
    )
    with LocalMesh(options) as m:
        yield m


def client(mesh: LocalMesh, tenant: str = "alpha") -> GatewayClient:
    return GatewayClient(mesh.addrs["gateway"], KEY_OF[tenant])


def request(inputs: dict[str, pathlib.Path], image: str = "image0", color: str = "", **kw: Any) -> gw.CreateJobRequest:
    opts = gw.JobOptions(**kw)
    if color:
        opts.background.CopyFrom(render_service_pb2.Background(mode=render_service_pb2.BACKGROUND_MODE_SOLID,
                                                               color=color))
    return gw.CreateJobRequest(
        request_id=uuid.uuid4().hex, image_data=inputs[image].read_bytes(), image_filename=inputs[image].name,
        video_data=inputs["video"].read_bytes(), video_filename="reference.mp4", options=opts,
    )


def wait_done(c: GatewayClient, name: str, timeout_s: float = 240.0) -> gw.Job:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = c.call("GetJob", gw.GetJobRequest(name=name))
        if job.state in (gw.JOB_STATE_SUCCEEDED, gw.JOB_STATE_FAILED, gw.JOB_STATE_CANCELLED):
            return job
        time.sleep(0.3)
    raise AssertionError(f"{name} not finished after {timeout_s}s")


def download(job: gw.Job) -> bytes:
    assert job.state == gw.JOB_STATE_SUCCEEDED, (job.error_code, job.error_message)
    assert job.download_url.startswith("http://127.0.0.1:")
    assert job.download_url_expires.seconds > time.time()
    with urllib.request.urlopen(job.download_url, timeout=60) as resp:
        return bytes(resp.read())


def metric(mesh: LocalMesh, name: str, labels: str = "") -> float:
    url = f"http://127.0.0.1:{mesh.metrics_ports['gateway']}/metrics"
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" ([0-9.e+-]+)"
    m = re.search(pattern, text)
    return float(m.group(1)) if m else 0.0


def test_mesh_output_identical_with_embedded_run(mesh: LocalMesh, inputs: dict[str, pathlib.Path],
                                                 tmp_path: pathlib.Path):
    from dataclasses import replace

    def rig_lookups() -> float:
        return (metric(mesh, "motion_gateway_cache_hits_total", 'kind="rig"')
                + metric(mesh, "motion_gateway_cache_misses_total", 'kind="rig"'))

    retargets = metric(mesh, "motion_gateway_stage_duration_seconds_count", 'stage="retarget"')
    rigs = rig_lookups()
    with client(mesh) as c:
        job = c.create(request(inputs, keep_original_sound=True))
        stages = [j.progress.stage for j in c.watch(job.name)]
        done = c.call("GetJob", gw.GetJobRequest(name=job.name))
    mesh_bytes = download(done)
    # A watcher sees snapshots of the job record: a stage that lasts a few milliseconds (the rig or retarget
    # served from a cache) can fall between two of them, so those runs are checked on the gateway's metrics.
    for stage in ("pose", "render", "join"):
        assert stage in stages, stages
    assert metric(mesh, "motion_gateway_stage_duration_seconds_count", 'stage="retarget"') == retargets + 1
    assert rig_lookups() == rigs + 1
    # The embedded pipeline (in-process stages, local directory store), same inputs and options.
    settings = Settings(cache_dir=tmp_path / "cache")
    embedded = run_embedded(inputs["image0"], inputs["video"], tmp_path / "embedded.mp4",
                            replace(AnimateOptions(), frames_per_range=16), settings=settings)
    assert embedded.run.ranges == 2 and embedded.run.frame_count == 30
    same = hashlib.sha256(mesh_bytes).digest() == hashlib.sha256(embedded.output.read_bytes()).digest()
    assert same, _diff_stages(_store(mesh), embedded.store)
    assert done.result.sha256 == hashlib.sha256(mesh_bytes).hexdigest()


def _diff_stages(mesh_store: Any, local_store: Any) -> str:
    """Which stage's output differs between the two stores (content hashes per stage prefix)."""
    lines = []
    for prefix in ("skeletons/", "retargeted/", "rigs/images/", "segments/"):
        def digests(store: Any, prefix: str = prefix) -> set[str]:
            return {hashlib.sha256(store.get_bytes(k)).hexdigest()[:12] for k in store.list(prefix)
                    if not k.endswith(".json")}
        a, b = digests(mesh_store), digests(local_store)
        lines.append(f"{prefix}: mesh-only {sorted(a - b)} local-only {sorted(b - a)}")
    import os
    dump = pathlib.Path(os.environ.get("DIFF_DUMP", ""))
    if dump.name:
        dump.mkdir(parents=True, exist_ok=True)
        for tag, st in (("mesh", mesh_store), ("local", local_store)):
            for k in st.list("segments/"):
                (dump / f"{tag}-{k.replace('/', '_')}").write_bytes(st.get_bytes(k))
    return "\n".join(lines)


def test_workers_refuse_calls_without_gateway_token_with_direct_client(mesh: LocalMesh):
    from motion.v1 import render_service_pb2_grpc, retarget_service_pb2, retarget_service_pb2_grpc

    for name, call in (
        ("render-0", lambda ch, md: render_service_pb2_grpc.RenderServiceStub(ch).BuildRig(
            render_service_pb2.BuildRigRequest(), metadata=md, timeout=10)),
        ("retarget", lambda ch, md: retarget_service_pb2_grpc.RetargetServiceStub(ch).Retarget(
            retarget_service_pb2.RetargetRequest(), metadata=md, timeout=10)),
    ):
        with grpc.insecure_channel(mesh.addrs[name]) as ch:
            with pytest.raises(grpc.RpcError) as info:
                call(ch, (("x-motion-internal-token", "not-the-token"),))
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            # With the mesh's token the call gets through to the service (which then rejects the empty request).
            with pytest.raises(grpc.RpcError) as info:
                call(ch, (("x-motion-internal-token", mesh.internal_token),))
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_gateway_exports_job_metrics_with_finished_job(mesh: LocalMesh, inputs: dict[str, pathlib.Path]):
    # Its own finished job (a cache hit after the tests above): the test must not depend on another one
    # having run, e.g. when the real media is absent and those skip.
    with client(mesh) as c:
        assert wait_done(c, c.create(request(inputs)).name).state == gw.JOB_STATE_SUCCEEDED
    text = urllib.request.urlopen(f"http://127.0.0.1:{mesh.metrics_ports['gateway']}/metrics", timeout=10).read()
    for name in ("motion_gateway_queue_depth", 'motion_gateway_jobs{state="succeeded"}',
                 'motion_gateway_stage_duration_seconds_count{stage="render"}',
                 'motion_gateway_cache_misses_total{kind="skeleton"}', "# TYPE motion_gateway_cache_hits_total counter",
                 'motion_grpc_requests_total{code="OK",method="CreateJob",service="motion.v1.GatewayService"}'):
        assert name.encode() in text, name


def test_second_character_skips_pose_with_same_reference(mesh: LocalMesh, inputs: dict[str, pathlib.Path]):
    with client(mesh) as c:
        first = wait_done(c, c.create(request(inputs, image="image0")).name)
        assert first.state == gw.JOB_STATE_SUCCEEDED
        hits = metric(mesh, "motion_gateway_cache_hits_total", 'kind="skeleton"')
        pose_calls = metric(mesh, "motion_gateway_cache_misses_total", 'kind="skeleton"')
        second = wait_done(c, c.create(request(inputs, image="image1")).name)
    assert second.state == gw.JOB_STATE_SUCCEEDED, second.error_message
    assert metric(mesh, "motion_gateway_cache_hits_total", 'kind="skeleton"') == hits + 1
    assert metric(mesh, "motion_gateway_cache_misses_total", 'kind="skeleton"') == pose_calls
    assert second.result.key != first.result.key


def test_render_worker_killed_range_retried_elsewhere(mesh: LocalMesh, inputs: dict[str, pathlib.Path]):
    retries = metric(mesh, "motion_gateway_range_retries_total")
    with client(mesh) as c:
        # A colour no other test uses: nothing of this render is cached.
        job = c.create(request(inputs, color="#123456"))
        mesh.kill("render-1", signal.SIGKILL)
        try:
            done = wait_done(c, job.name)
        finally:
            mesh.start_worker("render-1")
    assert done.state == gw.JOB_STATE_SUCCEEDED, done.error_message
    assert metric(mesh, "motion_gateway_range_retries_total") >= retries + 1
    assert len(download(done)) > 1000


def test_cancel_job_stops_it_with_running_job(mesh: LocalMesh, inputs: dict[str, pathlib.Path]):
    with client(mesh, "gamma") as c:
        job = c.create(request(inputs, image="image0", color="#c0ffee"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if c.call("GetJob", gw.GetJobRequest(name=job.name)).state == gw.JOB_STATE_RUNNING:
                break
            time.sleep(0.05)
        c.call("CancelJob", gw.CancelJobRequest(name=job.name))
        done = wait_done(c, job.name, timeout_s=30)
        watched = list(c.watch(job.name))
    assert done.state == gw.JOB_STATE_CANCELLED and not done.result.key
    assert watched[-1].state == gw.JOB_STATE_CANCELLED


def test_gateway_sigkill_mid_job_finishes_once_with_restart(mesh: LocalMesh, inputs: dict[str, pathlib.Path]):
    with client(mesh, "beta") as c:
        job = c.create(request(inputs, image="image2", color="#654321"))
        deadline = time.monotonic() + 120
        seen = gw.Job()
        while time.monotonic() < deadline:
            seen = c.call("GetJob", gw.GetJobRequest(name=job.name))
            if seen.state == gw.JOB_STATE_RUNNING and seen.progress.stage in ("rig", "retarget", "render"):
                break
            time.sleep(0.1)
        mesh.kill("gateway", signal.SIGKILL)
    assert seen.state == gw.JOB_STATE_RUNNING, "the job should have been running when the gateway died"
    mesh.start_gateway()
    with client(mesh, "beta") as c:
        done = wait_done(c, job.name)
        listed = c.call("ListJobs", gw.ListJobsRequest(page_size=100))
    assert done.state == gw.JOB_STATE_SUCCEEDED, done.error_message
    # The restarted process finished it (its own counters start at zero).
    assert metric(mesh, "motion_gateway_jobs_completed_total", 'state="succeeded"') == 1
    assert [j.name for j in listed.jobs] == [job.name]
    assert len(download(done)) > 1000
    store = _store(mesh)
    assert list(store.list("active/")) == [] and list(store.list(f"leases/beta/{job.name[5:]}/")) == []


def metric_of(mesh: LocalMesh, gateway: str, name: str, labels: str = "") -> float:
    url = f"http://127.0.0.1:{mesh.metrics_ports[gateway]}/metrics"
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" ([0-9.e+-]+)"
    m = re.search(pattern, text)
    return float(m.group(1)) if m else 0.0


def test_two_replicas_run_each_job_once_and_sigterm_drains(mesh: LocalMesh, inputs: dict[str, pathlib.Path]):
    mesh.start_gateway("gateway-b")
    finished = 'state="succeeded"'
    before = {g: metric_of(mesh, g, "motion_gateway_jobs_completed_total", finished) for g in ("gateway", "gateway-b")}
    names = []
    for i, gateway in enumerate(["gateway", "gateway-b"] * 2):
        with GatewayClient(mesh.addrs[gateway], KEY_OF["gamma"]) as c:
            names.append(c.create(request(inputs, image=f"image{i % 3}", color=f"#a0a0{i:02x}")).name)
    with client(mesh, "gamma") as c:
        # Either replica answers for any job: the records live in the shared store.
        done = [wait_done(c, n) for n in names]
    assert all(d.state == gw.JOB_STATE_SUCCEEDED for d in done), [d.error_message for d in done]
    after = {g: metric_of(mesh, g, "motion_gateway_jobs_completed_total", finished) for g in ("gateway", "gateway-b")}
    # Each job was finished by exactly one replica.
    assert sum(after.values()) - sum(before.values()) == len(names)

    # SIGTERM drains: a job running on gateway-b is finished before the process exits.
    with GatewayClient(mesh.addrs["gateway-b"], KEY_OF["gamma"]) as c:
        job = c.create(request(inputs, image="image1", color="#0b0b0b"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if c.call("GetJob", gw.GetJobRequest(name=job.name)).state == gw.JOB_STATE_RUNNING:
                break
            time.sleep(0.05)
    proc = mesh.procs["gateway-b"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    with client(mesh, "gamma") as c:
        drained = c.call("GetJob", gw.GetJobRequest(name=job.name))
    assert drained.state == gw.JOB_STATE_SUCCEEDED, (drained.state, drained.error_message)


def _store(mesh: LocalMesh) -> Any:
    from motion.storage import open_store

    env = mesh.s3_env
    settings = Settings(s3_endpoint=env["MOTION_S3_ENDPOINT"], s3_access_key=env["MOTION_S3_ACCESS_KEY"],
                        s3_secret_key=env["MOTION_S3_SECRET_KEY"])
    return open_store(env["MOTION_STORE_URL"], settings)


def test_concurrent_jobs_all_complete_without_leaks_with_three_tenants(mesh: LocalMesh,
                                                                        inputs: dict[str, pathlib.Path]):
    tenants = ["alpha", "beta", "gamma"]
    created: dict[str, list[str]] = {t: [] for t in tenants}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def submit(i: int) -> None:
        tenant = tenants[i % 3]
        try:
            with client(mesh, tenant) as c:
                # Every job its own background: 20 real renders, not 20 cache hits.
                job = c.create(request(inputs, image=f"image{i % 3}", color=f"#30{i:02x}60"), max_wait_s=300)
                with lock:
                    created[tenant].append(job.name)
        except BaseException as exc:  # collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sum(len(v) for v in created.values()) == 20
    for tenant in tenants:
        with client(mesh, tenant) as c:
            for name in created[tenant]:
                assert wait_done(c, name).state == gw.JOB_STATE_SUCCEEDED
            listed = {j.name for j in c.call("ListJobs", gw.ListJobsRequest(page_size=100)).jobs}
            assert set(created[tenant]) <= listed
            others = [n for t, names in created.items() if t != tenant for n in names]
            assert not listed & set(others)
            with pytest.raises(Exception) as info:
                c.call("GetJob", gw.GetJobRequest(name=others[0]))
            assert getattr(info.value, "code", None) == grpc.StatusCode.NOT_FOUND
