"""Leases and job records on a real S3 bucket (weed mini): one runner per job, takeover after expiry,
and a restarted replica resuming its own jobs."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from motion.v1 import gateway_service_pb2 as gw
from services.gateway.jobs import JobStore, LeaseManager, new_job_id

pytestmark = pytest.mark.integration


def test_lease_held_by_one_replica_with_concurrent_acquires(s3_store: Any):
    managers = [LeaseManager(s3_store, f"replica-{i}", ttl_s=30.0) for i in range(4)]
    won: list[str] = []
    lock = threading.Lock()

    def take(m: LeaseManager) -> None:
        lease = m.acquire("alpha", "job1")
        if lease is not None:
            with lock:
                won.append(m.owner)

    threads = [threading.Thread(target=take, args=(m,)) for m in managers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1


def test_lease_taken_over_after_expiry_with_stopped_holder(s3_store: Any):
    a = LeaseManager(s3_store, "a", ttl_s=1.0)
    b = LeaseManager(s3_store, "b", ttl_s=1.0)
    lease_a = a.acquire("alpha", "job2")
    assert lease_a is not None
    assert b.acquire("alpha", "job2") is None
    assert a.renew(lease_a)
    time.sleep(1.3)  # a stops renewing (SIGKILL)
    lease_b = b.acquire("alpha", "job2")
    assert lease_b is not None and lease_b.generation == lease_a.generation + 1
    # The old holder finds out at its next renewal and must stop.
    assert not a.renew(lease_a)
    assert not a.holds(lease_a) and b.holds(lease_b)


def test_lease_reacquired_at_once_with_restarted_owner(s3_store: Any):
    before = LeaseManager(s3_store, "gateway-0", ttl_s=60.0)
    assert before.acquire("alpha", "job3") is not None
    after_restart = LeaseManager(s3_store, "gateway-0", ttl_s=60.0)
    assert after_restart.acquire("alpha", "job3") is not None
    assert LeaseManager(s3_store, "gateway-1", ttl_s=60.0).acquire("alpha", "job3") is None


def test_job_record_created_once_with_same_request_id(s3_store: Any):
    jobs = JobStore(s3_store)
    job_id = new_job_id("alpha", "req-7")
    assert job_id == new_job_id("alpha", "req-7") != new_job_id("beta", "req-7")
    first, created = jobs.create(gw.Job(name=f"jobs/{job_id}", tenant="alpha", request_id="req-7",
                                        state=gw.JOB_STATE_QUEUED))
    again, created_again = jobs.create(gw.Job(name=f"jobs/{job_id}", tenant="alpha", request_id="req-7",
                                              state=gw.JOB_STATE_QUEUED, error_message="second"))
    assert created and not created_again
    assert again.error_message == "" and list(jobs.active()) == [("alpha", job_id)]
    first.state = gw.JOB_STATE_SUCCEEDED
    jobs.put(first)
    assert list(jobs.active()) == []
    assert jobs.get("alpha", job_id).state == gw.JOB_STATE_SUCCEEDED
