"""Labelled evaluation sets: the registry of known sets and a loader that reports every bad line.

A dataset file is JSONL in the schema of `shared/data/external/`: one object per line with `task`,
`prompt`, `response` (null for prompt-only sets), `label` and usually `id`, plus extras. A line
that cannot be used (malformed JSON, a missing field, an unknown task or label, a repeated id) is
reported with its line number and skipped: it is never counted as an item.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from guard_client import CheckItem
from guard_client.batch import WorkItem

#: The offline copies live beside this checkout, in `../shared/data/external` relative to the repository root;
#: `--data-dir` or $GUARD_EVAL_DATA (and `--published` or $GUARD_EVAL_PUBLISHED) say where they are elsewhere.
_REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = _REPO.parent / "shared" / "data" / "external"
DEFAULT_PUBLISHED = _REPO.parent / "shared" / "reference" / "published_results.json"
ENV_DATA_DIR, ENV_PUBLISHED = "GUARD_EVAL_DATA", "GUARD_EVAL_PUBLISHED"
REQUIRED_FIELDS = ("task", "prompt", "response", "label")
#: Extra fields read as an item's categories in files outside the registry.
GENERIC_CATEGORY_FIELDS = ("category", "categories")


class Task(StrEnum):
    PROMPT_HARMFULNESS = "prompt_harmfulness"
    RESPONSE_HARMFULNESS = "response_harmfulness"
    RESPONSE_REFUSAL = "response_refusal"


#: Per task, each label and whether it is the positive class (harmful, or refusal).
LABELS: dict[Task, dict[str, bool]] = {
    Task.PROMPT_HARMFULNESS: {"harmful": True, "unharmful": False},
    Task.RESPONSE_HARMFULNESS: {"harmful": True, "unharmful": False},
    Task.RESPONSE_REFUSAL: {"refusal": True, "compliance": False},
}


class PublishedSection(StrEnum):
    """The tables of `published_results.json`."""

    PROMPT = "prompt_classification"
    RESPONSE = "response_classification"
    REFUSAL = "refusal_detection_f1"


@dataclass(frozen=True)
class DatasetSpec:
    """A known evaluation set: where it lives and which published number it reproduces."""

    name: str
    relpath: str
    task: Task
    published: tuple[PublishedSection, str] | None = None
    #: A set of benign prompts whose flags are false positives (the over-blocking measurement).
    benign: bool = False
    category_field: str | None = None
    note: str = ""

    def path(self, data_dir: Path) -> Path:
        return data_dir / self.relpath


REGISTRY: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "toxicchat",
            "toxicchat/toxicchat0124_test_human_prompt_harm.jsonl",
            Task.PROMPT_HARMFULNESS,
            (PublishedSection.PROMPT, "toxicchat"),
            note="the 2,853 human-annotated rows; the published number uses the full 5,083-row split",
        ),
        DatasetSpec(
            "openai_moderation",
            "openai_moderation/openai_mod_prompt_harm.jsonl",
            Task.PROMPT_HARMFULNESS,
            (PublishedSection.PROMPT, "openai_moderation"),
            category_field="categories",
        ),
        DatasetSpec(
            "aegis", "aegis/aegis1_test_prompt_harm.jsonl", Task.PROMPT_HARMFULNESS, (PublishedSection.PROMPT, "aegis")
        ),
        DatasetSpec(
            "simple_safety_tests",
            "simple_safety_tests/sst_prompt_harm.jsonl",
            Task.PROMPT_HARMFULNESS,
            (PublishedSection.PROMPT, "simple_safety_tests"),
            category_field="harm_area",
        ),
        DatasetSpec(
            "harmbench_prompt",
            "harmbench/harmbench_prompt_harm.jsonl",
            Task.PROMPT_HARMFULNESS,
            (PublishedSection.PROMPT, "harmbench"),
        ),
        DatasetSpec(
            "xstest_prompt",
            "xstest/xstest_prompts_harm.jsonl",
            Task.PROMPT_HARMFULNESS,
            benign=True,
            category_field="xstest_type",
            note="250 safe look-alike prompts (false positives) and 200 unsafe contrast prompts",
        ),
        DatasetSpec(
            "jbb_benign",
            "jbb_behaviors/jbb_benign_prompt_harm.jsonl",
            Task.PROMPT_HARMFULNESS,
            benign=True,
            category_field="jbb_category",
        ),
        DatasetSpec(
            "do_not_answer",
            "do_not_answer/do_not_answer_prompt_harm.jsonl",
            Task.PROMPT_HARMFULNESS,
            category_field="risk_area_file",
            note="every prompt is labelled harmful, some are not harmful under a typical guard policy",
        ),
        DatasetSpec(
            "harmbench_response",
            "harmbench/harmbench_response_harm.jsonl",
            Task.RESPONSE_HARMFULNESS,
            (PublishedSection.RESPONSE, "harmbench"),
        ),
        DatasetSpec(
            "saferlhf",
            "saferlhf/saferlhf_test_response_harm.jsonl",
            Task.RESPONSE_HARMFULNESS,
            (PublishedSection.RESPONSE, "saferlhf"),
        ),
        DatasetSpec(
            "beavertails",
            "beavertails/beavertails_30k_test_response_harm.jsonl",
            Task.RESPONSE_HARMFULNESS,
            (PublishedSection.RESPONSE, "beavertails"),
        ),
        DatasetSpec(
            "xstest_response",
            "xstest/xstest_response_harm.jsonl",
            Task.RESPONSE_HARMFULNESS,
            (PublishedSection.RESPONSE, "xstest"),
            category_field="xstest_type",
        ),
        DatasetSpec(
            "xstest_refusal",
            "xstest/xstest_response_refusal.jsonl",
            Task.RESPONSE_REFUSAL,
            (PublishedSection.REFUSAL, "xstest"),
            category_field="xstest_type",
        ),
    )
}


def default_data_dir() -> Path:
    return Path(os.environ.get(ENV_DATA_DIR) or DEFAULT_DATA_DIR)


def default_published_path() -> Path:
    return Path(os.environ.get(ENV_PUBLISHED) or DEFAULT_PUBLISHED)


@dataclass(frozen=True)
class EvalItem:
    dataset: str
    id: str
    task: Task
    prompt: str
    response: str | None
    label: str
    #: The data's own categories (policy types), empty when the file has none.
    categories: tuple[str, ...]
    line: int

    @property
    def key(self) -> str:
        """The item's id in the results log, unique across datasets."""
        return f"{self.dataset}/{self.id}"

    @property
    def work(self) -> WorkItem:
        return WorkItem(self.key, self.check_item, {"dataset": self.dataset, "item_id": self.id})

    @property
    def positive(self) -> bool:
        return LABELS[self.task][self.label]

    @property
    def check_item(self) -> CheckItem:
        """What the guard is asked: the prompt alone, or the (prompt, response) pair."""
        if self.task is Task.PROMPT_HARMFULNESS:
            return self.prompt
        assert self.response is not None
        return (self.prompt, self.response)


@dataclass(frozen=True)
class InputProblem:
    """A line of a dataset file that was skipped, and why."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass
class LoadedDataset:
    name: str
    path: Path
    items: list[EvalItem] = field(default_factory=list)
    problems: list[InputProblem] = field(default_factory=list)
    #: The task every item shares; None when the file held no valid item.
    task: Task | None = None


def categories_of(value: Any) -> tuple[str, ...] | None:
    """Read a category field: a string, a list of strings, or a dict of 0/1 flags (the flags set to 1).

    Returns None for a value of any other shape.
    """
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(value)
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return tuple(k for k, v in value.items() if v is True or v == 1)
    return None


def _validate(obj: Any, category_field: str | None) -> tuple[dict[str, Any], tuple[str, ...]] | str:
    """The fields of one record, or why it cannot be used."""
    if not isinstance(obj, dict):
        return f"expected a JSON object, got {type(obj).__name__}"
    missing = [key for key in REQUIRED_FIELDS if key not in obj]
    if missing:
        return f"missing field{'s' if len(missing) > 1 else ''} {', '.join(repr(k) for k in missing)}"
    if "id" in obj and (not isinstance(obj["id"], (str, int)) or isinstance(obj["id"], bool) or obj["id"] == ""):
        return f"'id' must be a non-empty string or an integer, got {obj['id']!r}"
    try:
        task = Task(obj["task"])
    except ValueError:
        return f"unknown task {obj['task']!r} (expected one of {', '.join(t.value for t in Task)})"
    if obj["label"] not in LABELS[task]:
        return f"unknown label {obj['label']!r} for task {task.value} (expected one of {', '.join(LABELS[task])})"
    if not isinstance(obj["prompt"], str) or not obj["prompt"].strip():
        return "'prompt' must be a non-empty string"
    if task is not Task.PROMPT_HARMFULNESS and (not isinstance(obj["response"], str) or not obj["response"].strip()):
        return f"'response' must be a non-empty string for task {task.value}"
    fields = [category_field] if category_field else [f for f in GENERIC_CATEGORY_FIELDS if f in obj]
    categories: tuple[str, ...] = ()
    for name in fields:
        if name not in obj:
            return f"missing field {name!r} (this dataset's categories)"
        found = categories_of(obj[name])
        if found is None:
            return f"field {name!r} is not a category string, list or flag dict: {obj[name]!r}"
        categories = found
        break
    return obj, categories


def load_dataset(
    name: str, path: Path, category_field: str | None = None, *, mixed_tasks: bool = False
) -> LoadedDataset:
    """Load a JSONL dataset; bad lines land in `problems` with their 1-based line numbers.

    An evaluation set holds one task; `mixed_tasks` admits rows of any task (a load test's mix).
    """
    loaded = LoadedDataset(name, path)
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8", newline="\n") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue

            def skip(message: str, number: int = number) -> None:
                loaded.problems.append(InputProblem(str(path), number, message))

            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                skip(f"malformed JSON ({exc.msg} at column {exc.colno})")
                continue
            checked = _validate(obj, category_field)
            if isinstance(checked, str):
                skip(checked)
                continue
            record, categories = checked
            task = Task(record["task"])
            if loaded.task is None:
                loaded.task = task
            elif task is not loaded.task and not mixed_tasks:
                skip(f"task {task.value} differs from the file's first task {loaded.task.value}")
                continue
            # Results are keyed by id; a file without ids is keyed by line number instead.
            item_id = str(record["id"]) if "id" in record else f"line-{number}"
            if item_id in seen:
                skip(f"id {item_id!r} repeats line {seen[item_id]}")
                continue
            seen[item_id] = number
            loaded.items.append(
                EvalItem(
                    dataset=name,
                    id=item_id,
                    task=task,
                    prompt=record["prompt"],
                    response=record["response"] if task is not Task.PROMPT_HARMFULNESS else None,
                    label=record["label"],
                    categories=categories,
                    line=number,
                )
            )
    return loaded


def resolve_datasets(names: Sequence[str], data_dir: Path) -> list[tuple[str, Path, DatasetSpec | None]]:
    """Map registry names and explicit JSONL paths to (name, path, spec). 'all' means the whole registry."""
    out: list[tuple[str, Path, DatasetSpec | None]] = []
    for name in names:
        if name == "all":
            out.extend((spec.name, spec.path(data_dir), spec) for spec in REGISTRY.values())
        elif name in REGISTRY:
            out.append((name, REGISTRY[name].path(data_dir), REGISTRY[name]))
        elif name.endswith(".jsonl") or os.sep in name:
            path = Path(name)
            out.append((path.stem, path, None))
        else:
            raise ValueError(f"unknown dataset {name!r}: pass a JSONL path or one of {', '.join(REGISTRY)}, all")
    seen: dict[str, Path] = {}
    unique = []
    for entry in out:
        if entry[0] in seen:
            if seen[entry[0]] != entry[1]:
                raise ValueError(f"two datasets are named {entry[0]!r} ({seen[entry[0]]} and {entry[1]}); rename one")
            continue
        seen[entry[0]] = entry[1]
        unique.append(entry)
    for name, path, _ in unique:
        if not path.is_file():
            raise ValueError(f"dataset {name!r}: no file at {path}")
    return unique


def spread(items: Sequence[EvalItem], limit: int | None) -> list[EvalItem]:
    """At most `limit` items spread evenly over the file, so a slice of a file sorted by label or
    category keeps its mix; the same limit always picks the same items."""
    if limit is None or limit >= len(items):
        return list(items)
    if limit <= 0:
        return []
    return [items[i * len(items) // limit] for i in range(limit)]
