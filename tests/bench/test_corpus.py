"""Texts for the load test and the benchmark: the project's own sample and the shared schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.corpus import DEFAULT_SAMPLE, CorpusError, GuardItem, load_corpus, load_jsonl, sample, split_by_mode
from guard_client import GuardMode


def test_the_projects_own_sample_has_both_modes_and_both_labels() -> None:
    items = load_corpus()
    by_mode = split_by_mode(items)
    assert len(by_mode[GuardMode.PROMPT]) >= 20 and len(by_mode[GuardMode.RESPONSE]) >= 12
    for mode_items in by_mode.values():
        assert {i.label for i in mode_items} == {"harmful", "unharmful"}
    assert len({i.id for i in items}) == len(items)
    assert all(json.loads(line)["task"] for line in DEFAULT_SAMPLE.read_text().splitlines())


def test_an_item_becomes_the_messages_the_guard_checks() -> None:
    prompt = GuardItem("a", "hi", None, "unharmful")
    response = GuardItem("b", "hi", "hello", "harmful")
    assert (prompt.mode, prompt.messages()) == (GuardMode.PROMPT, [{"role": "user", "content": "hi"}])
    assert response.mode is GuardMode.RESPONSE and response.harmful and not prompt.harmful
    assert response.messages()[-1] == {"role": "assistant", "content": "hello"}


def write(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_a_bad_row_is_named_by_file_and_line(tmp_path: Path) -> None:
    good = {"id": "x", "task": "prompt_harmfulness", "prompt": "p", "response": None, "label": "harmful"}
    path = write(tmp_path / "d.jsonl", [good, {**good, "prompt": ""}])
    with pytest.raises(CorpusError, match=r"d\.jsonl:2: .*non-empty"):
        load_jsonl(path)
    with pytest.raises(CorpusError, match="does not exist"):
        load_jsonl(tmp_path / "missing.jsonl")
    with pytest.raises(CorpusError, match=r"d2\.jsonl:1: .*'label'"):
        load_jsonl(write(tmp_path / "d2.jsonl", [{"prompt": "p", "response": None}]))


def test_sample_is_deterministic_and_respects_the_length_cap() -> None:
    items = [GuardItem(str(n), "x" * (n + 1), None, "unharmful") for n in range(50)]
    first = sample(items, 10, seed=3, max_chars=30)
    assert first == sample(items, 10, seed=3, max_chars=30)
    assert first != sample(items, 10, seed=4, max_chars=30)
    assert all(i.chars <= 30 for i in first)
    with pytest.raises(CorpusError, match="only 30 qualify"):
        sample(items, 31, max_chars=30)
