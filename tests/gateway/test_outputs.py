"""Job outputs through the real gateway (gRPC on 127.0.0.1, S3 from `weed mini`): skeleton export, quality
report, preview, presigned URLs for them, and a per-job joints override."""

from __future__ import annotations

import hashlib
import json
import pathlib
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import av
import grpc
import pytest

from motion.cli import main
from motion.samples.kit import SampleKit, write_samples
from motion.skeleton import SkeletonSequence
from motion.v1 import common_pb2
from motion.v1 import gateway_service_pb2 as gw
from tests.gateway.conftest import KEY_OF, ApiGateway, start_gateway

JOB_TIMEOUT_S = 240.0


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> SampleKit:
    # A real person-like performer (the sample kit), the shortest valid clip, low frame rate: a quick job.
    return write_samples(tmp_path_factory.mktemp("kit"), duration_s=3.0, fps=10.0, size=(360, 640))


@pytest.fixture
def running_gateway(s3_store: Any) -> Iterator[ApiGateway]:
    """A gateway that runs its jobs in-process (one at a time) over the real S3 bucket."""
    with start_gateway(s3_store, "outputs-test", concurrency=1) as gateway:
        yield gateway


def _wait(gateway: ApiGateway, name: str) -> gw.Job:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        job = gateway.stub.GetJob(gw.GetJobRequest(name=name), metadata=gateway.md("alpha"))
        if job.state in (gw.JOB_STATE_SUCCEEDED, gw.JOB_STATE_FAILED, gw.JOB_STATE_CANCELLED):
            return job
        time.sleep(0.5)
    raise TimeoutError(f"{name} did not finish in {JOB_TIMEOUT_S} s")


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - presigned loopback URL
        return bytes(resp.read())


def test_job_exports_skeleton_report_and_preview_with_joints_override(running_gateway: ApiGateway, kit: SampleKit,
                                                                       tmp_path: pathlib.Path) -> None:
    joints = kit.character_joints.read_bytes()
    req = gw.CreateJobRequest(
        request_id="outputs-1", image_data=kit.character_png.read_bytes(), image_filename="character.png",
        video_data=kit.performer_mp4.read_bytes(), video_filename="performer.mp4", joints_data=joints,
        options=gw.JobOptions(export_skeleton=True, preview=True, prompt="a dancer"))
    created = running_gateway.stub.CreateJob(req, metadata=running_gateway.md("alpha"))
    assert created.joints_override.key.startswith("uploads/alpha/")
    assert running_gateway.store.get_bytes(created.joints_override.key) == joints
    job = _wait(running_gateway, created.name)
    assert job.state == gw.JOB_STATE_SUCCEEDED, job.error_message
    # The rig was built from the override: its cache entry carries the joints file's digest.
    rigs = list(running_gateway.store.list("cache/rigs/"))
    assert any(k.endswith("-" + created.joints_override.sha256[:16]) for k in rigs), rigs
    # Skeleton export: the retargeted skeleton (protobuf) behind a presigned URL.
    assert job.skeleton_export.key and job.skeleton_export_url.startswith("http://127.0.0.1")
    skel = SkeletonSequence.from_bytes(_fetch(job.skeleton_export_url))
    assert len(skel.frames) == 30
    # Quality report next to the result, with the output's real facts.
    assert job.report.key == f"reports/alpha/{job.name.split('/', 1)[1]}.json" and job.report_url
    report = json.loads(_fetch(job.report_url))
    assert report["format"] == "motion-control/quality-report"
    assert report["skeleton"]["frames_total"] == 30 and report["skeleton"]["frames_detected"] >= 25
    assert report["ignored_options"] == ["prompt"]
    assert report["foot_skate_after_px"] <= report["foot_skate_before_px"] + 1e-6
    result = _fetch(job.download_url)
    assert report["output"]["size_bytes"] == len(result) and report["output"]["frames"] == 30
    assert report["output"]["path"] == job.result.key
    # Preview: reference | render side by side, same frame count, 360 px high.
    assert job.preview.key == f"previews/alpha/{job.name.split('/', 1)[1]}.mp4" and job.preview_url
    preview = tmp_path / "preview.mp4"
    preview.write_bytes(_fetch(job.preview_url))
    with av.open(str(preview)) as c:
        assert c.streams.video[0].codec_context.height == 360
        assert sum(1 for _ in c.decode(video=0)) == 30


def test_create_job_rejects_joints_with_bad_file(running_gateway: ApiGateway, kit: SampleKit) -> None:
    req = gw.CreateJobRequest(
        image_data=kit.character_png.read_bytes(), image_filename="character.png",
        video_data=kit.performer_mp4.read_bytes(), video_filename="performer.mp4",
        joints_data=b'{"format": "motion-control/character-joints", "version": 1, "joints": 7}')
    with pytest.raises(grpc.RpcError) as e:
        running_gateway.stub.CreateJob(req, metadata=running_gateway.md("alpha"))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "character." in (e.value.details() or "")  # the joints loader's rule, e.g. character.joints_format
    assert not list(running_gateway.store.list("jobs/"))


def test_create_job_hides_joints_ref_with_other_tenant_upload(running_gateway: ApiGateway, kit: SampleKit) -> None:
    ref = running_gateway.store.put_content_addressed(kit.character_joints.read_bytes(), "uploads/beta", ".json", "")
    req = gw.CreateJobRequest(
        image_data=kit.character_png.read_bytes(), image_filename="character.png",
        video_data=kit.performer_mp4.read_bytes(), video_filename="performer.mp4",
        joints_override=common_pb2.ObjectRef(key=ref.key))
    with pytest.raises(grpc.RpcError) as e:
        running_gateway.stub.CreateJob(req, metadata=running_gateway.md("alpha"))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "joints.ref" in (e.value.details() or "")



def test_cli_submit_sends_joints_and_prints_export_urls_with_flags(running_gateway: ApiGateway, kit: SampleKit,
                                                                   tmp_path: pathlib.Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "result.mp4"
    rc = main(["submit", "--gateway", running_gateway.addr, "--api-key", KEY_OF["alpha"],
               "--image", str(kit.character_png), "--video", str(kit.performer_mp4),
               "--joints", str(kit.character_joints), "--export-skeleton", "--wait", "-o", str(out), "--json"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["state"] == "succeeded" and out.stat().st_size > 0
    skel = SkeletonSequence.from_bytes(_fetch(doc["skeleton_export_url"]))
    assert len(skel.frames) == 30
    assert json.loads(_fetch(doc["report_url"]))["output"]["size_bytes"] == out.stat().st_size
    assert "preview_url" not in doc  # not asked for
    job = running_gateway.stub.GetJob(gw.GetJobRequest(name=doc["name"]), metadata=running_gateway.md("alpha"))
    assert job.joints_override.sha256 == hashlib.sha256(kit.character_joints.read_bytes()).hexdigest()
