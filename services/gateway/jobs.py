"""Durable job records and leases in the object store.

Layout (all keys relative to the store's bucket):
  jobs/<tenant>/<id>.json              the motion.v1.Job record (JSON form), rewritten atomically
  active/<tenant>/<id>                 marker while a job is not terminal (what recovery scans)
  leases/<tenant>/<id>/<generation>    who runs the job and until when

A lease is taken by creating generation g+1 with put_if_absent, which only one replica can win; the
holder renews by rewriting its own generation. Replicas take over a lease whose expiry has passed
(a gateway killed with SIGKILL stops renewing), or their own lease after a restart.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format

from motion.errors import FailedPreconditionError, NotFoundError
from motion.v1 import gateway_service_pb2 as gw

log = logging.getLogger("motion.gateway.jobs")

TERMINAL_STATES = frozenset({gw.JOB_STATE_SUCCEEDED, gw.JOB_STATE_FAILED, gw.JOB_STATE_CANCELLED})


def state_name(state: int) -> str:
    return gw.JobState.Name(state).removeprefix("JOB_STATE_").lower()


def new_job_id(tenant: str, request_id: str) -> str:
    """Deterministic for an idempotency key (a retried create names the same job), else time-ordered."""
    if request_id:
        return "r" + hashlib.sha256(f"{tenant}\x00{request_id}".encode()).hexdigest()[:24]
    return f"t{time.time_ns() // 1_000_000:012x}{secrets.token_hex(6)}"


def job_key(tenant: str, job_id: str) -> str:
    return f"jobs/{tenant}/{job_id}.json"


def active_key(tenant: str, job_id: str) -> str:
    return f"active/{tenant}/{job_id}"


def lease_prefix(tenant: str, job_id: str) -> str:
    return f"leases/{tenant}/{job_id}/"


def parse_name(name: str) -> str:
    """'jobs/<id>' -> '<id>'; anything else is not a job of this API."""
    prefix, _, job_id = name.partition("/")
    if prefix != "jobs" or not job_id or "/" in job_id or not job_id.isalnum():
        raise NotFoundError(f"job {name!r} not found", name=name)
    return job_id


class JobStore:
    """Reads and writes job records; every write replaces the whole record atomically."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def create(self, job: gw.Job) -> tuple[gw.Job, bool]:
        """Writes a new record; when the id exists already (a retried create), returns the stored one."""
        job_id = job.name.split("/", 1)[1]
        data = json_format.MessageToJson(job).encode()
        if not self.store.put_if_absent(job_key(job.tenant, job_id), data, content_type="application/json"):
            return self.get(job.tenant, job_id), False
        self.store.put_bytes(active_key(job.tenant, job_id), job_id.encode(), content_type="text/plain")
        return job, True

    def get(self, tenant: str, job_id: str) -> gw.Job:
        key = job_key(tenant, job_id)
        try:
            data = self.store.get_bytes(key)
        except NotFoundError:
            raise NotFoundError(f"job 'jobs/{job_id}' not found", name=f"jobs/{job_id}") from None
        except FileNotFoundError:
            raise NotFoundError(f"job 'jobs/{job_id}' not found", name=f"jobs/{job_id}") from None
        job = gw.Job()
        try:
            json_format.Parse(data, job)
        except json_format.ParseError as exc:
            raise FailedPreconditionError(f"job record {key} is corrupt: {exc}", rule="jobs.corrupt") from None
        return job

    def exists(self, tenant: str, job_id: str) -> bool:
        return bool(self.store.exists(job_key(tenant, job_id)))

    def put(self, job: gw.Job) -> None:
        job_id = job.name.split("/", 1)[1]
        self.store.put_bytes(job_key(job.tenant, job_id), json_format.MessageToJson(job).encode(),
                             content_type="application/json")
        if job.state in TERMINAL_STATES:
            self.store.delete(active_key(job.tenant, job_id))

    def list_ids(self, tenant: str) -> list[str]:
        prefix = f"jobs/{tenant}/"
        return sorted(k[len(prefix):-len(".json")] for k in self.store.list(prefix) if k.endswith(".json"))

    def active(self) -> Iterator[tuple[str, str]]:
        """(tenant, id) of every job that is not terminal, whoever owns it."""
        for key in self.store.list("active/"):
            parts = key.split("/")
            if len(parts) == 3:
                yield parts[1], parts[2]


@dataclass
class Lease:
    tenant: str
    job_id: str
    generation: int
    owner: str
    expires_at: float

    @property
    def key(self) -> str:
        return f"{lease_prefix(self.tenant, self.job_id)}{self.generation:010d}"

    def to_bytes(self) -> bytes:
        return json.dumps({"owner": self.owner, "expires_at": self.expires_at}).encode()


class LeaseManager:
    """Exactly-one-runner leases with expiry, on top of put_if_absent."""

    def __init__(self, store: Any, owner: str, ttl_s: float = 15.0) -> None:
        self.store = store
        self.owner = owner
        self.ttl_s = ttl_s

    def _latest(self, tenant: str, job_id: str) -> Lease | None:
        prefix = lease_prefix(tenant, job_id)
        gens = sorted(k for k in self.store.list(prefix))
        if not gens:
            return None
        key = gens[-1]
        try:
            doc = json.loads(self.store.get_bytes(key))
        except (NotFoundError, FileNotFoundError):
            return None
        return Lease(tenant, job_id, int(key[len(prefix):]), str(doc["owner"]), float(doc["expires_at"]))

    def acquire(self, tenant: str, job_id: str) -> Lease | None:
        """Takes the lease when it is free, expired, or ours from before a restart; None when held."""
        cur = self._latest(tenant, job_id)
        now = time.time()
        if cur is not None and cur.owner != self.owner and cur.expires_at > now:
            return None
        lease = Lease(tenant, job_id, (cur.generation if cur else 0) + 1, self.owner, now + self.ttl_s)
        if not self.store.put_if_absent(lease.key, lease.to_bytes(), content_type="application/json"):
            return None
        # Older generations are history; drop them so listings stay short.
        if cur is not None:
            self._delete_quietly(cur.key)
        return lease

    def renew(self, lease: Lease) -> bool:
        """Extends the lease; False when another replica has taken it over (then stop running the job)."""
        cur = self._latest(lease.tenant, lease.job_id)
        if cur is None or cur.generation != lease.generation or cur.owner != self.owner:
            return False
        lease.expires_at = time.time() + self.ttl_s
        self.store.put_bytes(lease.key, lease.to_bytes(), content_type="application/json")
        return True

    def holds(self, lease: Lease) -> bool:
        cur = self._latest(lease.tenant, lease.job_id)
        return cur is not None and cur.generation == lease.generation and cur.owner == self.owner

    def release(self, lease: Lease) -> None:
        self._delete_quietly(lease.key)

    def _delete_quietly(self, key: str) -> None:
        try:
            self.store.delete(key)
        except (NotFoundError, FileNotFoundError):
            pass
