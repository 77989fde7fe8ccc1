"""Validate custom resources against the openAPIV3Schema of their CRDs (read from ../shared/crds)."""

from __future__ import annotations

import copy
import functools
import pathlib
from typing import Any

import jsonschema
import yaml

from tests.deploy.chart import CRD_DIR

# kind -> CRD file in ../shared/crds (see its SOURCES.md for the upstream commits).
CRD_FILES = {
    ("ray.io", "RayService"): "ray.io_rayservices.yaml",
    ("ray.io", "RayCluster"): "ray.io_rayclusters.yaml",
    ("monitoring.coreos.com", "ServiceMonitor"): "monitoring.coreos.com_servicemonitors.yaml",
    ("monitoring.coreos.com", "PodMonitor"): "monitoring.coreos.com_podmonitors.yaml",
    ("monitoring.coreos.com", "PrometheusRule"): "monitoring.coreos.com_prometheusrules.yaml",
}


def crd_dir_available(crd_dir: pathlib.Path = CRD_DIR) -> bool:
    return all((crd_dir / name).is_file() for name in CRD_FILES.values())


def closed_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy where every object with declared properties rejects unknown fields.

    The API server prunes unknown fields silently (and `kubectl apply` with strict field validation
    rejects them): closing the schema turns a typo such as `minReplica` into a test failure.
    Objects marked x-kubernetes-preserve-unknown-fields stay open.
    """
    schema = copy.deepcopy(schema)

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                # apiVersion/kind/metadata are always allowed on embedded objects.
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for item in node:
                close(item)

    close(schema)
    return schema


@functools.cache
def validator_for(group: str, kind: str, version: str, crd_dir: pathlib.Path = CRD_DIR) -> jsonschema.Draft7Validator:
    name = CRD_FILES.get((group, kind))
    if name is None:
        raise LookupError(f"no CRD schema known for {kind}.{group}")
    crd = yaml.safe_load((crd_dir / name).read_text())
    if crd["spec"]["names"]["kind"] != kind or crd["spec"]["group"] != group:
        raise LookupError(f"{name} defines {crd['spec']['names']['kind']}.{crd['spec']['group']}, not {kind}.{group}")
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            if not v.get("served", False):
                raise LookupError(f"{kind}.{group}/{version} is not served by this CRD")
            schema = closed_schema(v["schema"]["openAPIV3Schema"])
            return jsonschema.Draft7Validator(schema)
    raise LookupError(f"{name} has no version {version}")


def validate_custom_resource(obj: dict[str, Any], crd_dir: pathlib.Path = CRD_DIR) -> list[str]:
    """Messages for every schema violation of `obj` (empty when valid)."""
    group, _, version = obj["apiVersion"].rpartition("/")
    validator = validator_for(group, obj["kind"], version, crd_dir)
    return [
        f"{obj['kind']}/{obj['metadata']['name']}: {'.'.join(str(p) for p in err.absolute_path)}: {err.message[:300]}"
        for err in validator.iter_errors(obj)
    ]
