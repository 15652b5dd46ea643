"""The gateway in the chart: beside the guard (standalone) and in front of the main LLM (sidecar).

Every render is schema-validated by the `render` fixture; the rendered configuration file is loaded by the
gateway's own `load_config`, and the rendered command is parsed by the gateway's own argument parser.
"""

from __future__ import annotations

from pathlib import Path

import helm_python as helm
import yaml
from chart_support import API_KEY, RELEASE, Manifest, Render, container, env, merge, only, pod_spec

from deploy.launcher import GATEWAY_CONFIG_PATH, gateway_container_command
from guard_gateway.__main__ import build_parser
from guard_gateway.config import GatewayConfig, load_config
from tools import helm_render

FULLNAME = f"{RELEASE}-qwen3guard"
ON = {"gateway": {"enabled": True}}


def gateway_config(objs: list[Manifest], tmp_path: Path) -> GatewayConfig:
    """The configuration the gateway would run with: the ConfigMap's file plus the container's plain env."""
    gateway = container(pod_spec(objs), "gateway")
    (mount,) = [m for m in gateway["volumeMounts"] if m["name"] == "gateway-config"]
    configmap = only(objs, "ConfigMap")
    (name,) = configmap["data"]
    path = tmp_path / name
    path.write_text(configmap["data"][name])
    assert f"{mount['mountPath']}/{name}" == GATEWAY_CONFIG_PATH
    # Variables from Secrets are names only here; give them a stand-in value.
    environ = {e["name"]: e.get("value", "from-a-secret") for e in gateway.get("env", [])}
    args = build_parser().parse_args(gateway["command"][3:])
    assert args.config == GATEWAY_CONFIG_PATH
    return load_config(path, environ=environ)


def test_standalone_runs_the_gateway_in_the_guards_pod(render: Render, tmp_path: Path) -> None:
    objs = render(**ON)
    spec = pod_spec(objs)
    assert [c["name"] for c in spec["containers"]] == ["qwen3guard", "gateway"]
    gateway = container(spec, "gateway")
    assert gateway["image"] == "qwen3guard-gateway:0.1.0"
    assert gateway["command"] == gateway_container_command(GATEWAY_CONFIG_PATH)
    assert "args" not in gateway
    assert gateway["ports"] == [{"name": "gateway", "containerPort": 8080, "protocol": "TCP"}]
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "gateway"}
    assert gateway["livenessProbe"]["httpGet"] == {"path": "/health", "port": "gateway"}
    assert "nvidia.com/gpu" not in gateway["resources"].get("limits", {})
    assert gateway["securityContext"]["readOnlyRootFilesystem"] is True
    config = gateway_config(objs, tmp_path)
    assert (config.host, config.port, config.guard.url, config.upstream.url) == (
        "0.0.0.0",
        8080,
        "http://localhost:8000",
        None,
    )
    # The guard's key reaches the gateway from the guard's Secret, never through the ConfigMap.
    assert env(gateway)["GUARD_GATEWAY_GUARD__API_KEY"] == {"secretKeyRef": {"name": "guard-api-key", "key": "api-key"}}
    assert "from-a-secret" not in only(objs, "ConfigMap")["data"]["config.yaml"]
    # The clients' keys: a Secret mounted as the file the configuration names.
    keys = {v["name"]: v for v in spec["volumes"]}["gateway-keys"]["secret"]
    assert keys == {"secretName": "gateway-api-keys", "items": [{"key": "api-keys", "path": "api-keys"}]}
    (mount,) = [m for m in gateway["volumeMounts"] if m["name"] == "gateway-keys"]
    assert str(config.auth.api_keys_file) == f"{mount['mountPath']}/api-keys"
    ports = {p["name"]: p["port"] for p in only(objs, "Service")["spec"]["ports"]}
    assert ports == {"guard": 8000, "gateway": 8080}


def test_sidecar_values_put_the_gateway_in_front_of_the_main_llm(render: Render, tmp_path: Path) -> None:
    objs = render("values-sidecar.yaml")
    spec = pod_spec(objs)
    assert [c["name"] for c in spec["containers"]] == ["llm", "gateway"]
    config = gateway_config(objs, tmp_path)
    # One port for the application: upstream = the main LLM, guard = the guard, both on localhost.
    assert config.upstream.url == "http://localhost:8000/v1"
    assert config.guard.url == "http://localhost:8001"
    assert (config.chat.input_mode, config.chat.stream_mode) == ("parallel", "hold_back")


def test_the_users_config_reaches_the_gateway_and_an_explicit_upstream_wins(render: Render, tmp_path: Path) -> None:
    user = {
        "upstream": {"url": "http://llm.other.svc:8000/v1"},
        "cache": {"enabled": False},
        "guard": {"timeout": 5},
        "policy": {"on_guard_failure": "fail_open"},
    }
    objs = render("values-sidecar.yaml", gateway={"config": user, "port": 9090})
    config = gateway_config(objs, tmp_path)
    assert config.upstream.url == "http://llm.other.svc:8000/v1"
    assert (config.cache.enabled, config.guard.timeout, config.port) == (False, 5.0, 9090)
    assert config.guard.url == "http://localhost:8001"  # the chart's, merged beside the user's guard fields
    assert str(config.policy.on_guard_failure) == "fail_open"


def test_monitoring_and_network_policy_cover_the_gateway_port(render: Render) -> None:
    clients = [{"podSelector": {"matchLabels": {"app": "chat"}}}]
    objs = render(**ON, serviceMonitor={"enabled": True}, networkPolicy={"enabled": True, "clients": clients})
    endpoints = [(e["port"], e["path"]) for e in only(objs, "ServiceMonitor")["spec"]["endpoints"]]
    assert endpoints == [("guard", "/metrics"), ("gateway", "/metrics")]
    ingress = only(objs, "NetworkPolicy")["spec"]["ingress"]
    assert ingress[0]["from"] == clients
    assert {"port": "gateway", "protocol": "TCP"} in ingress[0]["ports"]


def test_keys_given_as_values_go_into_a_secret_and_a_changed_config_rolls_the_pods(render: Render) -> None:
    objs = render(gateway={"enabled": True, "apiKeys": {"existingSecret": "", "value": "k1\nk2"}})
    secrets = {s["metadata"]["name"]: s["stringData"] for s in objs if s["kind"] == "Secret"}
    assert secrets == {f"{FULLNAME}-gateway-api-keys": {"api-keys": "k1\nk2"}}
    checksum = "checksum/gateway-config"
    before = only(objs, "Deployment")["spec"]["template"]["metadata"]["annotations"][checksum]
    changed = render(**merge(ON, {"gateway": {"config": {"cache": {"enabled": False}}}}))
    assert only(changed, "Deployment")["spec"]["template"]["metadata"]["annotations"][checksum] != before


def test_without_required_keys_the_gateway_serves_without_auth(render: Render, tmp_path: Path) -> None:
    objs = render(gateway={"enabled": True, "apiKeys": {"required": False, "existingSecret": ""}})
    assert gateway_config(objs, tmp_path).auth.keys() == frozenset()
    assert "gateway-keys" not in {v["name"] for v in pod_spec(objs)["volumes"]}


def test_disabled_renders_nothing_of_the_gateway(render: Render) -> None:
    objs = render()
    assert "ConfigMap" not in {o["kind"] for o in objs}
    assert [c["name"] for c in pod_spec(objs)["containers"]] == ["qwen3guard"]


def test_command_template_is_generated_from_the_launcher() -> None:
    assert helm_render.GATEWAY_TPL.read_text() == helm_render.render_gateway_tpl(), "run `python -m tools.helm_render`"


def test_config_schema_is_generated_from_the_gateway_config() -> None:
    assert helm_render.SCHEMA.read_text() == helm_render.render_schema(), "run `python -m tools.helm_render`"


def test_every_example_config_validates_against_the_generated_schema(chart: helm.Chart) -> None:
    """The full example file (every field, its default) passes the chart's schema: no field is missing from it."""
    example = yaml.safe_load((helm_render.HELM_DIR.parent / "deploy" / "gateway.example.yaml").read_text())
    for field in ("host", "port"):
        example.pop(field)
    example["guard"].pop("url")
    chart.render(merge(API_KEY, {"gateway": {"enabled": True, "config": example}}), name=RELEASE)
