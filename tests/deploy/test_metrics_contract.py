"""The dashboard and the alert rules query only metrics in the contract (tests/deploy/metrics_contract.py)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.deploy.conftest import rendered_set
from tests.deploy.metrics_contract import (
    EXTERNAL_METRICS,
    JOB_STATES,
    MESH_METRICS,
    QUERIED_METRICS,
    TARGET_LABELS,
    grafana_label_values_metric,
    metric_names,
)

REQUIRED_ALERTS = {
    "MotionGrpcErrorRatioHigh",
    "MotionQueueDepthHigh",
    "MotionJobLatencySLOBreached",
    "MotionNoHealthyRenderWorkers",
}


def dashboard() -> dict[str, Any]:
    cm = rendered_set("gpu-prod").one("ConfigMap", "-dashboard")
    return json.loads(cm["data"]["motion-control.json"])


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every panel target."""
    out = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    return out


def alert_rules() -> list[dict[str, Any]]:
    rule = rendered_set("gpu-prod").one("PrometheusRule")
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def all_queries() -> list[tuple[str, str]]:
    return dashboard_queries() + [(r["alert"], r["expr"]) for r in alert_rules()]


def label_names(expr: str) -> set[str]:
    """Label names used in matchers and by/without clauses."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    names = set()
    for block in re.findall(r"\{([^{}]*)\}", text):
        names.update(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", block))
    for block in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", text):
        names.update(n.strip() for n in block.split(",") if n.strip())
    return names


@pytest.mark.parametrize(
    "expr,expected",
    [
        ('sum by (service) (rate(motion_grpc_requests_total{code=~"INTERNAL|UNKNOWN"}[5m])) > 0.05',
         {"motion_grpc_requests_total"}),
        ("histogram_quantile(0.95, sum by (stage, le) (rate(x_bucket{namespace=~\"$namespace\"}[$__rate_interval])))",
         {"x_bucket"}),
        ("max(a_healthy) < 1 or absent(a_healthy)", {"a_healthy"}),
        ("avg by (Hostname, gpu) (DCGM_FI_DEV_GPU_UTIL) * 1e3 + rec:rule_rate5m offset 5m", {"DCGM_FI_DEV_GPU_UTIL", "rec:rule_rate5m"}),
        ('sum(a{state="running"}) / ignoring(state) group_left sum without (pod) (b)', {"a", "b"}),
        ("count_values(\"v\", up) unless on(job) topk(3, c)", {"up", "c"}),
    ],
)
def test_metric_names_finds_selected_metrics_with_functions_and_labels_ignored(expr: str, expected: set[str]) -> None:
    assert metric_names(expr) == expected


def test_metric_names_rejects_query_with_name_matcher() -> None:
    with pytest.raises(ValueError, match="__name__"):
        metric_names('sum(rate({__name__=~"motion_.*"}[5m]))')


def test_label_values_query_yields_its_metric_with_grafana_variable() -> None:
    assert grafana_label_values_metric("label_values(motion_gateway_queue_depth, namespace)") == {
        "motion_gateway_queue_depth"
    }


def test_dashboard_queries_use_only_contract_metrics() -> None:
    queries = dashboard_queries()
    assert len(queries) >= 15
    unknown = {(title, name) for title, expr in queries for name in metric_names(expr) if name not in QUERIED_METRICS}
    assert not unknown, unknown
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            assert grafana_label_values_metric(query) <= set(QUERIED_METRICS), variable["name"]


def test_alert_rules_use_only_contract_metrics_and_cover_required_alerts() -> None:
    rules = alert_rules()
    assert REQUIRED_ALERTS <= {r["alert"] for r in rules}
    for rule in rules:
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= MESH_METRICS, (rule["alert"], names - MESH_METRICS)
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["runbook_url"].startswith("deploy/README.md#")


def test_every_contract_metric_is_queried_by_dashboard_or_alerts() -> None:
    used = {name for _, expr in all_queries() for name in metric_names(expr)}
    assert set(QUERIED_METRICS) - used == set()
    assert EXTERNAL_METRICS <= used


def test_queries_use_only_contract_labels() -> None:
    allowed = {label for labels in QUERIED_METRICS.values() for label in labels} | TARGET_LABELS
    for title, expr in all_queries():
        assert label_names(expr) <= allowed, (title, label_names(expr) - allowed)


def test_job_state_matchers_use_contract_state_values() -> None:
    for title, expr in all_queries():
        for value in re.findall(r'state\s*=\s*"([^"]*)"', expr):
            assert value in JOB_STATES, (title, value)


def test_dashboard_has_panels_operators_need() -> None:
    titles = " | ".join(p["title"].lower() for p in dashboard()["panels"])
    for needed in ("jobs by state", "throughput", "by stage", "queue depth", "gpu", "cpu", "cache hit rate",
                   "errors by code"):
        assert needed in titles, needed
    board = dashboard()
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    assert board["uid"] == "motion-control"
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_dashboard_configmap_carries_grafana_sidecar_label() -> None:
    cm = rendered_set("default").one("ConfigMap", "-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
