"""Render the Helm chart offline (helm-python-sdk: Helm's Go engine through libhelm_c, no helm binary)."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field
from typing import Any

import yaml

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "deploy" / "helm" / "motion-control"
CI_VALUES_DIR = CHART_DIR / "ci"
CRD_DIR = (REPO_ROOT.parent / "shared" / "crds").resolve()
RELEASE_NAME = "mc"
NAMESPACE = "motion"

# Value sets every test renders: the chart defaults plus each file in ci/.
VALUE_SETS = ("default", "cpu-dev", "gpu-prod", "external-minio")


@dataclass
class Rendered:
    """The objects one `helm template` produced, with the template each came from."""

    value_set: str
    values: dict[str, Any]
    objects: list[dict[str, Any]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    notes: str = ""

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o.get("kind") == kind]

    def one(self, kind: str, name_suffix: str = "") -> dict[str, Any]:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"].endswith(name_suffix)]
        if len(found) != 1:
            raise LookupError(f"expected one {kind} named *{name_suffix}, found {len(found)}")
        return found[0]


def load_value_set(value_set: str) -> dict[str, Any]:
    """User values of a named set ({} for the chart defaults)."""
    if value_set == "default":
        return {}
    path = CI_VALUES_DIR / f"{value_set}-values.yaml"
    loaded = yaml.safe_load(path.read_text())
    return loaded or {}


def render(values: dict[str, Any] | None = None, value_set: str = "custom") -> Rendered:
    """Render the chart with `values` over its defaults; raises helm_python.HelmError on failure."""
    import helm_python

    with helm_python.Chart.load(CHART_DIR) as chart:
        manifests = chart.render(values=values or {}, name=RELEASE_NAME, namespace=NAMESPACE, is_install=True)
    out = Rendered(value_set=value_set, values=values or {})
    for source in sorted(manifests):
        text = manifests[source]
        if source.endswith("NOTES.txt"):
            out.notes = text
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                out.objects.append(doc)
                out.sources.append(source)
    return out


def render_value_set(value_set: str) -> Rendered:
    return render(load_value_set(value_set), value_set=value_set)


def lint(values: dict[str, Any] | None, kube_version: str) -> dict[str, Any]:
    import helm_python

    return helm_python.lint(CHART_DIR, values or {}, strict=True, namespace=NAMESPACE, kube_version=kube_version)


def pod_specs(obj: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(where, pod spec) for every pod template a workload object carries, RayService groups included."""
    kind = obj["kind"]
    spec = obj.get("spec", {})
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return [(kind, spec["template"]["spec"])]
    if kind == "CronJob":
        return [(kind, spec["jobTemplate"]["spec"]["template"]["spec"])]
    if kind == "RayService":
        cluster = spec["rayClusterConfig"]
        found = [("head", cluster["headGroupSpec"]["template"]["spec"])]
        for group in cluster.get("workerGroupSpecs", []):
            found.append((f"worker:{group['groupName']}", group["template"]["spec"]))
        return found
    return []
