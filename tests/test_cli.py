"""The command lines share the check flags, and each builds its config from its parsed arguments by field name."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import guard_eval.__main__ as eval_cli
import guard_tune.__main__ as tune_cli
from guard_client.__main__ import build_parser
from guard_client.cli import check_options, config_from
from guard_eval import EvalConfig
from guard_screen._cli import add_arguments as add_screen_arguments
from guard_tune import TuneConfig, TuneError


@dataclass(frozen=True)
class _Config:
    name: str
    size: int = 3
    verbose: bool = False


def test_a_config_takes_the_attributes_of_its_field_names_and_the_overrides() -> None:
    args = argparse.Namespace(name="a", size=5, unrelated="ignored")
    assert config_from(_Config, args) == _Config(name="a", size=5)  # verbose: not in args, its default
    assert config_from(_Config, args, size=7, verbose=True) == _Config(name="a", size=7, verbose=True)
    with pytest.raises(TypeError):  # a field with no default must come from somewhere
        config_from(_Config, argparse.Namespace(size=1))


def test_guard_check_and_guard_screen_read_the_same_check_flags() -> None:
    flags = ["--scores", "--verdict-only", "--locate"]
    check = build_parser().parse_args(["check", *flags, "text"])
    screen_parser = argparse.ArgumentParser()
    add_screen_arguments(screen_parser)
    screen = screen_parser.parse_args(["in.jsonl", "--out", "dir", *flags])
    expected = {"scores": True, "constrain": False, "verdict_only": True, "chunk": False, "locate": True}
    assert check_options(check) == check_options(screen) == expected


def test_the_eval_command_builds_its_config_from_its_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[EvalConfig] = []

    async def fake_evaluate(client: object, config: EvalConfig) -> tuple[dict[str, Any], dict[str, Path]]:
        seen.append(config)
        return {"warnings": []}, {}

    monkeypatch.setattr(eval_cli, "evaluate", fake_evaluate)
    data, published = tmp_path / "data", tmp_path / "published.json"
    argv = ["--datasets", "a", "b", "--out", str(tmp_path / "out"), "--data-dir", str(data), "--limit", "4"]
    assert eval_cli.main(argv) == 0
    assert eval_cli.main([*argv, "--no-progress", "--published", str(published), "--fresh", "--constrain"]) == 0
    common = {"datasets": ["a", "b"], "out_dir": tmp_path / "out", "data_dir": data, "limit": 4}
    assert seen == [
        EvalConfig(**common, progress=True, published_path=EvalConfig().published_path),
        EvalConfig(**common, progress=False, published_path=published, fresh=True, constrain=True),
    ]


def test_the_tune_command_builds_its_config_from_its_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[TuneConfig] = []

    def fake_tune(config: TuneConfig) -> dict[str, Any]:
        seen.append(config)
        raise TuneError("stop here")

    monkeypatch.setattr(tune_cli, "tune", fake_tune)
    base = ["--data", "rows.jsonl", "--out", "adapters/acme"]
    assert tune_cli.main(base) == 2
    assert tune_cli.main([*base, "--no-eval", "--steps", "5", "--rank", "8", "--name", "acme-v2"]) == 2
    paths = {"data": Path("rows.jsonl"), "out": Path("adapters/acme")}
    assert seen == [  # the command's defaults are the config's
        TuneConfig(**paths),
        TuneConfig(**paths, evaluate=False, steps=5, rank=8, name="acme-v2"),
    ]
