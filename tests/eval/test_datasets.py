"""Loading datasets: every bad line is reported with its line number and never becomes an item."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from guard_eval._datasets import (
    REGISTRY,
    Task,
    categories_of,
    default_data_dir,
    load_dataset,
    resolve_datasets,
    spread,
)
from tests.eval.conftest import prompt_row, response_row, write_jsonl


def test_good_file_loads_every_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [prompt_row(0, "harmful"), prompt_row(1, "unharmful")])
    loaded = load_dataset("d", path)
    assert loaded.problems == []
    assert loaded.task is Task.PROMPT_HARMFULNESS
    assert [(i.id, i.positive, i.line) for i in loaded.items] == [("p-0", True, 1), ("p-1", False, 2)]
    assert loaded.items[0].check_item == "prompt 0"


def test_bad_lines_are_reported_with_line_numbers_and_skipped(tmp_path: Path) -> None:
    no_label = prompt_row(3, "harmful")
    del no_label["label"]
    no_response_key = prompt_row(8, "harmful")
    del no_response_key["response"]
    rows: list[dict[str, Any] | str] = [
        prompt_row(0, "harmful"),  # 1 good
        '{"id": "p-1", "task": "prompt_harmfulness", "prompt": "cut',  # 2 malformed JSON
        prompt_row(2, "toxic"),  # 3 unknown label
        no_label,  # 4 missing field
        "",  # 5 blank: not an item, not a problem
        prompt_row(5, "refusal"),  # 6 a label of another task
        {**prompt_row(6, "harmful"), "task": "image_harmfulness"},  # 7 unknown task
        response_row(7, "harmful", response=""),  # 8 response task without a response
        no_response_key,  # 9 missing field
        prompt_row(0, "unharmful"),  # 10 repeated id
        "[1, 2]",  # 11 not an object
        {**prompt_row(11, "harmful"), "prompt": ""},  # 12 empty prompt
        prompt_row(12, "unharmful"),  # 13 good
    ]
    loaded = load_dataset("d", write_jsonl(tmp_path / "d.jsonl", rows))
    assert [i.id for i in loaded.items] == ["p-0", "p-12"]
    problems = {p.line: p.message for p in loaded.problems}
    assert sorted(problems) == [2, 3, 4, 6, 7, 8, 9, 10, 11, 12]
    assert "malformed JSON" in problems[2]
    assert "unknown label 'toxic'" in problems[3]
    assert "missing field 'label'" in problems[4]
    assert "unknown label 'refusal'" in problems[6]
    assert "unknown task 'image_harmfulness'" in problems[7]
    # Line 8 is a response task in a prompt file: the empty response is reported before the task mix.
    assert "'response' must be a non-empty string" in problems[8]
    assert "missing field 'response'" in problems[9]
    assert "repeats line 1" in problems[10]
    assert "expected a JSON object" in problems[11]
    assert "'prompt' must be a non-empty string" in problems[12]
    assert all(p.path == str(tmp_path / "d.jsonl") for p in loaded.problems)
    assert str(loaded.problems[0]).startswith(f"{tmp_path / 'd.jsonl'}:2: ")


def test_a_file_mixing_tasks_keeps_the_first_task(tmp_path: Path) -> None:
    rows = [prompt_row(0, "harmful"), response_row(1, "harmful", "sure")]
    loaded = load_dataset("d", write_jsonl(tmp_path / "d.jsonl", rows))
    assert [i.id for i in loaded.items] == ["p-0"]
    assert [(p.line, "differs from the file's first task" in p.message) for p in loaded.problems] == [(2, True)]


def test_response_items_ask_about_the_pair(tmp_path: Path) -> None:
    rows = [response_row(0, "refusal", "I can't help", task="response_refusal")]
    item = load_dataset("d", write_jsonl(tmp_path / "d.jsonl", rows)).items[0]
    assert item.task is Task.RESPONSE_REFUSAL
    assert item.positive
    assert item.check_item == ("prompt 0", "I can't help")


def test_missing_id_falls_back_to_the_line_number(tmp_path: Path) -> None:
    row = prompt_row(0, "harmful")
    del row["id"]
    loaded = load_dataset("d", write_jsonl(tmp_path / "d.jsonl", ["", row]))
    assert [i.id for i in loaded.items] == ["line-2"]


def test_categories_from_strings_lists_and_flag_dicts(tmp_path: Path) -> None:
    assert categories_of("Privacy") == ("Privacy",)
    assert categories_of(["a", "b"]) == ("a", "b")
    assert categories_of({"S": 0, "H": 1, "V": 1}) == ("H", "V")
    assert categories_of({"S": 0}) == ()
    assert categories_of(3) is None
    rows = [prompt_row(0, "harmful", kind="Privacy"), prompt_row(1, "harmful", kind=7), prompt_row(2, "harmful")]
    loaded = load_dataset("d", write_jsonl(tmp_path / "d.jsonl", rows), category_field="kind")
    assert [(i.id, i.categories) for i in loaded.items] == [("p-0", ("Privacy",))]
    assert [p.line for p in loaded.problems] == [2, 3]
    # Outside the registry a plain `category` field is picked up by itself.
    generic = load_dataset("g", write_jsonl(tmp_path / "g.jsonl", [prompt_row(0, "harmful", category="Fraud")]))
    assert generic.items[0].categories == ("Fraud",)


def test_spread_keeps_the_mix_of_a_sorted_file(tmp_path: Path) -> None:
    rows = [prompt_row(i, "harmful" if i < 10 else "unharmful") for i in range(20)]
    items = load_dataset("d", write_jsonl(tmp_path / "d.jsonl", rows)).items
    picked = spread(items, 4)
    assert [i.id for i in picked] == ["p-0", "p-5", "p-10", "p-15"]
    assert spread(items, 4) == picked  # same limit, same items
    assert spread(items, None) == items
    assert spread(items, 50) == items


def test_resolve_names_paths_and_all(tmp_path: Path) -> None:
    data_dir = default_data_dir()
    mine = write_jsonl(tmp_path / "mine.jsonl", [prompt_row(0, "harmful")])
    resolved = resolve_datasets(["jbb_benign", str(mine)], data_dir)
    assert [(name, spec is not None) for name, _, spec in resolved] == [("jbb_benign", True), ("mine", False)]
    assert [name for name, _, _ in resolve_datasets(["all", "aegis"], data_dir)] == list(REGISTRY)
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        resolve_datasets(["nope"], data_dir)
    with pytest.raises(ValueError, match="no file"):
        resolve_datasets([str(tmp_path / "absent.jsonl")], data_dir)


@pytest.mark.skipif(not default_data_dir().is_dir(), reason="shared/data/external is not present")
@pytest.mark.parametrize("name", list(REGISTRY))
def test_registered_files_load_cleanly(name: str) -> None:
    spec = REGISTRY[name]
    path = spec.path(default_data_dir())
    loaded = load_dataset(name, path, spec.category_field)
    # Only "\n" ends a record; U+2028 and friends may sit inside JSON strings.
    lines = sum(1 for line in path.read_text(encoding="utf-8").split("\n") if line.strip())
    assert loaded.problems == []
    assert len(loaded.items) == lines
    assert loaded.task is spec.task
    if spec.category_field:
        assert any(item.categories for item in loaded.items)
    if spec.benign:
        assert any(not item.positive for item in loaded.items)


def test_registry_points_at_published_numbers_that_exist() -> None:
    from guard_eval._datasets import default_published_path

    path = default_published_path()
    if not path.is_file():
        pytest.skip("published_results.json is not present")
    published = json.loads(path.read_text())
    for spec in REGISTRY.values():
        if spec.published:
            section, key = spec.published
            assert key in published[section.value], spec.name
