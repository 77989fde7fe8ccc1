"""Prometheus metrics of the gateway and the orchestrator.

Durations and counters go through motion.telemetry (motion_<component>_<thing>_<unit>); the queue depth
and jobs-by-state gauges keep the unit-less names the dashboards and the HPA use.
"""

from __future__ import annotations

from prometheus_client import Gauge

from motion.telemetry import counter, histogram

STAGE_DURATION_S = histogram("gateway", "stage_duration", "Wall time of one orchestrator stage", labels=("stage",))
QUEUE_DEPTH = Gauge("motion_gateway_queue_depth", "Jobs admitted by this gateway and waiting for a runner")
JOBS = Gauge("motion_gateway_jobs", "Jobs known to this gateway by state", ["state"])
CACHE_HITS = counter("gateway", "cache_hits", "Stage results reused from the cache", labels=("kind",))
CACHE_MISSES = counter("gateway", "cache_misses", "Stage results computed", labels=("kind",))
FRAMES_RENDERED = counter("gateway", "frames_rendered", "Frames rendered through the orchestrator")
RANGE_RETRIES = counter("gateway", "range_retries", "Render ranges moved to another worker after a failure")
# state: lower-case motion.v1.JobState name without the prefix (succeeded, failed, cancelled).
JOBS_COMPLETED = counter("gateway", "jobs_completed", "Jobs that reached a terminal state", labels=("state",))
# Creation to terminal state (queue wait included: that is what a client waits), for succeeded and failed jobs.
JOB_DURATION_S = histogram(
    "gateway", "job_duration", "Wall time from job creation to its outcome",
    buckets=(1, 2.5, 5, 10, 20, 30, 60, 90, 120, 180, 300, 600, 900, 1800, 3600),
)
# Render workers whose grpc.health.v1 check answers SERVING, refreshed by the gateway's health poller.
RENDER_WORKERS_HEALTHY = Gauge("motion_render_workers_healthy", "Render workers answering SERVING to health checks")
