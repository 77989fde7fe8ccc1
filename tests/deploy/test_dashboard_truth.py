"""Dashboard truth: every metric the Grafana dashboard or an alert rule queries exists on the real mesh.

Starts the local mesh (pose, retarget, one render worker and the gateway as processes on 127.0.0.1,
with a real S3 server), runs one short job, scrapes every process's /metrics and checks the
contract in metrics_contract.py, which the chart tests tie to the dashboard and the rules.
"""

from __future__ import annotations

import pathlib
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.metrics_contract import MESH_METRICS, QUERIED_METRICS, metric_names

API_KEY = "truth-test-key-0001"
REFERENCE = "videos/controlnext__svd2_video_01.mp4"
CHARACTER = "characters/musev__man.jpg"


@pytest.fixture(scope="module")
def mesh(s3_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from services.gateway.mesh import LocalMesh, MeshOptions

    options = MeshOptions(
        data_dir=tmp_path_factory.mktemp("truth-mesh"), render_workers=1,
        s3_env=s3_server.env(f"truth-{uuid.uuid4().hex[:8]}"), api_keys={API_KEY: "truth"},
        gateway_env={"MOTION_GATEWAY_SCAN_INTERVAL_S": "1", "MOTION_GATEWAY_DRAIN_TIMEOUT_S": "5"},
    )
    with LocalMesh(options) as m:
        yield m


def scrape(port: int) -> dict[str, set[str]]:
    """sample name -> label names seen, from one /metrics endpoint."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    samples: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, set()).update(sample.labels)
    return samples


def run_one_job(mesh: Any, shared_data: pathlib.Path, workdir: pathlib.Path) -> int:
    from motion.v1 import gateway_service_pb2 as gw
    from services.gateway.cli import GatewayClient
    from tests.gateway.media import trim_video

    workdir.mkdir(parents=True, exist_ok=True)
    video = trim_video(shared_data / REFERENCE, workdir / "reference.mp4", seconds=3.0, fps=10, short_side_px=340)
    image = shared_data / CHARACTER
    request = gw.CreateJobRequest(
        request_id=uuid.uuid4().hex, image_data=image.read_bytes(), image_filename=image.name,
        video_data=video.read_bytes(), video_filename="reference.mp4", options=gw.JobOptions(),
    )
    with GatewayClient(mesh.addrs["gateway"], API_KEY) as client:
        job = client.create(request)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            job = client.call("GetJob", gw.GetJobRequest(name=job.name))
            if job.state in (gw.JOB_STATE_SUCCEEDED, gw.JOB_STATE_FAILED, gw.JOB_STATE_CANCELLED):
                return int(job.state)
            time.sleep(0.5)
    raise AssertionError(f"job {job.name} did not finish in 300 s:\n{mesh.log_tail('gateway')}")


@pytest.mark.integration
@pytest.mark.slow
def test_mesh_exposes_every_queried_metric_with_one_job_run(
    mesh: Any, shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    from motion.v1 import gateway_service_pb2 as gw

    # Twice with the same inputs: the second job hits the skeleton and rig caches, so the hit counters
    # have samples too (a labelled counter shows no series before its first increment).
    for attempt in range(2):
        state = run_one_job(mesh, shared_data, tmp_path / f"job{attempt}")
        assert state == gw.JOB_STATE_SUCCEEDED, mesh.log_tail("gateway")
    scrapes = {name: scrape(port) for name, port in mesh.metrics_ports.items()}
    assert set(scrapes) >= {"gateway", "pose", "retarget", "render-0"}
    merged: dict[str, set[str]] = {}
    for samples in scrapes.values():
        for name, labels in samples.items():
            merged.setdefault(name, set()).update(labels)
    missing = sorted(MESH_METRICS - set(merged))
    exposed = sorted(n for n in merged if n.startswith("motion_"))
    assert not missing, f"queried by the dashboard/alerts but not exposed by the mesh: {missing}; exposed: {exposed}"
    for name in sorted(MESH_METRICS):
        # Labels the queries group or filter by must be on the samples.
        wanted = set(QUERIED_METRICS[name])
        assert wanted <= merged[name], (name, wanted - merged[name])
    # Every process is a Python server with the standard process collectors (CPU/memory panels).
    for process, samples in scrapes.items():
        assert {"process_cpu_seconds_total", "process_resident_memory_bytes"} <= set(samples), process


def test_scrape_parser_sees_histogram_buckets_with_local_registry() -> None:
    """The names the test compares are sample names (x_bucket), as the queries use them."""
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    registry = CollectorRegistry()
    Histogram("motion_test_duration_seconds", "d", ["stage"], registry=registry).labels("pose").observe(0.2)
    text = generate_latest(registry).decode()
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    assert "motion_test_duration_seconds_bucket" in names
    assert metric_names("histogram_quantile(0.9, sum by (le) (rate(motion_test_duration_seconds_bucket[5m])))") == {
        "motion_test_duration_seconds_bucket"
    }
