"""Serving profiles: validated when loaded, errors name the field, flags come out in one place."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deploy.profiles import PROFILE_DIR, ProfileError, available_profiles, load_profile
from tests.conftest import pinned_version


def test_required_profiles_exist() -> None:
    assert {"gpu", "gpu-sidecar", "cpu"} <= set(available_profiles())


@pytest.mark.parametrize("name", ["gpu", "gpu-sidecar", "cpu"])
def test_profiles_set_what_the_workload_needs(name: str) -> None:
    profile = load_profile(name)
    args = profile.vllm_args()
    assert args[args.index("--served-model-name") + 1] == "qwen3guard"
    assert "--enable-prefix-caching" in args
    assert int(args[args.index("--max-model-len") + 1]) == profile.max_model_len
    assert "--max-num-seqs" in args
    assert profile.api_key_env == "VLLM_API_KEY"
    assert not any("reasoning" in a for a in args), "the guard must not run with a reasoning parser"
    assert not any("api-key" in a for a in args), "the key comes from the environment, never argv"


def test_gpu_profiles_size_their_share_and_real_model() -> None:
    gpu, sidecar = load_profile("gpu"), load_profile("gpu-sidecar")
    assert gpu.model == sidecar.model == "Qwen/Qwen3Guard-Gen-0.6B"
    assert sidecar.gpu_memory_utilization is not None and gpu.gpu_memory_utilization is not None
    assert sidecar.gpu_memory_utilization < 0.5 < gpu.gpu_memory_utilization
    assert sidecar.max_model_len < gpu.max_model_len and sidecar.max_num_seqs < gpu.max_num_seqs
    assert sidecar.port != gpu.port, "beside a main LLM on :8000 the guard needs its own port"
    assert gpu.container_command()[:3] == ["vllm", "serve", "Qwen/Qwen3Guard-Gen-0.6B"]


def test_every_profile_documents_its_max_model_len() -> None:
    for path in PROFILE_DIR.glob("*.yaml"):
        lines = path.read_text().splitlines()
        index = next(i for i, line in enumerate(lines) if line.startswith("max_model_len:"))
        assert lines[index - 1].startswith("#"), f"{path.name}: say why max_model_len has its value"


def test_unknown_profile_lists_the_choices() -> None:
    with pytest.raises(ProfileError, match="unknown serving profile 'tpu'; choose one of: cpu, gpu, gpu-sidecar"):
        load_profile("tpu")


def _write(tmp_path: Path, **changes: object) -> Path:
    data = yaml.safe_load((PROFILE_DIR / "gpu.yaml").read_text())
    data.update(changes)
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"max_num_seqs": "many"}, "max_num_seqs"),
        ({"max_model_len": 100000}, "max_model_len"),
        ({"port": 0}, "port"),
        ({"gpu_memory_utilization": 1.5}, "gpu_memory_utilization"),
        ({"device": "tpu"}, "device"),
        ({"max_num_sequences": 3}, "max_num_sequences"),
        ({"version": 2}, "version"),
        ({"device": "cpu"}, "gpu_memory_utilization"),
    ],
)
def test_bad_values_name_the_field(tmp_path: Path, changes: dict[str, object], field: str) -> None:
    with pytest.raises(ProfileError, match=f"custom.yaml: .*{field}"):
        load_profile(_write(tmp_path, **changes))


def test_a_profile_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ProfileError, match="expected a mapping"):
        load_profile(path)


def test_dockerfile_runs_the_gpu_profile_on_the_pinned_image() -> None:
    import json
    import re

    dockerfile = (PROFILE_DIR.parent / "Dockerfile").read_text()
    entrypoint = re.search(r"^ENTRYPOINT (\[.*\])$", dockerfile, re.MULTILINE)
    assert entrypoint is not None
    assert json.loads(entrypoint.group(1)) == load_profile("gpu").container_command()
    image = re.search(r"^FROM vllm/vllm-openai:v(\S+)$", dockerfile, re.MULTILINE)
    assert image is not None and image.group(1) == pinned_version("vllm")
    assert re.search(r"^USER \d+$", dockerfile, re.MULTILINE), "the container must not run as root"
