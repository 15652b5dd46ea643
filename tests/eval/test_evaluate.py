"""The whole eval in-process against the fake endpoint, and the command line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from guard_client.batch import RunMismatchError
from guard_eval import EvalConfig, EvalSetupError, evaluate
from guard_eval.__main__ import _parser, main
from tests.eval.conftest import FakeGuard, prompt_row, write_jsonl


def _evaluate(guard: FakeGuard, config: EvalConfig) -> tuple[dict[str, Any], dict[str, Path]]:
    async def go() -> tuple[dict[str, Any], dict[str, Path]]:
        async with guard.client() as client:
            return await evaluate(client, config, say=lambda _: None)

    return asyncio.run(go())


def _dataset(tmp_path: Path) -> Path:
    rows = [prompt_row(i, "harmful" if i % 2 else "unharmful", f"t{i} {'UNSAFE' * (i % 2)}") for i in range(10)]
    return write_jsonl(tmp_path / "mine.jsonl", [*rows, '{"broken'])


def test_evaluate_writes_the_report_and_resumes(tmp_path: Path, fake_guard: FakeGuard) -> None:
    config = EvalConfig(datasets=[str(_dataset(tmp_path))], out_dir=tmp_path / "out", limit=4, published_path=None)
    report, written = _evaluate(fake_guard, config)
    assert set(written) == {"json", "markdown", "chart"}
    (entry,) = report["datasets"]
    assert entry["name"] == "mine"
    assert entry["items"]["selected"] == 4  # t0, t2, t5, t7: spread over the file
    assert entry["items"]["decided"] == 4
    assert entry["input_problems"]["count"] == 1
    assert entry["metrics"]["strict"]["f1"] == 100.0  # the fake flags exactly the harmful ones
    assert sorted(fake_guard.checked) == ["t0 ", "t2 ", "t5 UNSAFE", "t7 UNSAFE"]
    # A wider limit checks only the new items.
    report, _ = _evaluate(fake_guard, EvalConfig(**{**config.__dict__, "limit": None}))
    assert report["datasets"][0]["items"]["decided"] == 10
    assert len(fake_guard.checked) == 10
    manifest = json.loads((tmp_path / "out" / "run.json").read_text())
    assert manifest["root"] == fake_guard.root


def test_results_from_another_setup_are_never_mixed(tmp_path: Path, fake_guard: FakeGuard) -> None:
    config = EvalConfig(datasets=[str(_dataset(tmp_path))], out_dir=tmp_path / "out", published_path=None)
    _evaluate(fake_guard, config)
    constrained = EvalConfig(**{**config.__dict__, "constrain": True})
    with pytest.raises(RunMismatchError, match="constrain: False, not True"):
        _evaluate(fake_guard, constrained)
    report, _ = _evaluate(fake_guard, EvalConfig(**{**constrained.__dict__, "fresh": True}))
    assert report["datasets"][0]["items"]["decided"] == 10
    assert len(fake_guard.checked) == 20  # started over
    kept = [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith("results.") and p.name != "results.jsonl"]
    assert len(kept) == 1  # the old results were set aside, not deleted


def test_unknown_dataset_is_a_setup_error(tmp_path: Path, fake_guard: FakeGuard) -> None:
    with pytest.raises(EvalSetupError, match="unknown dataset"):
        _evaluate(fake_guard, EvalConfig(datasets=["nope"], out_dir=tmp_path))


def test_parser_defaults_resume_and_fresh_starts_over() -> None:
    assert _parser().parse_args([]).fresh is False
    assert _parser().parse_args(["--resume"]).fresh is False
    assert _parser().parse_args(["--fresh"]).fresh is True
    args = _parser().parse_args(["--datasets", "xstest_prompt", "x.jsonl", "--limit", "3", "--constrain"])
    assert (args.datasets, args.limit, args.constrain) == (["xstest_prompt", "x.jsonl"], 3, True)


def test_list_names_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "jbb_benign" in out
    assert "refusal_detection_f1.xstest" in out


def test_bad_arguments_and_unreachable_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--limit", "0"]) == 2
    from deploy.launcher import free_port

    url = f"http://127.0.0.1:{free_port()}"
    code = main(["--url", url, "--datasets", "jbb_benign", "--out", str(tmp_path), "--no-progress", "--timeout", "2"])
    assert code == 1
    assert "error: " in capsys.readouterr().err.split("\n")[1]  # connection refused or timed out: either way, said
