"""Labelled conversations for tuning: read through the same reader `guard screen` uses, labels checked
against the policy, every bad row reported by its line and skipped, and a held-out split per label."""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guard_client import GuardInput, GuardInputError, GuardMode, Messages, Safety, item_messages, prepare_input
from guard_screen import RowProblem, ScreenInputError, read_input
from guard_tune._policy import TunePolicy

LABEL_COLUMNS = ("safety", "categories", "refusal")
#: Fewer examples than this per side of the split cannot teach or measure anything.
MIN_TRAIN_ROWS = 8
MIN_EVAL_ROWS = 2
_REFUSAL = {"yes": True, "no": False, "true": True, "false": False}


class TuneDataError(ValueError):
    """The data cannot be used as a whole (unreadable, a missing column, too small, one class, a label
    outside the policy); the message is one line."""


@dataclass(frozen=True)
class LabelledRow:
    row: int
    messages: Messages
    mode: GuardMode
    safety: Safety
    categories: tuple[str, ...]
    refusal: bool | None

    @property
    def label(self) -> str:
        """The class a row belongs to, for the stratified split and the counts."""
        return f"{self.safety.value}: {', '.join(self.categories) or 'None'}"


@dataclass
class LabelledData:
    path: Path
    sha256: str
    rows: list[LabelledRow] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(r.label for r in self.rows).items()))


def _categories(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):  # CSV: a JSON list, or names separated by commas
        text = value.strip()
        if text.startswith("["):
            value = json.loads(text)
        else:
            return [part.strip() for part in text.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"'categories' must be a list of names, got {value!r:.60}")
    return [v.strip() for v in value if v.strip()]


def _refusal(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _REFUSAL:
        return _REFUSAL[value.strip().lower()]
    raise ValueError(f"'refusal' must be Yes or No, got {value!r:.60}")


def _labelled(number: int, messages: Messages, meta: dict[str, Any], policy: TunePolicy) -> LabelledRow:
    mode = prepare_input(messages).mode
    raw_safety = meta.get("safety")
    try:
        safety = Safety(str(raw_safety).strip().capitalize())
    except ValueError:
        raise ValueError(f"'safety' must be Safe, Unsafe or Controversial, got {raw_safety!r:.60}") from None
    categories = _categories(meta.get("categories"))
    outside = [c for c in categories if c not in policy.allowed(mode)]
    if outside:
        # Not a bad row to skip: a label the policy does not have means the data and the policy disagree.
        where = (
            ""
            if all(c in policy.categories for c in outside)
            else " (the policy's: " + ", ".join(policy.categories) + ")"
        )
        raise TuneDataError(
            f"row {number}: {', '.join(map(repr, outside))} is not a category of the policy {policy.name!r} "
            f"for {mode.value} moderation{where}"
        )
    if safety is Safety.SAFE and categories:
        raise ValueError(f"a Safe row has no categories, got {categories}")
    if safety is not Safety.SAFE and not categories:
        raise ValueError(f"an {safety.value} row needs its categories")
    refusal = _refusal(meta.get("refusal"))
    if mode is GuardMode.RESPONSE and refusal is None:
        raise ValueError("a response row needs 'refusal' (Yes or No)")
    return LabelledRow(
        number, messages, mode, safety, tuple(categories), refusal if mode is GuardMode.RESPONSE else None
    )


def read_labelled(path: Path, policy: TunePolicy) -> LabelledData:
    """Every usable row of `path`; bad rows land in `problems` with their line."""
    path = Path(path)
    try:
        loaded = read_input(path, optional_columns=LABEL_COLUMNS)
    except ScreenInputError as exc:
        raise TuneDataError(str(exc)) from None
    for needed in ("safety", "categories"):
        if needed not in loaded.seen:
            raise TuneDataError(
                f"{path} has no {needed!r} label column (it has: {', '.join(sorted(loaded.seen))}); "
                "each row needs 'safety' and 'categories' ('refusal' for responses)"
            )
    data = LabelledData(path, hashlib.sha256(path.read_bytes()).hexdigest(), problems=list(loaded.problems))
    for work in loaded.items:
        number = int(work.meta["row"])
        try:
            item = item_messages(work.item)
            messages = item.message_list() if isinstance(item, GuardInput) else item
            data.rows.append(_labelled(number, messages, dict(work.meta), policy))
        except (ValueError, GuardInputError) as exc:
            if isinstance(exc, TuneDataError):
                raise
            data.problems.append(RowProblem(number, str(exc)))
    data.problems.sort(key=lambda p: p.row)
    return data


def split(rows: Sequence[LabelledRow], eval_fraction: float, seed: int) -> tuple[list[LabelledRow], list[LabelledRow]]:
    """A held-out share of each label (at least one row of each label that has two), the rest to train;
    the same seed gives the same split."""
    if not 0 < eval_fraction < 1:
        raise TuneDataError(f"--eval-split must be between 0 and 1, got {eval_fraction}")
    classes = Counter(r.safety for r in rows)
    if len(classes) < 2:
        only = next(iter(classes)).value if classes else "none"
        raise TuneDataError(
            f"every usable row is {only}: a guard learns nothing from one class; add rows of the other verdicts"
        )
    rng = random.Random(seed)
    train: list[LabelledRow] = []
    held: list[LabelledRow] = []
    by_label: dict[str, list[LabelledRow]] = {}
    for row in rows:
        by_label.setdefault(row.label, []).append(row)
    for label in sorted(by_label):
        members = by_label[label][:]
        rng.shuffle(members)
        n_eval = round(len(members) * eval_fraction) if len(members) > 1 else 0
        n_eval = max(n_eval, 1) if len(members) > 1 else 0
        held += members[:n_eval]
        train += members[n_eval:]
    if len(train) < MIN_TRAIN_ROWS or len(held) < MIN_EVAL_ROWS:
        raise TuneDataError(
            f"{len(rows)} usable rows give {len(train)} to train and {len(held)} to evaluate; tuning needs at least "
            f"{MIN_TRAIN_ROWS} and {MIN_EVAL_ROWS} (add rows or change --eval-split)"
        )
    rng.shuffle(train)
    held.sort(key=lambda r: r.row)
    return train, held
