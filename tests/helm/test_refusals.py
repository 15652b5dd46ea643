"""Values the chart must refuse at render time, with a message that names the field and says what is wrong."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest
from chart_support import API_KEY, RELEASE, merge

MAIN = {"name": "llm", "image": "vllm/vllm-openai:v0.32.0"}
#: A main container that declares the port it serves on (the gateway's upstream).
SERVING_MAIN = {**MAIN, "ports": [{"name": "llm", "containerPort": 8000}]}

# Refused by values.schema.json (HelmValuesError) or by the chart's checks (HelmRenderError).
REFUSED: list[tuple[dict[str, Any], type[helm.HelmError], list[str]]] = [
    ({"replicaCount": "two"}, helm.HelmValuesError, ["/replicaCount", "got string, want integer"]),
    ({"autoscaling": {"enabled": "yes"}}, helm.HelmValuesError, ["/autoscaling/enabled", "want boolean"]),
    ({"gpu": {"count": -1}}, helm.HelmValuesError, ["/gpu/count", "minimum: got -1, want 0"]),
    ({"gpu": {"count": 1.5}}, helm.HelmValuesError, ["/gpu/count", "want integer"]),
    ({"mode": "sidecar"}, helm.HelmValuesError, ["/sidecar/mainContainer", "missing properties 'name', 'image'"]),
    (
        {"mode": "sidecar", "sidecar": {"mainContainer": {"name": "llm"}}},
        helm.HelmValuesError,
        ["/sidecar/mainContainer", "missing property 'image'"],
    ),
    (
        {"mode": "sidecar", "sidecar": {"mainContainer": {**MAIN, "ports": [{"containerPort": 8000}]}}},
        helm.HelmValuesError,
        ["/sidecar/mainContainer/ports/0", "missing property 'name'"],
    ),
    ({"mode": "daemonset"}, helm.HelmValuesError, ["/mode", "must be one of 'standalone', 'sidecar', 'embedded'"]),
    ({"profile": "tpu"}, helm.HelmValuesError, ["/profile", "must be one of"]),
    ({"replicas": 2}, helm.HelmValuesError, ["additional properties 'replicas' not allowed"]),
    ({"autoscaling": {"engine": "vpa"}}, helm.HelmValuesError, ["/autoscaling/engine", "must be one of 'keda', 'hpa'"]),
    (
        {"podDisruptionBudget": {"maxUnavailable": "half"}},
        helm.HelmValuesError,
        ["/podDisruptionBudget/maxUnavailable"],
    ),
    ({"image": {"tag": "latest"}}, helm.HelmRenderError, ["image.tag", '"latest"', "pin a release tag"]),
    ({"gpu": {"count": 0}}, helm.HelmRenderError, ["gpu.count", "gpu profile runs on a GPU"]),
    ({"profile": "cpu"}, helm.HelmRenderError, ["gpu.count", "cpu profile uses no GPU"]),
    (
        {"mode": "sidecar", "sidecar": {"mainContainer": {**MAIN, "ports": [{"name": "llm", "containerPort": 8001}]}}},
        helm.HelmRenderError,
        ["sidecar.mainContainer.ports", "8001 is the guard's"],
    ),
]


# The gateway's values (gateway.*), refused by the chart's checks or by the gateway's own schema.
GATEWAY_REFUSED: list[tuple[dict[str, Any], type[helm.HelmError], list[str]]] = [
    ({"gateway": {"enabled": True, "port": 8000}}, helm.HelmRenderError, ["gateway.port", "8000 is the guard's"]),
    (
        {"mode": "sidecar", "sidecar": {"mainContainer": SERVING_MAIN}, "gateway": {"enabled": True, "port": 8001}},
        helm.HelmRenderError,
        ["gateway.port", "8001 is the guard's (profile gpu-sidecar)"],
    ),
    (
        {"mode": "sidecar", "sidecar": {"mainContainer": SERVING_MAIN}, "gateway": {"enabled": True, "port": 8000}},
        helm.HelmRenderError,
        ["gateway.port", "8000 is the main container's (llm)"],
    ),
    (
        {"mode": "sidecar", "sidecar": {"mainContainer": {**SERVING_MAIN, "ports": []}}, "gateway": {"enabled": True}},
        helm.HelmRenderError,
        ["gateway.config.upstream.url", "declares no port"],
    ),
    (
        {"gateway": {"enabled": True, "apiKeys": {"existingSecret": ""}}},
        helm.HelmRenderError,
        ["gateway.apiKeys", "existingSecret", "required=false"],
    ),
    ({"gateway": {"enabled": True, "config": {"port": 9000}}}, helm.HelmRenderError, ["gateway.config.port"]),
    (
        {"gateway": {"enabled": True, "config": {"guard": {"url": "http://x"}}}},
        helm.HelmRenderError,
        ["gateway.config.guard.url", "set by the chart"],
    ),
    (
        {"gateway": {"enabled": True, "config": {"auth": {"api_keys": ["k"]}}}},
        helm.HelmRenderError,
        ["gateway.config.auth.api_keys", "ConfigMap"],
    ),
    (
        {"gateway": {"enabled": True, "config": {"upstream": {"api_key": "sk-x"}}}},
        helm.HelmRenderError,
        ["gateway.config.upstream.api_key", "ConfigMap"],
    ),
    (
        {"mode": "embedded", "gateway": {"enabled": True}},
        helm.HelmRenderError,
        ["gateway.enabled", "embedded mode"],
    ),
    ({"gateway": {"enabled": True, "image": {"tag": "latest"}}}, helm.HelmRenderError, ["gateway.image.tag"]),
    # The gateway's own schema, generated from GatewayConfig, checks gateway.config before anything renders.
    (
        {"gateway": {"config": {"cache": {"enabled": "sometimes"}}}},
        helm.HelmValuesError,
        ["/gateway/config/cache/enabled", "want boolean"],
    ),
    ({"gateway": {"config": {"chache": {}}}}, helm.HelmValuesError, ["/gateway/config", "'chache' not allowed"]),
    (
        {"gateway": {"config": {"chat": {"input_mode": "sometimes"}}}},
        helm.HelmValuesError,
        ["/gateway/config/chat/input_mode", "'pre_call'", "'parallel'"],
    ),
    ({"gateway": {"port": 0}}, helm.HelmValuesError, ["/gateway/port", "minimum"]),
    ({"gateway": {"replicas": 2}}, helm.HelmValuesError, ["/gateway", "'replicas' not allowed"]),
]


@pytest.mark.parametrize(
    ("values", "error", "phrases"), [*REFUSED, *GATEWAY_REFUSED], ids=lambda v: str(v) if isinstance(v, dict) else ""
)
def test_refused_with_a_message_naming_the_field(
    chart: helm.Chart, values: dict[str, Any], error: type[helm.HelmError], phrases: list[str]
) -> None:
    with pytest.raises(error) as refused:
        chart.render(merge(API_KEY, values), name=RELEASE)
    for phrase in phrases:
        assert phrase in str(refused.value)


def test_no_api_key_is_refused_with_what_to_set(chart: helm.Chart) -> None:
    with pytest.raises(helm.HelmRenderError, match=r"apiKey: set apiKey\.existingSecret .* or apiKey\.value"):
        chart.render({}, name=RELEASE)
