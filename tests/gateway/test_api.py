"""Jobs API through a real gRPC server and real S3: validation at the door, idempotency, access, paging,
admission control, cancellation."""

from __future__ import annotations

import pathlib
import uuid
from typing import Any

import grpc
import pytest

from motion.v1 import common_pb2, render_service_pb2
from motion.v1 import gateway_service_pb2 as gw
from tests.gateway.conftest import ApiGateway

pytestmark = pytest.mark.integration


def _create(api: ApiGateway, media: pathlib.Path, tenant: str = "alpha", image: str = "character.png",
            video: str = "clip.mp4", request_id: str | None = None, **opts: Any) -> gw.Job:
    req = gw.CreateJobRequest(
        request_id=request_id if request_id is not None else uuid.uuid4().hex,
        image_data=(media / image).read_bytes() if image else b"", image_filename=image,
        video_data=(media / video).read_bytes() if video else b"", video_filename=video,
        options=gw.JobOptions(**opts),
    )
    return api.stub.CreateJob(req, metadata=api.md(tenant), timeout=60)


def _rule_of(exc: grpc.RpcError) -> str:
    return (exc.details() or "").split(":", 1)[0]


def test_create_job_returns_same_job_with_retried_request_id(api_gateway: ApiGateway, media_dir: pathlib.Path):
    first = _create(api_gateway, media_dir, request_id="req-1")
    again = _create(api_gateway, media_dir, request_id="req-1")
    assert first.name == again.name
    assert first.state == gw.JOB_STATE_QUEUED
    assert first.tenant == "alpha"
    # The same key from another tenant is another job.
    other = _create(api_gateway, media_dir, tenant="beta", request_id="req-1")
    assert other.name != first.name
    ids = list(api_gateway.store.list("jobs/alpha/"))
    assert len(ids) == 1


def test_create_job_stores_defaults_and_inputs_with_valid_upload(api_gateway: ApiGateway, media_dir: pathlib.Path):
    job = _create(api_gateway, media_dir, prompt="dance")
    assert job.options.orientation == common_pb2.ORIENTATION_VIDEO
    assert job.options.resolution == common_pb2.RESOLUTION_720P
    assert job.image.sha256 and api_gateway.store.exists(job.image.key)
    assert api_gateway.store.get_bytes(job.video.key) == (media_dir / "clip.mp4").read_bytes()
    got = api_gateway.stub.GetJob(gw.GetJobRequest(name=job.name), metadata=api_gateway.md("alpha"))
    assert got.name == job.name and got.options.prompt == "dance"


BAD_REQUESTS = [
    ("image.min_side_px", {"image": "small.png"}),
    ("image.aspect_ratio", {"image": "wide.png"}),
    ("image.format", {"image": "clip.mp4"}),
    ("video.min_duration_s", {"video": "short.mp4"}),
    ("video.side_px", {"video": "tiny.mp4"}),
    ("video.format", {"video": "character.png"}),
    ("request.image_missing", {"image": ""}),
    ("request.video_missing", {"video": ""}),
    ("options.prompt", {"prompt": "x" * 2501}),
    ("options.negative_prompt", {"negative_prompt": "x" * 2501}),
    ("options.cfg", {"cfg_scale": 31.0}),
    ("options.cfg", {"cfg_scale": 0.5}),
    ("options.track_id", {"track_id": -1}),
    ("options.background_color", {"background": render_service_pb2.Background(
        mode=render_service_pb2.BACKGROUND_MODE_SOLID, color="red")}),
    ("options.background_image", {"background": render_service_pb2.Background(
        mode=render_service_pb2.BACKGROUND_MODE_IMAGE)}),
    ("request.request_id_max_chars", {"request_id": "r" * 129}),
]


@pytest.mark.parametrize(("rule", "kw"), BAD_REQUESTS, ids=[f"{r}-{i}" for i, (r, _) in enumerate(BAD_REQUESTS)])
def test_create_job_invalid_argument_with_rule_broken(api_gateway: ApiGateway, media_dir: pathlib.Path,
                                                      rule: str, kw: dict[str, Any]):
    with pytest.raises(grpc.RpcError) as info:
        _create(api_gateway, media_dir, **kw)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _rule_of(info.value) == rule, info.value.details()
    assert list(api_gateway.store.list("jobs/")) == []


@pytest.mark.parametrize(("kind", "size"), [("image", 10 * 1024 * 1024 + 1), ("video", 50 * 1024 * 1024 + 1)])
def test_create_job_rejects_before_storing_with_oversized_upload(api_gateway: ApiGateway, media_dir: pathlib.Path,
                                                                kind: str, size: int):
    good_image = (media_dir / "character.png").read_bytes()
    good_video = (media_dir / "clip.mp4").read_bytes()
    req = gw.CreateJobRequest(
        request_id="big", image_filename="c.png", video_filename="v.mp4",
        image_data=good_image + b"\0" * (size - len(good_image)) if kind == "image" else good_image,
        video_data=good_video + b"\0" * (size - len(good_video)) if kind == "video" else good_video,
    )
    with pytest.raises(grpc.RpcError) as info:
        api_gateway.stub.CreateJob(req, metadata=api_gateway.md("alpha"), timeout=120)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _rule_of(info.value) == f"{kind}.max_bytes"
    assert list(api_gateway.store.list("")) == []


def test_get_job_not_found_with_unknown_id(api_gateway: ApiGateway):
    for name in ("jobs/t0123456789abcdef", "jobs/../x", "nothing"):
        with pytest.raises(grpc.RpcError) as info:
            api_gateway.stub.GetJob(gw.GetJobRequest(name=name), metadata=api_gateway.md("alpha"))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("metadata", [(("x-api-key", "not-a-known-key"),), ()], ids=["wrong", "missing"])
def test_calls_unauthenticated_with_bad_key(api_gateway: ApiGateway, media_dir: pathlib.Path, metadata: Any):
    calls = [
        lambda: api_gateway.stub.GetJob(gw.GetJobRequest(name="jobs/x1"), metadata=metadata),
        lambda: api_gateway.stub.ListJobs(gw.ListJobsRequest(), metadata=metadata),
        lambda: api_gateway.stub.CreateJob(gw.CreateJobRequest(request_id="a"), metadata=metadata),
        lambda: list(api_gateway.stub.WatchJob(gw.WatchJobRequest(name="jobs/x1"), metadata=metadata)),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_other_tenant_gets_not_found_with_existing_job(api_gateway: ApiGateway, media_dir: pathlib.Path):
    job = _create(api_gateway, media_dir, tenant="alpha")
    md = api_gateway.md("beta")
    calls = [
        lambda: api_gateway.stub.GetJob(gw.GetJobRequest(name=job.name), metadata=md),
        lambda: api_gateway.stub.CancelJob(gw.CancelJobRequest(name=job.name), metadata=md),
        lambda: list(api_gateway.stub.WatchJob(gw.WatchJobRequest(name=job.name), metadata=md)),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert api_gateway.stub.ListJobs(gw.ListJobsRequest(), metadata=md).jobs == []
    # Still queued: beta's cancel attempt did nothing.
    got = api_gateway.stub.GetJob(gw.GetJobRequest(name=job.name), metadata=api_gateway.md("alpha"))
    assert got.state == gw.JOB_STATE_QUEUED


def test_create_job_resource_exhausted_with_full_queue(api_gateway: ApiGateway, media_dir: pathlib.Path):
    for _ in range(3):  # max_queue=3, no runners
        _create(api_gateway, media_dir)
    with pytest.raises(grpc.RpcError) as info:
        _create(api_gateway, media_dir)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailers = dict(info.value.trailing_metadata() or ())
    assert int(trailers["retry-after-s"]) > 0
    assert len(list(api_gateway.store.list("jobs/alpha/"))) == 3


def test_cancel_job_cancelled_with_queued_job(api_gateway: ApiGateway, media_dir: pathlib.Path):
    job = _create(api_gateway, media_dir)
    md = api_gateway.md("alpha")
    cancelled = api_gateway.stub.CancelJob(gw.CancelJobRequest(name=job.name), metadata=md)
    assert cancelled.state == gw.JOB_STATE_CANCELLED
    watched = list(api_gateway.stub.WatchJob(gw.WatchJobRequest(name=job.name), metadata=md, timeout=10))
    assert watched[-1].state == gw.JOB_STATE_CANCELLED
    assert not api_gateway.store.exists(f"active/alpha/{job.name.split('/')[1]}")
    # A freed slot admits a new job again.
    assert api_gateway.server.runner.queue_depth() <= 1


def test_list_jobs_pages_and_filters_with_page_token(api_gateway: ApiGateway, media_dir: pathlib.Path):
    md = api_gateway.md("gamma")
    names = {_create(api_gateway, media_dir, tenant="gamma").name for _ in range(3)}
    cancelled = sorted(names)[0]
    api_gateway.stub.CancelJob(gw.CancelJobRequest(name=cancelled), metadata=md)
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        resp = api_gateway.stub.ListJobs(gw.ListJobsRequest(page_size=2, page_token=token), metadata=md)
        seen.extend(j.name for j in resp.jobs)
        pages += 1
        token = resp.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(names) and pages == 2
    only = api_gateway.stub.ListJobs(gw.ListJobsRequest(state=gw.JOB_STATE_CANCELLED), metadata=md)
    assert [j.name for j in only.jobs] == [cancelled]
    with pytest.raises(grpc.RpcError) as info:
        api_gateway.stub.ListJobs(gw.ListJobsRequest(page_token="%%%"), metadata=md)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_create_job_accepts_own_refs_and_hides_others_with_object_refs(api_gateway: ApiGateway,
                                                                      media_dir: pathlib.Path):
    first = _create(api_gateway, media_dir, tenant="alpha")
    by_ref = gw.CreateJobRequest(request_id="by-ref", image=first.image, video=first.video)
    job = api_gateway.stub.CreateJob(by_ref, metadata=api_gateway.md("alpha"))
    assert job.image.key == first.image.key and job.state == gw.JOB_STATE_QUEUED
    for tenant, ref_key in (("beta", first.image.key), ("alpha", "jobs/alpha/x.json"), ("alpha", "nope/x.png")):
        req = gw.CreateJobRequest(request_id=f"r-{tenant}", image=common_pb2.ObjectRef(key=ref_key),
                                  video=first.video)
        with pytest.raises(grpc.RpcError) as info:
            api_gateway.stub.CreateJob(req, metadata=api_gateway.md(tenant))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert _rule_of(info.value) == "image.ref"


def test_gateway_serves_health_and_reflection_with_running_server(api_gateway: ApiGateway):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(api_gateway.addr) as ch:
        status = health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service="motion.v1.GatewayService"), timeout=5)
        assert status.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        answers = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                                 timeout=5))
        names = {s.name for s in answers[0].list_services_response.service}
    assert {"motion.v1.GatewayService", "grpc.health.v1.Health"} <= names
