"""Reading labelled data for `guard tune`: bad rows skipped by line, whole-file problems as one-line errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from guard_tune import TuneConfig, TuneError, load_policy, read_labelled, split, tune
from guard_tune._data import TuneDataError
from tests.tune.conftest import example_rows, write_jsonl


def test_rows_are_read_with_their_labels_and_bad_rows_are_reported_by_line(tmp_path: Path, policy_file: Path) -> None:
    rows: list[object] = [
        {"text": "Zorblax is better", "safety": "Unsafe", "categories": ["Competitor Mention"]},
        "{not json",
        {"text": "hello", "safety": "Maybe", "categories": []},
        {"text": "hello", "safety": "Safe", "categories": ["Investment Advice"]},
        {"text": "Buy Glimcoin?", "safety": "unsafe", "categories": ["Investment Advice"]},
    ]
    data = read_labelled(write_jsonl(tmp_path / "d.jsonl", rows), load_policy(policy_file))
    assert [(r.row, r.safety.value, r.categories, r.refusal) for r in data.rows] == [
        (1, "Unsafe", ("Competitor Mention",), None),
        (5, "Unsafe", ("Investment Advice",), None),
    ]
    problems = {p.row: p.message for p in data.problems}
    assert sorted(problems) == [2, 3, 4]
    assert "malformed JSON" in problems[2]
    assert "Safe, Unsafe or Controversial" in problems[3]
    assert "Safe row has no categories" in problems[4]


def test_response_rows_need_a_refusal_label(tmp_path: Path, policy_file: Path) -> None:
    rows: list[object] = [
        {"prompt": "Is Zorblax good?", "response": "Yes.", "safety": "Unsafe", "categories": ["Competitor Mention"]},
        {"prompt": "Is Zorblax good?", "response": "No idea.", "safety": "Safe", "categories": [], "refusal": "Yes"},
    ]
    data = read_labelled(write_jsonl(tmp_path / "d.jsonl", rows), load_policy(policy_file))
    assert [(r.row, r.refusal) for r in data.rows] == [(2, True)]
    assert [(p.row, p.message) for p in data.problems] == [(1, "a response row needs 'refusal' (Yes or No)")]


def test_csv_labels_read_as_a_comma_list(tmp_path: Path, policy_file: Path) -> None:
    path = tmp_path / "d.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "safety", "categories"])
        writer.writerow(["Zorblax and Glimcoin", "Unsafe", "Competitor Mention, Investment Advice"])
        writer.writerow(["hi", "Safe", ""])
    data = read_labelled(path, load_policy(policy_file))
    assert [r.categories for r in data.rows] == [("Competitor Mention", "Investment Advice"), ()]


def test_a_label_outside_the_policy_is_an_error_naming_the_row(tmp_path: Path, policy_file: Path) -> None:
    rows = [*example_rows(3), {"text": "x", "safety": "Unsafe", "categories": ["Violent"]}]
    with pytest.raises(TuneDataError, match=r"^row 4: 'Violent' is not a category of the policy 'acme'"):
        read_labelled(write_jsonl(tmp_path / "d.jsonl", rows), load_policy(policy_file))


def test_a_prompt_only_category_on_a_response_row_is_outside_the_policy(tmp_path: Path, policy_file: Path) -> None:
    row = {"prompt": "a", "response": "b", "safety": "Unsafe", "categories": ["Investment Advice"], "refusal": "No"}
    with pytest.raises(TuneDataError, match=r"row 1: 'Investment Advice' .* for response moderation"):
        read_labelled(write_jsonl(tmp_path / "d.jsonl", [row]), load_policy(policy_file))


def test_a_missing_label_column_names_it(tmp_path: Path, policy_file: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "safety": "Safe"}])
    with pytest.raises(TuneDataError, match="no 'categories' label column"):
        read_labelled(path, load_policy(policy_file))


def test_one_class_only_and_too_few_rows_are_refused_with_the_reason(policy_file: Path, tmp_path: Path) -> None:
    policy = load_policy(policy_file)
    safe = [r for r in example_rows(80) if r["safety"] == "Safe"]
    data = read_labelled(write_jsonl(tmp_path / "safe.jsonl", safe), policy)
    with pytest.raises(TuneDataError, match="every usable row is Safe"):
        split(data.rows, 0.2, 0)
    data = read_labelled(write_jsonl(tmp_path / "few.jsonl", example_rows(8)), policy)
    with pytest.raises(TuneDataError, match="tuning needs at least 8"):
        split(data.rows, 0.2, 0)


def test_the_split_holds_out_each_label_and_follows_the_seed(policy_file: Path, tmp_path: Path) -> None:
    data = read_labelled(write_jsonl(tmp_path / "d.jsonl", example_rows(100)), load_policy(policy_file))
    train, held = split(data.rows, 0.2, 0)
    assert len(train) + len(held) == 100 and {r.row for r in train}.isdisjoint(r.row for r in held)
    assert {r.label for r in held} == {r.label for r in data.rows}
    assert split(data.rows, 0.2, 0) == (train, held)
    assert split(data.rows, 0.2, 1)[1] != held


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.jsonl", "error: no input file at"),
        (lambda d: (d / "bin.jsonl").write_bytes(b"\xff\xfe\x00bad") and d / "bin.jsonl", "is not UTF-8"),
    ],
)
def test_an_unreadable_file_is_one_line(tmp_path: Path, policy_file: Path, make, message, capsys) -> None:  # type: ignore[no-untyped-def]
    from guard_client.__main__ import main

    out = tmp_path / "out"
    assert main(["tune", "--data", str(make(tmp_path)), "--policy", str(policy_file), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
    assert not out.exists()


def test_an_output_directory_holding_another_run_is_refused_untouched(tmp_path: Path, policy_file: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", example_rows(40))
    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"base": "standin:tiny", "seed": 99}))
    (out / "keep.txt").write_text("mine")
    before = sorted((p.name, p.read_bytes()) for p in out.iterdir())
    with pytest.raises(TuneError, match=r"holds another run \(its .*seed.* differ\)"):
        tune(TuneConfig(data=data, out=out, policy=policy_file, steps=1, evaluate=False))
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.md").write_text("not a run")
    with pytest.raises(TuneError, match="is not a guard tune run"):
        tune(TuneConfig(data=data, out=other, policy=policy_file, steps=1, evaluate=False))
    assert sorted((p.name, p.read_bytes()) for p in out.iterdir()) == before
    assert [p.name for p in other.iterdir()] == ["notes.md"]


def test_a_bad_policy_file_is_one_line(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("name: acme\ncategories: []\n")
    with pytest.raises(TuneError) as caught:
        tune(TuneConfig(data=tmp_path / "d.jsonl", out=tmp_path / "o", policy=policy))
    assert str(policy) in str(caught.value) and "\n" not in str(caught.value)


def test_guard_tune_is_not_imported_with_the_client() -> None:
    import subprocess
    import sys

    code = (
        "import sys, guard_client, guard_client.__main__; print(any(m in sys.modules for m in ('torch', 'guard_tune')))"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
