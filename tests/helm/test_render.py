"""The rendered objects of each mode and option; every object is also schema-validated by the `render` fixture."""

from __future__ import annotations

import helm_python as helm
from chart_support import NAMESPACE, RELEASE, Render, container, env, kinds, manifests, only, pod_spec, validate

from deploy.profiles import load_profile

FULLNAME = f"{RELEASE}-qwen3guard"


def command(c: dict) -> list[str]:
    """What the container runs: the image's entrypoint is replaced by `command`, followed by `args`."""
    return [*c["command"], *c["args"]]


def test_default_is_one_guard_on_a_whole_gpu_behind_a_service(render: Render) -> None:
    objs = render()
    assert kinds(objs) == ["Deployment", "PodDisruptionBudget", "Service"]
    deployment = only(objs, "Deployment")
    spec = pod_spec(objs)
    guard = container(spec, "qwen3guard")
    assert deployment["spec"]["replicas"] == 1
    assert "initContainers" not in spec and "restartPolicy" not in guard
    assert guard["image"] == "vllm/vllm-openai:v0.32.0"
    assert guard["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert guard["ports"] == [{"name": "guard", "containerPort": 8000, "protocol": "TCP"}]
    assert only(objs, "Service")["spec"]["ports"] == [
        {"name": "guard", "port": 8000, "targetPort": "guard", "protocol": "TCP"}
    ]
    assert only(objs, "PodDisruptionBudget")["spec"]["selector"] == deployment["spec"]["selector"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]


def test_default_command_is_exactly_the_gpu_profile(render: Render) -> None:
    guard = container(pod_spec(render()), "qwen3guard")
    assert command(guard) == load_profile("gpu").container_command()


def test_api_key_comes_from_a_secret_as_the_profile_env_var_never_the_command_line(render: Render) -> None:
    guard = container(pod_spec(render()), "qwen3guard")
    profile = load_profile("gpu")
    assert env(guard)[profile.api_key_env] == {"secretKeyRef": {"name": "guard-api-key", "key": "api-key"}}
    assert not any("api-key" in arg or "api_key" in arg for arg in command(guard))


def test_probes_hit_health_and_startup_allows_for_model_loading(render: Render) -> None:
    guard = container(pod_spec(render()), "qwen3guard")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert guard[probe]["httpGet"] == {"path": "/health", "port": "guard"}
    startup = guard["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600


def test_runs_as_non_root_with_every_written_path_on_a_volume(render: Render) -> None:
    spec = pod_spec(render())
    guard = container(spec, "qwen3guard")
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    assert spec["automountServiceAccountToken"] is False
    assert guard["securityContext"]["readOnlyRootFilesystem"] is True
    assert guard["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["mountPath"]: m["name"] for m in guard["volumeMounts"]}
    assert set(mounts) == {"/cache", "/tmp", "/dev/shm"}
    assert env(guard)["HOME"] == "/cache" and env(guard)["HF_HOME"].startswith("/cache/")
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["qwen3guard-shm"]["emptyDir"]["medium"] == "Memory"
    assert "emptyDir" in volumes[mounts["/cache"]]


def test_model_cache_on_a_persistent_volume_claim(render: Render) -> None:
    objs = render(modelCache={"type": "persistentVolumeClaim", "size": "50Gi", "storageClassName": "fast"})
    claim = only(objs, "PersistentVolumeClaim")
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert claim["spec"]["storageClassName"] == "fast"
    volumes = {v["name"]: v for v in pod_spec(objs)["volumes"]}
    assert volumes["qwen3guard-cache"] == {
        "name": "qwen3guard-cache",
        "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]},
    }
    existing = render(modelCache={"type": "persistentVolumeClaim", "existingClaim": "weights"})
    assert "PersistentVolumeClaim" not in kinds(existing)
    assert {v["name"]: v for v in pod_spec(existing)["volumes"]}["qwen3guard-cache"]["persistentVolumeClaim"] == {
        "claimName": "weights"
    }


def test_keys_given_as_values_go_into_secrets_the_chart_creates(render: Render) -> None:
    objs = render(apiKey={"existingSecret": "", "value": "s3cret"}, hfToken={"value": "hf_abc"})
    secrets = {s["metadata"]["name"]: s["stringData"] for s in objs if s["kind"] == "Secret"}
    assert secrets == {f"{FULLNAME}-api-key": {"api-key": "s3cret"}, f"{FULLNAME}-hf-token": {"token": "hf_abc"}}
    variables = env(container(pod_spec(objs), "qwen3guard"))
    assert variables["VLLM_API_KEY"] == {"secretKeyRef": {"name": f"{FULLNAME}-api-key", "key": "api-key"}}
    assert variables["HF_TOKEN"] == {"secretKeyRef": {"name": f"{FULLNAME}-hf-token", "key": "token"}}


def test_scheduling_values_reach_the_pod(render: Render) -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["h100", "a100"]}]}
                ]
            }
        }
    }
    spec = pod_spec(render(nodeSelector={"pool": "gpu"}, affinity=affinity, tolerations=[]))
    assert spec["nodeSelector"] == {"pool": "gpu"}
    assert spec["affinity"] == affinity
    assert "tolerations" not in spec


def test_custom_image_model_and_extra_args(render: Render) -> None:
    objs = render(
        image={"repository": "registry.example.com/ml/vllm-openai", "tag": "v0.32.0-patched"},
        model="/models/qwen3guard-gen-0.6b",
        extraArgs=["--max-num-seqs", "128"],
        extraEnv=[{"name": "VLLM_LOGGING_LEVEL", "value": "DEBUG"}],
    )
    guard = container(pod_spec(objs), "qwen3guard")
    assert guard["image"] == "registry.example.com/ml/vllm-openai:v0.32.0-patched"
    profile = load_profile("gpu")
    expected = ["vllm", "serve", *profile.vllm_args(model="/models/qwen3guard-gen-0.6b"), "--max-num-seqs", "128"]
    assert command(guard) == expected
    assert env(guard)["VLLM_LOGGING_LEVEL"] == "DEBUG"


def test_cpu_only_values_drop_gpus_and_run_the_cpu_profile_on_the_real_model(render: Render) -> None:
    objs = render("values-cpu.yaml")
    spec = pod_spec(objs)
    guard = container(spec, "qwen3guard")
    profile = load_profile("cpu")
    assert command(guard) == ["vllm", "serve", *profile.vllm_args(model="Qwen/Qwen3Guard-Gen-0.6B")]
    assert "standin" not in " ".join(command(guard))
    assert "nvidia.com/gpu" not in guard["resources"].get("limits", {})
    assert "tolerations" not in spec
    assert "cpu" in guard["image"]
    # The profile's env entries become container env vars.
    assert profile.env and all(env(guard)[name] == value for name, value in profile.env.items())


def test_sidecar_mode_puts_the_guard_beside_the_main_llm_with_the_sidecar_profile(render: Render) -> None:
    objs = render("values-sidecar.yaml")
    spec = pod_spec(objs)
    guard = container(spec, "qwen3guard")
    main = container(spec, "llm")
    assert command(guard) == load_profile("gpu-sidecar").container_command()
    # A native sidecar: started (startup probe passed) before the main container.
    assert guard in spec["initContainers"] and guard["restartPolicy"] == "Always"
    assert [c["name"] for c in spec["containers"]] == ["llm", "gateway"]
    # Both reference the one pod claim on the GPU, and neither asks the device plugin for another.
    claim = only(objs, "ResourceClaimTemplate")
    template = claim["metadata"]["name"]
    assert spec["resourceClaims"] == [{"name": "qwen3guard-gpu", "resourceClaimTemplateName": template}]
    assert guard["resources"]["claims"] == main["resources"]["claims"] == [{"name": "qwen3guard-gpu"}]
    assert claim["spec"]["spec"]["devices"]["requests"][0]["exactly"]["count"] == 1
    for c in (guard, main):
        assert "nvidia.com/gpu" not in c["resources"].get("limits", {})
    ports = {p["name"]: p["port"] for p in only(objs, "Service")["spec"]["ports"]}
    assert ports == {"llm": 8000, "guard": 8001, "gateway": 8080}


def test_an_application_container_joins_the_pod(render: Render) -> None:
    app = {
        "name": "app",
        "image": "registry.example.com/chat:1.4",
        "env": [{"name": "GUARD_URL", "value": "http://localhost:8001"}],
    }
    spec = pod_spec(render("values-sidecar.yaml", extraContainers=[app]))
    assert [c["name"] for c in spec["containers"]] == ["llm", "gateway", "app"]
    assert container(spec, "app") == app


def test_sidecar_without_dra_gives_the_gpu_to_the_main_container_and_shows_it_to_the_guard(render: Render) -> None:
    objs = render("values-sidecar.yaml", sidecar={"gpuSharing": "visibleDevicesEnv"})
    spec = pod_spec(objs)
    guard, main = container(spec, "qwen3guard"), container(spec, "llm")
    assert main["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "nvidia.com/gpu" not in guard["resources"].get("limits", {})
    assert env(guard)["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert "ResourceClaimTemplate" not in kinds(objs) and "resourceClaims" not in spec


def test_keda_scales_on_the_vllm_queue(render: Render) -> None:
    objs = render(autoscaling={"enabled": True, "engine": "keda", "maxReplicas": 6, "targetRequestsWaiting": 4})
    assert "HorizontalPodAutoscaler" not in kinds(objs)
    # The autoscaler owns the replica count; a fixed one would be reset on every upgrade.
    assert "replicas" not in only(objs, "Deployment")["spec"]
    scaled = only(objs, "ScaledObject")["spec"]
    assert scaled["scaleTargetRef"]["name"] == FULLNAME
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (1, 6)
    trigger = scaled["triggers"][0]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    assert trigger["metadata"]["threshold"] == "4"
    assert trigger["metadata"]["query"] == (
        f'sum(vllm:num_requests_waiting{{namespace="{NAMESPACE}",service="{FULLNAME}"}})'
    )


def test_hpa_scales_on_the_adapter_metric(render: Render) -> None:
    objs = render(autoscaling={"enabled": True, "engine": "hpa", "targetRequestsWaiting": 8})
    assert "ScaledObject" not in kinds(objs)
    assert "replicas" not in only(objs, "Deployment")["spec"]
    hpa = only(objs, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": FULLNAME}
    assert hpa["metrics"] == [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "vllm_num_requests_waiting"},
                "target": {"type": "AverageValue", "averageValue": "8"},
            },
        }
    ]
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300


def test_service_monitor_scrapes_metrics_on_every_service_port(render: Render) -> None:
    objs = render("values-sidecar.yaml", serviceMonitor={"enabled": True, "labels": {"release": "prom"}})
    monitor = only(objs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["selector"]["matchLabels"] == only(objs, "Service")["spec"]["selector"]
    endpoints = [(e["port"], e["path"]) for e in monitor["spec"]["endpoints"]]
    assert endpoints == [("llm", "/metrics"), ("guard", "/metrics"), ("gateway", "/metrics")]


def test_network_policy_admits_only_the_clients_and_prometheus(render: Render) -> None:
    clients = [{"podSelector": {"matchLabels": {"app": "chat"}}}]
    objs = render(networkPolicy={"enabled": True, "clients": clients})
    policy = only(objs, "NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchLabels"] == only(objs, "Deployment")["spec"]["selector"]["matchLabels"]
    assert policy["policyTypes"] == ["Ingress"]
    assert [rule["from"] for rule in policy["ingress"]] == [
        clients,
        [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
    ]
    assert all(rule["ports"] == [{"port": "guard", "protocol": "TCP"}] for rule in policy["ingress"])


def test_embedded_mode_renders_no_workload(render: Render) -> None:
    objs = render("values-sidecar.yaml", mode="embedded", serviceMonitor={"enabled": True}, gateway={"enabled": False})
    assert kinds(objs) == ["ResourceClaimTemplate"]


def test_a_parent_chart_includes_the_guard_container_in_its_own_pod(example_chart: helm.Chart) -> None:
    objs = manifests(example_chart.render(name="chat", namespace=NAMESPACE))
    for obj in objs:
        validate(obj)
    assert kinds(objs) == ["Deployment", "ResourceClaimTemplate", "Service"]
    spec = pod_spec(objs)
    guard, main = container(spec, "qwen3guard"), container(spec, "llm")
    assert command(guard) == load_profile("gpu-sidecar").container_command()
    assert guard["restartPolicy"] == "Always"
    assert guard["resources"]["claims"] == main["resources"]["claims"]
    claim_template = only(objs, "ResourceClaimTemplate")["metadata"]["name"]
    assert spec["resourceClaims"] == [{"name": "qwen3guard-gpu", "resourceClaimTemplateName": claim_template}]
    assert {p["name"]: p["port"] for p in only(objs, "Service")["spec"]["ports"]} == {"llm": 8000, "guard": 8001}
