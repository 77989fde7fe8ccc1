"""The metric names the Grafana dashboard and the PrometheusRule alerts may query.

The services expose exactly these (gateway and stages via prometheus_client; process_* come with
prometheus_client's default collectors). The chart tests check that every query uses only these names,
and the dashboard-truth test scrapes the real local mesh and checks each MESH_METRICS name exists.
"""

from __future__ import annotations

import re

# name -> labels (besides le on histogram buckets) the queries may group or filter by.
QUERIED_METRICS: dict[str, tuple[str, ...]] = {
    "motion_grpc_requests_total": ("service", "method", "code"),
    "motion_grpc_request_duration_seconds_bucket": ("service", "method", "code", "le"),
    "motion_gateway_jobs": ("state",),
    "motion_gateway_jobs_completed_total": ("state",),
    "motion_gateway_queue_depth": (),
    "motion_gateway_stage_duration_seconds_bucket": ("stage", "le"),
    "motion_gateway_job_duration_seconds_bucket": ("le",),
    "motion_gateway_cache_hits_total": ("kind",),
    "motion_gateway_cache_misses_total": ("kind",),
    "motion_pose_frames_total": (),
    "motion_render_frames_total": (),
    "motion_render_workers_healthy": (),
    "process_cpu_seconds_total": (),
    "process_resident_memory_bytes": (),
    "DCGM_FI_DEV_GPU_UTIL": ("gpu", "Hostname"),
}

# Exported by the NVIDIA GPU operator's DCGM exporter, not by the mesh: the truth test skips these.
EXTERNAL_METRICS = frozenset({"DCGM_FI_DEV_GPU_UTIL"})
MESH_METRICS = frozenset(QUERIED_METRICS) - EXTERNAL_METRICS

# Label values the queries match on (lower-case names of motion.v1.JobState / stages).
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
STAGES = ("pose", "rig", "retarget", "render", "join")

# Labels Prometheus / the operator add at scrape time (not exposed by the services).
TARGET_LABELS = frozenset({"namespace", "pod", "job", "instance", "service", "container", "endpoint", "ray_group"})

_PROMQL_KEYWORDS = frozenset(
    {
        # aggregation operators
        "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
        "quantile", "limitk", "limit_ratio",
        # modifiers and set/logical operators
        "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
        "offset", "atan2", "inf", "nan",
    }
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VAR = re.compile(r"\$\{[^}]*\}|\$\w+")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w.:])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w:])(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression (or Grafana query with $variables) selects.

    Functions (identifiers followed by '('), aggregation keywords, label names in matchers and
    grouping clauses, string literals, ranges and numbers are not metric names.
    """
    text = _STRING.sub('""', expr)
    text = _GRAFANA_VAR.sub("1", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    # Matchers may also select by name: {__name__="x"}; keep that case explicit rather than guess.
    if "__name__" in expr:
        raise ValueError(f"queries must name metrics directly, not through __name__: {expr!r}")
    text = _MATCHERS.sub("", text)
    names = set()
    for match in _IDENT.finditer(text):
        ident, call = match.group(1), match.group(2)
        if call or ident in _PROMQL_KEYWORDS:
            continue
        # Exponents of numbers like 1e3 are excluded by the look-behind on word characters.
        names.add(ident)
    return names


def grafana_label_values_metric(query: str) -> set[str]:
    """Metric in a Grafana templating query such as label_values(metric, label) or query_result(expr)."""
    m = re.fullmatch(r"\s*label_values\(\s*([A-Za-z_:][\w:]*)\s*(\{[^}]*\})?\s*,\s*\w+\s*\)\s*", query)
    if m:
        return {m.group(1)}
    m = re.fullmatch(r"\s*(?:query_result|label_values)\((.*)\)\s*", query, flags=re.S)
    return metric_names(m.group(1)) if m else metric_names(query)
