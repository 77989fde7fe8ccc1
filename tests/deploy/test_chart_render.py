"""Render the chart offline for every value set and validate what comes out."""

from __future__ import annotations

import ast
import copy
import importlib
import json
import pathlib
import re
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.chart import (
    CHART_DIR,
    NAMESPACE,
    REPO_ROOT,
    VALUE_SETS,
    Rendered,
    lint,
    load_value_set,
    pod_specs,
    render,
)
from tests.deploy.conftest import rendered_set
from tests.deploy.crds import CRD_FILES, validate_custom_resource

KUBE_VERSIONS = ("1.30.0", "1.34.0")
CUSTOM_GROUPS = ("ray.io", "monitoring.coreos.com")


def _is_custom(obj: dict[str, Any]) -> bool:
    return obj["apiVersion"].split("/")[0] in CUSTOM_GROUPS


def _kinds(r: Rendered) -> set[str]:
    return {o["kind"] for o in r.objects}


def _serve_config(r: Rendered) -> dict[str, Any]:
    return yaml.safe_load(r.one("RayService")["spec"]["serveConfigV2"])


def _groups(r: Rendered) -> dict[str, dict[str, Any]]:
    cluster = r.one("RayService")["spec"]["rayClusterConfig"]
    return {g["groupName"]: g for g in cluster["workerGroupSpecs"]}


def _ray_resources(group: dict[str, Any]) -> dict[str, float]:
    """Custom Ray resources a group advertises: rayStartParams.resources is a quoted JSON string
    (KubeRay passes it to `ray start --resources=` through a shell, hence the extra quotes)."""
    raw = group["rayStartParams"].get("resources")
    if raw is None:
        return {}
    if not (raw.startswith('"') and raw.endswith('"')):
        raise ValueError(f"rayStartParams.resources must be a quoted JSON string, got {raw!r}")
    parsed: dict[str, float] = json.loads(json.loads(raw))
    return parsed


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


# ---------------------------------------------------------------- rendering and schema validation


def test_render_produces_expected_kinds_with_each_value_set(rendered: Rendered) -> None:
    kinds = _kinds(rendered)
    values = rendered.values
    assert {"Deployment", "Service", "ServiceAccount", "RayService", "Secret"} <= kinds
    minio = values.get("minio", {}).get("enabled", True)
    assert ("StatefulSet" in kinds) is minio
    metrics = values.get("metrics", {})
    assert ("ServiceMonitor" in kinds) is metrics.get("serviceMonitor", {}).get("enabled", False)
    assert ("PodMonitor" in kinds) is metrics.get("podMonitor", {}).get("enabled", False)
    assert ("PrometheusRule" in kinds) is metrics.get("prometheusRule", {}).get("enabled", False)
    assert ("ConfigMap" in kinds) is metrics.get("dashboard", {}).get("enabled", True)
    assert ("NetworkPolicy" in kinds) is values.get("networkPolicy", {}).get("enabled", True)
    assert ("PodDisruptionBudget" in kinds) is values.get("pdb", {}).get("enabled", True)
    assert ("HorizontalPodAutoscaler" in kinds) is values.get("gateway", {}).get("autoscaling", {}).get("enabled", True)
    # Every object lands in one namespace-scoped kind with app.kubernetes.io labels.
    for obj in rendered.objects:
        labels = obj["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/instance") == "mc", obj["metadata"]["name"]
        assert labels.get("app.kubernetes.io/managed-by") == "Helm"
        assert len(obj["metadata"]["name"]) <= 63
    assert "Runbook: deploy/README.md" in rendered.notes


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_builtin_kinds_validate_strictly_with_kubernetes_version(rendered: Rendered, kube_version: str) -> None:
    failures = []
    for obj in rendered.objects:
        if _is_custom(obj):
            continue
        try:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {path}: {exc.message[:300]}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            failures.append(exc.message)
    assert not failures, "\n".join(failures)


def test_strict_validation_rejects_unknown_field_with_misspelled_container_key() -> None:
    deployment = copy.deepcopy(rendered_set("default").one("Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"grpc": {"port": 50051}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[0], strict=True)


def test_custom_resources_validate_against_crd_schemas_with_each_value_set(
    rendered: Rendered, crds_present: None
) -> None:
    custom = [o for o in rendered.objects if _is_custom(o)]
    assert custom, "every value set renders at least the RayService"
    failures = [msg for obj in custom for msg in validate_custom_resource(obj)]
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    "kind,mutate",
    [
        ("RayService", lambda o: o["spec"]["rayClusterConfig"]["workerGroupSpecs"][0].update(minReplica=1)),
        ("RayService", lambda o: o["spec"]["rayClusterConfig"].update(enableInTreeAutoscaling="yes")),
        ("ServiceMonitor", lambda o: o["spec"]["endpoints"][0].update(interval=30)),
        ("PodMonitor", lambda o: o["spec"].update(podMetricsEndpoint=[])),
        ("PrometheusRule", lambda o: o["spec"]["groups"][0]["rules"][0].pop("expr")),
    ],
)
def test_crd_validation_rejects_object_with_schema_violation(kind: str, mutate: Any, crds_present: None) -> None:
    obj = copy.deepcopy(rendered_set("gpu-prod").one(kind))
    assert validate_custom_resource(obj) == []
    mutate(obj)
    assert validate_custom_resource(obj), f"a broken {kind} passed its CRD schema"


def test_crd_files_define_the_kinds_the_chart_renders(crds_present: None) -> None:
    rendered_kinds = {(o["apiVersion"].split("/")[0], o["kind"]) for vs in VALUE_SETS for o in rendered_set(vs).objects}
    custom = {k for k in rendered_kinds if k[0] in CUSTOM_GROUPS}
    assert custom <= set(CRD_FILES), custom - set(CRD_FILES)


@pytest.mark.parametrize("kube_version", ["v1.30.0", "v1.34.0"])
@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_lint_reports_no_warnings_with_value_set(value_set: str, kube_version: str) -> None:
    report = lint(load_value_set(value_set), kube_version)
    assert report["total_charts_linted"] == 1
    assert not report["errors"], report["errors"]
    # Severity 1 is informational ("icon is recommended"); warnings (2) and errors (3) fail.
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems, problems


# ---------------------------------------------------------------- values.schema.json


@pytest.mark.parametrize(
    "bad,where",
    [
        ({"gpu": {"enabled": "yes"}}, "/gpu/enabled"),
        ({"gateway": {"grpcPort": 70000}}, "/gateway/grpcPort"),
        ({"gateway": {"image": {"pullPolicy": "Sometimes"}}}, "/gateway/image/pullPolicy"),
        ({"gateway": {"autoscaling": {"targetCPUUtilizationPercentage": 150}}}, "targetCPUUtilizationPercentage"),
        ({"gateway": {"apiKeys": {"keys": {"short": "tenant"}}}}, "invalid propertyName 'short'"),
        ({"podSecurityContext": {"runAsNonRoot": False}}, "/podSecurityContext/runAsNonRoot"),
        ({"securityContext": {"allowPrivilegeEscalation": True}}, "/securityContext/allowPrivilegeEscalation"),
        ({"ray": {"apps": {"pose": {"runtime": "onnx"}}}}, "/ray/apps/pose/runtime"),
        ({"ray": {"apps": {"render": {"maxOngoingRequests": 0}}}}, "/ray/apps/render/maxOngoingRequests"),
        ({"ray": {"apps": {"retarget": {"importPath": "services.retarget.app"}}}}, "/ray/apps/retarget/importPath"),
        ({"ray": {"workerGroups": {"gpuLarge": {"resources": {"requests": {"cpu": "lots"}}}}}}, "/requests/cpu"),
        ({"ray": {"upgradeStrategy": "InPlace"}}, "/ray/upgradeStrategy"),
        ({"objectStore": {"bucket": "Bad_Bucket"}}, "/objectStore/bucket"),
        ({"metrics": {"prometheusRule": {"errorRatio": 5}}}, "/metrics/prometheusRule/errorRatio"),
        ({"metrics": {"serviceMonitor": {"interval": "30 seconds"}}}, "/metrics/serviceMonitor/interval"),
        ({"unknownTopLevel": True}, "unknownTopLevel"),
    ],
)
def test_values_schema_rejects_values_with_bad_type_or_range(bad: dict[str, Any], where: str) -> None:
    import helm_python

    with helm_python.Chart.load(CHART_DIR) as chart:
        with pytest.raises(helm_python.HelmValuesError, match=re.escape(where)):
            chart.validate_schema(bad)
    # Rendering enforces the schema too, so `helm install` refuses the same values.
    with pytest.raises(helm_python.HelmValuesError, match=re.escape(where)):
        render(bad)


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_values_schema_accepts_values_with_shipped_value_set(value_set: str) -> None:
    import helm_python

    with helm_python.Chart.load(CHART_DIR) as chart:
        chart.validate_schema(load_value_set(value_set))


def test_render_fails_with_external_store_and_no_credentials() -> None:
    import helm_python

    with pytest.raises(helm_python.HelmRenderError, match="objectStore.secretKey or objectStore.existingSecret"):
        render({"minio": {"enabled": False}, "objectStore": {"endpoint": "s3.internal:9000"}})
    with pytest.raises(helm_python.HelmRenderError, match="objectStore.endpoint is required"):
        render({"minio": {"enabled": False}, "objectStore": {"existingSecret": "s3"}})


# ---------------------------------------------------------------- security and probes


def test_every_pod_runs_non_root_read_only_with_dropped_capabilities(rendered: Rendered) -> None:
    checked = 0
    for obj in rendered.objects:
        for where, spec in pod_specs(obj):
            name = f"{obj['kind']}/{obj['metadata']['name']} ({where})"
            psc = spec.get("securityContext", {})
            assert psc.get("runAsNonRoot") is True, name
            assert psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
            mounts_by_volume = {v["name"]: v for v in spec.get("volumes", [])}
            for c in spec["containers"] + spec.get("initContainers", []):
                csc = c.get("securityContext", {})
                assert csc.get("readOnlyRootFilesystem") is True, f"{name} {c['name']}"
                assert csc.get("allowPrivilegeEscalation") is False, f"{name} {c['name']}"
                assert csc.get("capabilities", {}).get("drop") == ["ALL"], f"{name} {c['name']}"
                assert not csc.get("privileged", False)
                # A read-only root needs a writable /tmp.
                tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
                assert tmp and "emptyDir" in mounts_by_volume[tmp[0]["name"]], (
                    f"{name} {c['name']} has no emptyDir /tmp"
                )
                assert "resources" in c and c["resources"].get("limits"), f"{name} {c['name']} has no limits"
                checked += 1
        if obj["kind"] == "RayService":
            autoscaler = obj["spec"]["rayClusterConfig"].get("autoscalerOptions")
            if autoscaler is not None:
                assert autoscaler["securityContext"]["readOnlyRootFilesystem"] is True
                assert autoscaler["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert checked >= 4


def test_long_running_workloads_have_probes_with_native_grpc_on_gateway(rendered: Rendered) -> None:
    gateway = rendered.one("Deployment", "-gateway")
    container = gateway["spec"]["template"]["spec"]["containers"][0]
    grpc_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "grpc")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == grpc_port, probe
    for sts in rendered.of_kind("StatefulSet"):
        for c in sts["spec"]["template"]["spec"]["containers"]:
            assert c["readinessProbe"] and c["livenessProbe"], c["name"]
    # Ray pods: KubeRay injects its raylet / Serve-proxy probes only where the template sets none,
    # and Serve's gRPC proxy does not implement grpc.health.v1, so the chart must leave them unset.
    for where, spec in pod_specs(rendered.one("RayService")):
        for c in spec["containers"]:
            assert "readinessProbe" not in c and "livenessProbe" not in c, where


def test_service_accounts_keep_api_tokens_away_from_pods_with_each_value_set(rendered: Rendered) -> None:
    gateway = rendered.one("Deployment", "-gateway")["spec"]["template"]["spec"]
    assert gateway["automountServiceAccountToken"] is False
    for where, spec in pod_specs(rendered.one("RayService")):
        if where.startswith("worker:"):
            assert spec["automountServiceAccountToken"] is False, where


# ---------------------------------------------------------------- Ray Serve layout


def test_grpc_servicer_functions_import_with_generated_protos() -> None:
    config = _serve_config(rendered_set("default"))
    functions = config["grpc_options"]["grpc_servicer_functions"]
    assert len(functions) == 3
    for path in functions:
        module, _, name = path.rpartition(".")
        assert callable(getattr(importlib.import_module(module), name)), path


def test_serve_config_sets_ingress_concurrency_and_autoscaling_with_each_value_set(rendered: Rendered) -> None:
    config = _serve_config(rendered)
    apps = {a["name"]: a for a in config["applications"]}
    assert set(apps) == {"pose", "retarget", "render"}
    assert len({a["route_prefix"] for a in apps.values()}) == 3
    assert config["proxy_location"] == "EveryNode"
    assert config["grpc_options"]["port"] == 9000
    for name, app in apps.items():
        (deployment,) = app["deployments"]
        # Serve's default max_ongoing_requests (5) collapses throughput behind the gRPC ingress.
        assert deployment["max_ongoing_requests"] > 5, name
        auto = deployment["autoscaling_config"]
        assert 1 <= auto["min_replicas"] <= auto["max_replicas"], name
        assert auto["target_ongoing_requests"] <= deployment["max_ongoing_requests"], name
        assert app["import_path"] == f"services.{name}.app:build_app"
        assert deployment["name"] == f"{name.capitalize()}Service"


def test_rayservice_places_pose_on_small_gpus_and_render_on_large_gpus_with_gpu_enabled() -> None:
    r = rendered_set("gpu-prod")
    values = load_value_set("gpu-prod")
    groups = _groups(r)
    assert set(groups) == {"cpu", "gpu-small", "gpu-large"}
    apps = {a["name"]: a["deployments"][0]["ray_actor_options"] for a in _serve_config(r)["applications"]}
    placement = {
        "pose": ("gpu-small", "gpuSmall"),
        "render": ("gpu-large", "gpuLarge"),
        "retarget": ("cpu", "cpu"),
    }
    for app, (group_name, values_key) in placement.items():
        options = apps[app]
        (resource,) = options["resources"]
        offering = [g for g, spec in groups.items() if _ray_resources(spec).get(resource, 0) >= 1]
        assert offering == [group_name], (app, resource, offering)
        group = groups[group_name]
        pod = group["template"]["spec"]
        container = pod["containers"][0]
        if group_name == "cpu":
            assert "num_gpus" not in options
            assert "nvidia.com/gpu" not in container["resources"]["limits"]
            assert container["image"].endswith("/worker:0.1.0")
            continue
        assert options["num_gpus"] > 0
        assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
        assert "/worker-cuda:" in container["image"]
        assert "graphics" in _env(container)["NVIDIA_DRIVER_CAPABILITIES"]
        expected_selector = values["ray"]["workerGroups"][values_key]["nodeSelector"]
        assert pod["nodeSelector"] == expected_selector
        assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    assert r.one("RayService")["spec"]["rayClusterConfig"]["enableInTreeAutoscaling"] is True
    # The head runs no replicas, so a GPU group scales from its Serve queue alone.
    assert r.one("RayService")["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"


def test_rayservice_runs_every_stage_on_cpu_group_with_gpu_disabled() -> None:
    r = rendered_set("cpu-dev")
    groups = _groups(r)
    assert set(groups) == {"cpu"}
    for app in _serve_config(r)["applications"]:
        options = app["deployments"][0]["ray_actor_options"]
        assert "num_gpus" not in options, app["name"]
        assert set(options["resources"]) == {"motion_cpu"}
    for _, spec in pod_specs(r.one("RayService")):
        container = spec["containers"][0]
        assert "nvidia.com/gpu" not in container["resources"]["limits"]
        assert "NVIDIA_DRIVER_CAPABILITIES" not in _env(container)
        assert container["image"] == "motion-control/worker:dev"


def test_gateway_dials_the_serve_service_the_rayservice_defines(rendered: Rendered) -> None:
    rayservice = rendered.one("RayService")
    serve_svc = rayservice["spec"]["serveService"]
    grpc_port = next(p["port"] for p in serve_svc["spec"]["ports"] if p["name"] == "grpc-serve")
    env = _env(rendered.one("Deployment", "-gateway")["spec"]["template"]["spec"]["containers"][0])
    for key in ("MOTION_GATEWAY_POSE_ADDR", "MOTION_GATEWAY_RETARGET_ADDR", "MOTION_GATEWAY_RENDER_ADDRS"):
        assert env[key] == f"{serve_svc['metadata']['name']}:{grpc_port}", key
    assert env["MOTION_GATEWAY_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["MOTION_BIND_HOST"] == "0.0.0.0"
    assert env["MOTION_STORE_URL"].startswith("s3://")
    # The drain must end before the kubelet's SIGKILL.
    grace_s = rendered.one("Deployment", "-gateway")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert float(env["MOTION_GATEWAY_DRAIN_TIMEOUT_S"]) < grace_s


def test_render_fails_with_drain_timeout_longer_than_grace_period() -> None:
    import helm_python

    with pytest.raises(helm_python.HelmRenderError, match="drainTimeoutS"):
        render({"gateway": {"drainTimeoutS": 90, "terminationGracePeriodSeconds": 60}})


@pytest.mark.parametrize(
    "value_set,secret_name,created",
    [("cpu-dev", "mc-motion-control-gateway-api-keys", True), ("gpu-prod", "motion-api-keys", False), ("default", None, False)],
)
def test_gateway_mounts_api_keys_file_with_configured_keys(value_set: str, secret_name: str | None, created: bool) -> None:
    r = rendered_set(value_set)
    spec = r.one("Deployment", "-gateway")["spec"]["template"]["spec"]
    env = _env(spec["containers"][0])
    volumes = {v["name"]: v for v in spec["volumes"]}
    created_secrets = {s["metadata"]["name"]: s for s in r.of_kind("Secret")}
    if secret_name is None:
        assert "MOTION_API_KEYS_FILE" not in env and "api-keys" not in volumes
        assert "WARNING: no client API keys" in r.notes
        return
    assert volumes["api-keys"]["secret"]["secretName"] == secret_name
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "api-keys")
    assert mount["readOnly"] is True
    assert env["MOTION_API_KEYS_FILE"] == f"{mount['mountPath']}/api-keys.yaml"
    assert (secret_name in created_secrets) is created
    if created:
        keys = yaml.safe_load(created_secrets[secret_name]["stringData"]["api-keys.yaml"])
        assert keys == load_value_set(value_set)["gateway"]["apiKeys"]["keys"]


# ---------------------------------------------------------------- network policies


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _pod_labels(r: Rendered) -> dict[str, dict[str, str]]:
    labels = {
        "gateway": r.one("Deployment", "-gateway")["spec"]["template"]["metadata"]["labels"],
        "ray": r.one("RayService")["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["metadata"]["labels"],
    }
    if r.of_kind("StatefulSet"):
        labels["minio"] = r.one("StatefulSet")["spec"]["template"]["metadata"]["labels"]
        labels["minio-setup"] = r.one("Job")["spec"]["template"]["metadata"]["labels"]
    return labels


def _admitted_pods(policy: dict[str, Any], pods: dict[str, dict[str, str]]) -> set[str]:
    """Motion pods (same namespace) that some ingress rule of `policy` admits."""
    admitted = set()
    for rule in policy["spec"].get("ingress", []):
        peers = rule.get("from")
        for pod, labels in pods.items():
            if peers is None or any("podSelector" in p and "namespaceSelector" not in p and _selects(p["podSelector"], labels) for p in peers):
                admitted.add(pod)
    return admitted


def test_network_policies_admit_only_gateway_to_stages_and_services_to_minio() -> None:
    r = rendered_set("gpu-prod")
    pods = _pod_labels(r)
    policies = {p["metadata"]["name"].rsplit("-", 1)[-1]: p for p in r.of_kind("NetworkPolicy")}
    assert set(policies) == {"gateway", "ray", "minio"}
    for name, policy in policies.items():
        assert _selects(policy["spec"]["podSelector"], pods[name]), name
        assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert _admitted_pods(policies["ray"], pods) == {"gateway", "ray"}
    gateway_rule = next(
        rule for rule in policies["ray"]["spec"]["ingress"]
        if any(_selects(p.get("podSelector", {}), pods["gateway"]) for p in rule["from"])
    )
    assert [p["port"] for p in gateway_rule["ports"]] == [9000]
    assert _admitted_pods(policies["minio"], pods) == {"gateway", "ray", "minio-setup"}
    # gpu-prod restricts the public API to the ingress controller's namespace.
    api_rule = policies["gateway"]["spec"]["ingress"][0]
    assert api_rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]


# ---------------------------------------------------------------- object store and secrets


def test_external_minio_uses_existing_secret_and_endpoint_without_minio_objects() -> None:
    r = rendered_set("external-minio")
    assert not r.of_kind("StatefulSet") and not r.of_kind("Job")
    secrets = {s["metadata"]["name"] for s in r.of_kind("Secret")}
    assert secrets == {"mc-motion-control-internal-auth"}
    for obj in (r.one("Deployment", "-gateway"), r.one("RayService")):
        for _, spec in pod_specs(obj):
            env = _env(spec["containers"][0])
            assert env["MOTION_S3_ENDPOINT"] == "minio.storage.svc.cluster.local:443"
            assert env["MOTION_S3_SECURE"] == "true"
            assert env["MOTION_STORE_URL"] == "s3://motion-control-prod"
            assert env["MOTION_S3_ACCESS_KEY"] == {
                "secretKeyRef": {"name": "motion-s3-credentials", "key": "AWS_ACCESS_KEY_ID"}
            }
            assert env["MOTION_S3_SECRET_KEY"]["secretKeyRef"]["key"] == "AWS_SECRET_ACCESS_KEY"


def test_in_chart_minio_shares_generated_credentials_with_services() -> None:
    r = rendered_set("default")
    s3 = r.one("Secret", "-s3")
    assert s3["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert set(s3["data"]) == {"access-key", "secret-key"}
    minio_env = _env(r.one("StatefulSet")["spec"]["template"]["spec"]["containers"][0])
    gateway_env = _env(r.one("Deployment", "-gateway")["spec"]["template"]["spec"]["containers"][0])
    assert minio_env["MINIO_ROOT_PASSWORD"] == gateway_env["MOTION_S3_SECRET_KEY"]
    assert gateway_env["MOTION_S3_ENDPOINT"] == "mc-motion-control-minio:9000"
    # A fresh install generates a different key each time (offline: no Secret to look up).
    again = render({}).one("Secret", "-s3")
    assert again["data"]["secret-key"] != s3["data"]["secret-key"]


# ---------------------------------------------------------------- scaling


def test_gateway_scales_and_drains_safely_with_each_value_set(rendered: Rendered) -> None:
    deployment = rendered.one("Deployment", "-gateway")
    strategy = deployment["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0
    hpas = rendered.of_kind("HorizontalPodAutoscaler")
    pdbs = rendered.of_kind("PodDisruptionBudget")
    if hpas:
        (hpa,) = hpas
        assert "replicas" not in deployment["spec"], "the HPA owns replicas"
        assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        if pdbs:
            # A PDB that demands every replica would block node drains forever.
            assert pdbs[0]["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]


def test_gateway_hpa_scales_on_queue_depth_with_target_set() -> None:
    hpa = rendered_set("gpu-prod").one("HorizontalPodAutoscaler")
    pods_metrics = [m for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert pods_metrics[0]["pods"]["metric"]["name"] == "motion_gateway_queue_depth"
    default_hpa = rendered_set("default").one("HorizontalPodAutoscaler")
    assert [m["type"] for m in default_hpa["spec"]["metrics"]] == ["Resource"]


def test_release_objects_stay_in_release_namespace_with_monitors() -> None:
    r = rendered_set("gpu-prod")
    for kind in ("ServiceMonitor", "PodMonitor"):
        assert r.one(kind)["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]
        assert r.one(kind)["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_render_fails_with_worker_group_min_above_max() -> None:
    import helm_python

    with pytest.raises(helm_python.HelmRenderError, match="minReplicas 5 > maxReplicas 2"):
        render({"ray": {"workerGroups": {"cpu": {"minReplicas": 5, "maxReplicas": 2}}}})


def test_api_keys_secret_parses_with_gateway_auth_loader(tmp_path: pathlib.Path) -> None:
    from services.gateway.auth import parse_file

    secret = rendered_set("cpu-dev").one("Secret", "-api-keys")
    path = tmp_path / "api-keys.yaml"
    path.write_text(secret["stringData"]["api-keys.yaml"])
    keys = parse_file(path)
    assert keys == load_value_set("cpu-dev")["gateway"]["apiKeys"]["keys"]


def _deployment_names_and_builders(source: str) -> tuple[set[str], set[str]]:
    """serve.deployment(name=...) values and module-level function names in an app.py."""
    tree = ast.parse(source)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func) in ("serve.deployment", "deployment"):
            for kw in node.keywords:
                if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                    names.add(str(kw.value.value))
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    return names, functions


@pytest.mark.parametrize("stage", ["pose", "retarget", "render"])
def test_serve_config_names_match_stage_app_with_its_source(stage: str) -> None:
    app_file = REPO_ROOT / "services" / stage / "app.py"
    if not app_file.is_file():
        pytest.skip(f"services/{stage}/app.py does not exist yet")
    # Parsed, not imported: the apps import ray, which only the worker images install.
    names, functions = _deployment_names_and_builders(app_file.read_text())
    app = next(a for a in _serve_config(rendered_set("default"))["applications"] if a["name"] == stage)
    module, _, builder = app["import_path"].partition(":")
    assert module == f"services.{stage}.app"
    assert builder in functions, f"{app_file} has no {builder}()"
    assert app["deployments"][0]["name"] in names, (app["deployments"][0]["name"], names)
