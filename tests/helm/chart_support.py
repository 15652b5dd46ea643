"""Render the charts with Helm's own engine (helm-python-sdk) and validate what comes out; no cluster, no network.

Kubernetes objects are validated against the schemas kubernetes-validate ships in its package, for one
pinned Kubernetes version. KEDA's ScaledObject and prometheus-operator's ServiceMonitor are CRDs those
schemas lack; `CRD_SCHEMAS` holds minimal JSON schemas of the fields this chart sets, from the CRDs'
documented structure.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "helm" / "qwen3guard"
EXAMPLE_DIR = REPO / "helm" / "examples" / "llm-with-guard"
# The first release with resource.k8s.io/v1 (DRA), which sidecar mode's GPU sharing uses.
KUBE_VERSION = "1.34.0"
RELEASE = "guard"
NAMESPACE = "safety"
# A key is required to render at all (see test_refusals), and one for the gateway's clients when it is on;
# the tests use Secrets that "exist".
API_KEY = {
    "apiKey": {"existingSecret": "guard-api-key"},
    "gateway": {"apiKeys": {"existingSecret": "gateway-api-keys"}},
}

Manifest = dict[str, Any]
Render = Callable[..., list[Manifest]]

_QUANTITY = {"type": ["integer", "string"]}


def _crd(api_version: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The schema of a custom resource of `api_version` whose spec is `spec`'s schema."""
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"apiVersion": {"const": api_version}, "spec": spec},
    }


CRD_SCHEMAS: dict[str, dict[str, Any]] = {
    "ScaledObject": _crd(
        "keda.sh/v1alpha1",
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}, "kind": {"type": "string"}},
                },
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer"},
                "advanced": {"type": "object"},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"type": "string"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            # KEDA's trigger metadata is a map of strings: a number here is refused.
                            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                        },
                    },
                },
            },
        },
    ),
    "ServiceMonitor": _crd(
        "monitoring.coreos.com/v1",
        {
            "type": "object",
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": {
                    "type": "object",
                    "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}},
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["port"],
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            "scrapeTimeout": _QUANTITY,
                        },
                    },
                },
            },
        },
    ),
}


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep merge as Helm merges `-f` files and `--set`: maps merge key by key, anything else is replaced."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def values_file(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART_DIR / name).read_text())
    return loaded


def manifests(rendered: dict[str, str]) -> list[Manifest]:
    """The objects of a render, in template order, NOTES.txt left out."""
    return [
        doc
        for path, text in sorted(rendered.items())
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def validate(obj: Manifest) -> None:
    """Raise unless `obj` is a valid object of its kind (Kubernetes schemas, or the CRD schemas above)."""
    if obj["kind"] in CRD_SCHEMAS:
        jsonschema.Draft202012Validator(CRD_SCHEMAS[obj["kind"]]).validate(obj)
    else:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def only(objs: list[Manifest], kind: str) -> Manifest:
    found = [obj for obj in objs if obj["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {[obj['metadata']['name'] for obj in found]}"
    return found[0]


def kinds(objs: list[Manifest]) -> list[str]:
    return sorted(obj["kind"] for obj in objs)


def pod_spec(objs: list[Manifest]) -> dict[str, Any]:
    spec: dict[str, Any] = only(objs, "Deployment")["spec"]["template"]["spec"]
    return spec


def container(spec: dict[str, Any], name: str) -> dict[str, Any]:
    """A container of the pod by name, whether regular or a (native sidecar) init container."""
    found = [c for c in spec.get("containers", []) + spec.get("initContainers", []) if c["name"] == name]
    assert len(found) == 1, f"no single container {name!r} in the pod"
    return found[0]


def env(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}
