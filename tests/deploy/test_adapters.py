"""Adapters before vLLM starts: a directory that is not a PEFT LoRA adapter for the served base model, or
whose rank the profile does not allow, or whose policy does not validate, stops the start with one line;
the server's LoRA flags are derived from the adapters in one place."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from deploy.__main__ import main
from deploy.adapters import AdapterError, module_shapes, parse_adapter_spec, read_adapter, read_adapters
from deploy.launcher import GuardServer, free_port
from deploy.profiles import PROFILE_DIR, LoraModule, ProfileError, available_profiles, load_profile
from deploy.standin import VARIANTS, build_standin
from guard_client import POLICY_FILE

TINY = "standin:tiny"


@pytest.fixture(scope="module")
def tiny() -> str:
    return str(build_standin("tiny"))


@pytest.fixture
def adapter(test_adapter_dir: Path, tmp_path: Path) -> Path:
    """A copy of the session's test adapter that a test may spoil."""
    return Path(shutil.copytree(test_adapter_dir, tmp_path / "acme"))


def _edit_config(adapter: Path, **changes: object) -> None:
    path = adapter / "adapter_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_a_peft_adapter_for_the_tiny_standin_is_read(adapter: Path, tiny: str) -> None:
    read = read_adapter("acme", adapter, tiny, max_rank=32)
    assert (read.name, read.rank, read.path, read.policy_file) == ("acme", 8, adapter, adapter / POLICY_FILE)
    assert read.target_modules == ("down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj")


def test_an_adapter_of_another_base_model_stops_the_start(adapter: Path, tmp_path: Path) -> None:
    # The full stand-in's config (the real model's shapes): the tiny adapter's matrices do not fit it.
    full = tmp_path / "full"
    full.mkdir()
    (full / "config.json").write_text(json.dumps(VARIANTS["full"]))
    with pytest.raises(AdapterError) as exc:
        read_adapter("acme", adapter, str(full), max_rank=32)
    assert "does not fit" in _one_line(exc) and "not on this base model" in str(exc.value)


def test_an_adapter_trained_elsewhere_with_the_same_shapes_is_accepted(adapter: Path, tiny: str) -> None:
    # What PEFT records is the training machine's path; the stand-in's shapes are what make it this model.
    _edit_config(adapter, base_model_name_or_path="/somewhere/else/qwen3guard-gen-standin-random-tiny")
    assert read_adapter("acme", adapter, tiny, max_rank=32).base_model.startswith("/somewhere/else")


def test_a_rank_over_the_profile_cap_stops_the_start(adapter: Path, tiny: str) -> None:
    _edit_config(adapter, rank_pattern={"q_proj": 64})
    with pytest.raises(AdapterError) as exc:
        read_adapter("acme", adapter, tiny, max_rank=32)
    assert "rank 64 exceeds the 32 this profile allows" in _one_line(exc)


@pytest.mark.parametrize(
    ("spoil", "expected"),
    [
        (lambda d: (d / "adapter_config.json").unlink(), "not a PEFT adapter (no adapter_config.json"),
        (lambda d: (d / "adapter_config.json").write_text("{"), "is not valid JSON"),
        (lambda d: _edit_config(d, peft_type="PREFIX_TUNING"), "vLLM serves only LORA adapters"),
        (lambda d: _edit_config(d, modules_to_save=["lm_head"]), "merge the adapter instead"),
        (lambda d: (d / "adapter_model.safetensors").unlink(), "no adapter_model.safetensors"),
        (lambda d: (d / "adapter_model.safetensors").write_bytes(b"nonsense"), "not a readable safetensors"),
        (lambda d: (d / POLICY_FILE).unlink(), f"no {POLICY_FILE}"),
        (lambda d: (d / POLICY_FILE).write_text("name: acme\n"), POLICY_FILE),
    ],
)
def test_a_wrong_directory_stops_the_start_with_one_line(
    adapter: Path, tiny: str, spoil: object, expected: str
) -> None:
    spoil(adapter)  # type: ignore[operator]
    with pytest.raises(AdapterError) as exc:
        read_adapter("acme", adapter, tiny, max_rank=32)
    assert expected in _one_line(exc) and str(exc.value).startswith(f"adapter 'acme' ({adapter})")


def test_adapter_specs_need_a_name_and_a_directory(tmp_path: Path, tiny: str) -> None:
    assert parse_adapter_spec("acme=./a") == ("acme", Path("a"))
    for bad in ("acme", "acme=", "=dir", "a b=dir"):
        with pytest.raises(AdapterError, match="--adapter"):
            parse_adapter_spec(bad)
    with pytest.raises(AdapterError, match="no such directory"):
        read_adapters([f"acme={tmp_path / 'missing'}"], tiny, 32)


def test_the_same_name_twice_is_refused(adapter: Path, tiny: str) -> None:
    with pytest.raises(AdapterError, match="given twice"):
        read_adapters([f"acme={adapter}", f"acme={adapter}"], tiny, 32)


def test_module_shapes_follow_the_config() -> None:
    shapes = module_shapes(VARIANTS["full"])
    assert shapes["q_proj"] == (1024, 2048) and shapes["k_proj"] == (1024, 1024) and shapes["down_proj"] == (3072, 1024)


def test_lora_flags_are_derived_from_the_adapters() -> None:
    cpu = load_profile("cpu")
    assert cpu.lora_flags([]) == [], "without adapters LoRA stays off (it turns compilation off on the CPU)"
    flags = cpu.lora_flags([LoraModule("a", "/a", 8), LoraModule("b", "/b", 12), LoraModule("c", "/c", 4)])
    assert flags == [
        "--enable-lora",
        "--lora-modules",
        "a=/a",
        "b=/b",
        "c=/c",
        "--max-lora-rank",
        "16",  # the smallest rank vLLM accepts that covers 12
        "--max-loras",
        str(cpu.max_loras),  # three adapters, capped by the profile
    ]
    assert load_profile("gpu").lora_flags([LoraModule("a", "/a", 1)])[-3:] == ["1", "--max-loras", "1"]
    with pytest.raises(ProfileError, match="exceeds this profile's max_lora_rank"):
        cpu.lora_flags([LoraModule("a", "/a", cpu.max_lora_rank + 1)])


@pytest.mark.parametrize("name", available_profiles())
def test_every_profile_caps_and_documents_its_lora_limits(name: str) -> None:
    profile = load_profile(name)
    assert profile.max_lora_rank >= 8 and profile.max_loras >= 2
    lines = (PROFILE_DIR / f"{name}.yaml").read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("max_lora_rank:"))
    assert lines[index - 1].startswith("#"), f"{name}.yaml: say why the LoRA caps have their values"


def test_the_launcher_serves_checked_adapters(adapter: Path, tiny: str) -> None:
    server = GuardServer(load_profile("cpu"), model=tiny, adapter_specs=[f"acme={adapter}"])
    server.model_path = tiny
    server.adapters = read_adapters(server.adapter_specs, tiny, server.profile.max_lora_rank)
    command = server.command()
    assert command[command.index("--lora-modules") + 1] == f"acme={adapter}"
    assert server.gateway_models() == {"models": {"acme": {"policy": str(adapter / POLICY_FILE)}}}


def test_serve_with_a_wrong_adapter_exits_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODEL", raising=False)
    code = main(["serve", "--model", TINY, "--port", str(free_port()), "--no-gateway", "--adapter", f"acme={tmp_path}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    expected = "not a PEFT adapter (no adapter_config.json; save one with peft's save_pretrained)"
    assert err[-1] == f"error: adapter 'acme' ({tmp_path}): {expected}"
