"""router.enabled: vllm-router in front of the guard replicas, discovering them through Kubernetes; every object
is schema-validated by the `render` fixture, in both modes."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest
import yaml
from chart_support import API_KEY, NAMESPACE, RELEASE, Manifest, Render, container, merge

from deploy.profiles import load_profile
from deploy.replicas import ROUTER_POLICIES

FULLNAME = f"{RELEASE}-qwen3guard"
ROUTER = f"{FULLNAME}-router"
MAIN = {"name": "llm", "image": "vllm/vllm-openai:v0.32.0", "ports": [{"name": "http", "containerPort": 8000}]}
MODES: dict[str, dict[str, Any]] = {
    "standalone": {},
    "sidecar": {"mode": "sidecar", "sidecar": {"mainContainer": MAIN}},
}


def named(objs: list[Manifest], kind: str, name: str) -> Manifest:
    found = [obj for obj in objs if obj["kind"] == kind and obj["metadata"]["name"] == name]
    assert len(found) == 1, f"no single {kind} {name}"
    return found[0]


def flags(args: list[str]) -> dict[str, str]:
    return dict(arg.split("=", 1) for arg in args if arg.startswith("--") and "=" in arg)


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


@pytest.mark.parametrize("mode", MODES)
def test_the_router_discovers_the_guard_pods_of_this_release(render: Render, mode: str) -> None:
    objs = render(**merge(MODES[mode], {"router": {"enabled": True}}))
    guard = named(objs, "Deployment", FULLNAME)
    router = named(objs, "Deployment", ROUTER)
    guard_labels = guard["spec"]["template"]["metadata"]["labels"]
    router_labels = router["spec"]["template"]["metadata"]["labels"]
    port = load_profile("gpu" if mode == "standalone" else "gpu-sidecar").port

    args = container(router["spec"]["template"]["spec"], "router")["args"]
    assert "--service-discovery" in args
    selector = dict(item.split("=", 1) for item in args[args.index("--selector") + 1 :] if not item.startswith("--"))
    assert selector and selects(selector, guard_labels) and not selects(selector, router_labels)
    assert flags(args)["--service-discovery-port"] == str(port)
    assert flags(args)["--service-discovery-namespace"] == NAMESPACE
    assert flags(args)["--port"] == str(port)

    # Its Service answers on the guard's port; the guard's own Service never reaches router pods.
    service = named(objs, "Service", ROUTER)
    assert selects(service["spec"]["selector"], router_labels) and not selects(
        service["spec"]["selector"], guard_labels
    )
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"router": port, "router-metrics": 29000}
    assert not selects(named(objs, "Service", FULLNAME)["spec"]["selector"], router_labels)

    # RBAC: read pods in this namespace, bound to the router's ServiceAccount, whose token the pod mounts.
    spec = router["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == ROUTER and spec["automountServiceAccountToken"] is True
    assert named(objs, "Role", ROUTER)["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
    ]
    binding = named(objs, "RoleBinding", ROUTER)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROUTER}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": ROUTER, "namespace": NAMESPACE}]
    named(objs, "ServiceAccount", ROUTER)

    probes = container(spec, "router")
    assert probes["livenessProbe"]["httpGet"] == {"path": "/liveness", "port": "router"}
    assert probes["readinessProbe"]["httpGet"] == {"path": "/readiness", "port": "router"}
    # The guard still never talks to the Kubernetes API.
    assert guard["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


@pytest.mark.parametrize("policy", ROUTER_POLICIES)
def test_each_routing_policy_and_its_thresholds_reach_the_router(render: Render, policy: str) -> None:
    router = {"enabled": True, "policy": policy, "cacheThreshold": 0.5, "balanceAbsThreshold": 16, "maxRetries": 2}
    objs = render(router=router)
    args = flags(container(named(objs, "Deployment", ROUTER)["spec"]["template"]["spec"], "router")["args"])
    assert args["--policy"] == policy
    assert args["--cache-threshold"] == "0.5" and args["--balance-abs-threshold"] == "16"
    assert args["--retry-max-retries"] == "2"


@pytest.mark.parametrize(
    ("router", "field"),
    [
        ({"policy": "fastest"}, "/router/policy"),
        ({"cacheThreshold": 1.5}, "/router/cacheThreshold"),
        ({"replicaCount": 0}, "/router/replicaCount"),
        ({"maxRetries": -1}, "/router/maxRetries"),
    ],
)
def test_the_schema_refuses_bad_router_values(chart: helm.Chart, router: dict[str, Any], field: str) -> None:
    values = merge(API_KEY, {"router": {"enabled": True, **router}})
    with pytest.raises(helm.HelmValuesError, match=field):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)


@pytest.mark.parametrize("mode", MODES)
def test_the_gateway_calls_every_replica_through_the_router(render: Render, mode: str) -> None:
    objs = render(**merge(MODES[mode], {"router": {"enabled": True}, "gateway": {"enabled": True}}))
    config = yaml.safe_load(named(objs, "ConfigMap", f"{FULLNAME}-gateway")["data"]["config.yaml"])
    port = load_profile("gpu" if mode == "standalone" else "gpu-sidecar").port
    assert config["guard"]["url"] == f"http://{ROUTER}.{NAMESPACE}.svc:{port}"
    without = render(**merge(MODES[mode], {"gateway": {"enabled": True}}))
    config = yaml.safe_load(named(without, "ConfigMap", f"{FULLNAME}-gateway")["data"]["config.yaml"])
    assert config["guard"]["url"] == f"http://localhost:{port}"


@pytest.mark.parametrize("engine", ["keda", "hpa"])
def test_the_autoscaler_scales_the_guard_and_the_router_follows(render: Render, engine: str) -> None:
    objs = render(router={"enabled": True}, autoscaling={"enabled": True, "engine": engine})
    scaler = next(obj for obj in objs if obj["kind"] in ("ScaledObject", "HorizontalPodAutoscaler"))
    assert scaler["spec"]["scaleTargetRef"]["name"] == FULLNAME
    assert "replicas" not in named(objs, "Deployment", FULLNAME)["spec"]
    assert named(objs, "Deployment", ROUTER)["spec"]["replicas"] == 1  # discovery, not scaling, tracks replicas


def test_the_service_monitor_scrapes_the_router_metrics(render: Render) -> None:
    objs = render(router={"enabled": True}, serviceMonitor={"enabled": True})
    monitor = named(objs, "ServiceMonitor", ROUTER)
    service = named(objs, "Service", ROUTER)
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert monitor["spec"]["endpoints"] == [{"port": "router-metrics", "path": "/metrics", "interval": "15s"}]
    guard_monitor = named(objs, "ServiceMonitor", FULLNAME)
    assert not selects(guard_monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])


def test_network_policies_admit_the_router_to_the_guard_and_clients_to_the_router(render: Render) -> None:
    clients = [{"podSelector": {"matchLabels": {"app": "chat"}}}]
    objs = render(router={"enabled": True}, networkPolicy={"enabled": True, "clients": clients})
    router_labels = named(objs, "Deployment", ROUTER)["spec"]["template"]["metadata"]["labels"]
    guard_peers = [peer for rule in named(objs, "NetworkPolicy", FULLNAME)["spec"]["ingress"] for peer in rule["from"]]
    assert any(selects(peer.get("podSelector", {}).get("matchLabels", {}), router_labels) for peer in guard_peers)
    router_rules = named(objs, "NetworkPolicy", ROUTER)["spec"]["ingress"]
    assert router_rules[0]["from"] == clients


def test_no_router_in_embedded_mode_or_by_default(render: Render) -> None:
    assert not [obj for obj in render() if obj["metadata"]["name"] == ROUTER]


def test_the_router_image_installs_the_pinned_vllm_router_and_the_chart_names_that_version() -> None:
    from chart_support import REPO, values_file

    from tests.conftest import pinned_version

    dockerfile = (REPO / "deploy" / "Dockerfile.router").read_text()
    assert "pip install -c /tmp/constraints.txt vllm-router" in dockerfile
    assert values_file("values.yaml")["router"]["image"]["tag"] == pinned_version("vllm-router")
