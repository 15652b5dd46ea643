"""Texts to check: the project's own small sample, or any JSONL in the shared evaluation schema.

The schema is the one `../shared/data/external/README.md` describes: one JSON object per line with
`id`, `task`, `prompt`, `response` (null for prompt-only rows) and `label` (`harmful`/`unharmful`...).
A row with a response is checked in response moderation, a row without one in prompt moderation.

The external datasets carry non-commercial licences: they are read from `../shared` at run time and
never copied into this repository. `sample_checks.jsonl` beside this file is the project's own text.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from guard_client import GuardMode
from guard_eval import REGISTRY, default_data_dir, load_dataset

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
DEFAULT_SAMPLE = PACKAGE_DIR / "sample_checks.jsonl"
# The shared datasets are where the evaluation harness finds them ($GUARD_EVAL_DATA, else ../shared).
TOXICCHAT = default_data_dir() / REGISTRY["toxicchat"].relpath
BEAVERTAILS = default_data_dir() / REGISTRY["beavertails"].relpath
HARMFUL = "harmful"


class CorpusError(ValueError):
    """A data file that is missing or not in the expected schema; the message names file and line."""


@dataclass(frozen=True)
class GuardItem:
    """One text to check, with the dataset's own label (meaningless to a random-weight stand-in)."""

    id: str
    prompt: str
    response: str | None
    label: str

    @property
    def mode(self) -> GuardMode:
        return GuardMode.PROMPT if self.response is None else GuardMode.RESPONSE

    @property
    def harmful(self) -> bool:
        return self.label == HARMFUL

    def messages(self) -> list[dict[str, str]]:
        messages = [{"role": "user", "content": self.prompt}]
        if self.response is not None:
            messages.append({"role": "assistant", "content": self.response})
        return messages

    @property
    def chars(self) -> int:
        return len(self.prompt) + len(self.response or "")


def load_jsonl(path: Path | str) -> list[GuardItem]:
    """Read every row of one JSONL file with the evaluation harness's reader; raises CorpusError naming
    the file and line of the first bad row (a benchmark runs on exactly the rows it was given)."""
    path = Path(path)
    if not path.is_file():
        hint = " (the external datasets live in ../shared/data/external)" if "shared" in str(path) else ""
        raise CorpusError(f"data file {path} does not exist{hint}")
    loaded = load_dataset(path.stem, path, mixed_tasks=True)
    if loaded.problems:
        raise CorpusError(f"{loaded.problems[0]} (not a row of the shared schema)")
    if not loaded.items:
        raise CorpusError(f"data file {path} has no rows")
    return [GuardItem(item.id, item.prompt, item.response, item.label) for item in loaded.items]


def load_corpus(paths: Iterable[Path | str] = ()) -> list[GuardItem]:
    """All rows of the given files, or the project's own sample when none are given."""
    paths = list(paths) or [DEFAULT_SAMPLE]
    return [item for path in paths for item in load_jsonl(path)]


def sample(items: Sequence[GuardItem], count: int, *, seed: int = 0, max_chars: int | None = None) -> list[GuardItem]:
    """A deterministic random sample (same seed, same items, same order), optionally without very long texts."""
    pool = [item for item in items if max_chars is None or item.chars <= max_chars]
    if len(pool) < count:
        raise CorpusError(f"asked for {count} items but only {len(pool)} qualify")
    return random.Random(seed).sample(pool, count)


def split_by_mode(items: Iterable[GuardItem]) -> dict[GuardMode, list[GuardItem]]:
    by_mode: dict[GuardMode, list[GuardItem]] = {GuardMode.PROMPT: [], GuardMode.RESPONSE: []}
    for item in items:
        by_mode[item.mode].append(item)
    return by_mode


def prompt_texts(limit: int) -> list[str]:
    """Up to `limit` ToxicChat prompts when the shared data is here, else as many generated everyday ones."""
    prompts: list[str] = []
    if TOXICCHAT.is_file():
        with TOXICCHAT.open() as lines:
            for line in lines:
                prompts.append(json.loads(line)["prompt"])
                if len(prompts) >= limit:
                    break
    return prompts or [f"sample prompt number {i} about an everyday topic" for i in range(limit)]
