"""Fine-tuned policies in the chart: adapters from a volume served by vLLM's multi-LoRA with the flags the
profile derives, a merged adapter served as the model, and the gateway told each one's policy file; in
standalone and sidecar modes. Every render is schema-validated by the `render` fixture."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest
import yaml
from chart_support import API_KEY, RELEASE, Manifest, Render, container, merge, only, pod_spec

from deploy.profiles import LoraModule, load_profile
from guard_client import POLICY_FILE

PVC = {"source": "persistentVolumeClaim", "claimName": "guard-adapters"}
SERVED = [{"name": "acme", "rank": 16}, {"name": "bank", "rank": 8, "path": "v2/bank"}]
ON = {"gateway": {"enabled": True}}


def _config(objs: list[Manifest]) -> dict[str, Any]:
    (text,) = only(objs, "ConfigMap")["data"].values()
    return dict(yaml.safe_load(text))


def _mounts(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in c["volumeMounts"]}


def test_adapters_on_a_claim_are_served_beside_the_model_with_the_profiles_flags(render: Render) -> None:
    objs = render(adapters={**PVC, "served": SERVED}, **ON)
    spec = pod_spec(objs)
    guard = container(spec, "qwen3guard")
    profile = load_profile("gpu")
    expected = profile.server_flags(
        adapters=[LoraModule("acme", "/adapters/acme", 16), LoraModule("bank", "/adapters/v2/bank", 8)]
    )
    assert guard["args"] == [profile.model, *expected]
    volume = next(v for v in spec["volumes"] if v["name"] == "qwen3guard-adapters")
    assert volume["persistentVolumeClaim"] == {"claimName": "guard-adapters", "readOnly": True}
    for name in ("qwen3guard", "gateway"):  # the gateway reads the policy files from the same volume
        mount = _mounts(container(spec, name))["qwen3guard-adapters"]
        assert mount == {"name": "qwen3guard-adapters", "mountPath": "/adapters", "readOnly": True}
    assert _config(objs)["models"] == {
        "acme": {"policy": f"/adapters/acme/{POLICY_FILE}"},
        "bank": {"policy": f"/adapters/v2/bank/{POLICY_FILE}"},
    }


def test_an_image_volume_in_sidecar_mode(render: Render) -> None:
    adapters = {"source": "image", "image": {"reference": "registry.example/adapters:1"}, "served": SERVED[:1]}
    objs = render("values-sidecar.yaml", adapters=adapters)
    spec = pod_spec(objs)
    guard = container(spec, "qwen3guard")
    lora = ["--enable-lora", "--lora-modules", "acme=/adapters/acme", "--max-lora-rank", "16", "--max-loras", "1"]
    assert guard["args"][-7:] == lora
    volume = next(v for v in spec["volumes"] if v["name"] == "qwen3guard-adapters")
    assert volume["image"] == {"reference": "registry.example/adapters:1", "pullPolicy": "IfNotPresent"}
    assert "qwen3guard-adapters" in _mounts(container(spec, "gateway"))
    assert "qwen3guard-adapters" not in _mounts(container(spec, "llm"))


def test_a_merged_adapter_is_served_as_the_model_with_its_policy(render: Render) -> None:
    objs = render(adapters={**PVC, "merged": "acme-merged"}, **ON)
    guard = container(pod_spec(objs), "qwen3guard")
    assert guard["args"] == ["/adapters/acme-merged", *load_profile("gpu").server_flags()]
    assert "--enable-lora" not in guard["args"], "a merged adapter is an ordinary model: LoRA stays off"
    assert _config(objs)["guard"]["policy"] == f"/adapters/acme-merged/{POLICY_FILE}"


def test_without_adapters_nothing_changes(render: Render) -> None:
    guard = container(pod_spec(render()), "qwen3guard")
    assert guard["args"] == load_profile("gpu").vllm_args()
    assert "qwen3guard-adapters" not in _mounts(guard)


@pytest.mark.parametrize(
    ("adapters", "error", "phrase"),
    [
        (
            {"served": SERVED},
            helm.HelmRenderError,
            "adapters.source: adapters.served or adapters.merged needs a volume",
        ),
        (
            {**PVC, "served": [{"name": "acme", "rank": 128}]},
            helm.HelmRenderError,
            "adapters.served[0].rank: 128 exceeds the 64 the gpu profile allows",
        ),
        ({**PVC, "served": [{"name": "acme"}]}, helm.HelmValuesError, "missing property 'rank'"),
        ({**PVC, "served": [{"name": "a b", "rank": 8}]}, helm.HelmValuesError, "/adapters/served/0/name"),
        ({"source": "persistentVolumeClaim"}, helm.HelmValuesError, "/adapters/claimName"),
        ({"source": "image"}, helm.HelmValuesError, "/adapters/image"),
        ({"source": "nfs"}, helm.HelmValuesError, "/adapters/source"),
    ],
)
def test_bad_adapter_values_are_refused_naming_the_field(
    chart: helm.Chart, adapters: dict[str, Any], error: type[helm.HelmError], phrase: str
) -> None:
    with pytest.raises(error) as refused:
        chart.render(merge(API_KEY, {"adapters": adapters}), name=RELEASE)
    assert phrase in str(refused.value)


def test_a_merged_adapter_and_a_model_value_conflict(chart: helm.Chart) -> None:
    with pytest.raises(helm.HelmRenderError, match=r"adapters\.merged: it replaces the model; leave model empty"):
        chart.render(merge(API_KEY, {"adapters": {**PVC, "merged": "m"}, "model": "x"}), name=RELEASE)
