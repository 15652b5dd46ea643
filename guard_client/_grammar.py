"""The output grammar: what a constrained answer may be, and the token budgets it implies.

It is the parser's mirror (`_verdict.parse_verdict` reads what these patterns allow), so both
spell the answer's shape from the same labels.
"""

from __future__ import annotations

import re

from guard_client._labels import CATEGORIES_BY_MODE, Category, GuardMode, Safety

#: The start of every answer; the verdict word follows it.
VERDICT_PREFIX = "Safety:"
#: The most category labels a constrained answer may name (the model names one in practice).
MAX_CATEGORIES = 3

#: Every token of a grammar-constrained answer holds at least one of its (ASCII) characters, so
#: the longest answer the grammar allows, in characters, bounds the tokens it can take, even when
#: a model (the random stand-in) spells it with unusual tokens.
MAX_TOKENS_DETAILS = (
    len(" ")
    + MAX_CATEGORIES * max(len(c.value) for c in Category)
    + (MAX_CATEGORIES - 1) * len(", ")
    + len("\nRefusal: Yes")
)
#: Also bounds the verdict-first path: its follow-up's prompt ends with the verdict line it continues.
MAX_TOKENS_CONSTRAINED = len("Safety: Controversial\nCategories:") + MAX_TOKENS_DETAILS


def _check_max_categories(max_categories: int) -> None:
    if not 1 <= max_categories <= MAX_CATEGORIES:
        raise ValueError(f"max_categories must lie between 1 and {MAX_CATEGORIES}, not {max_categories}")


def _categories_regex(mode: GuardMode, safety: Safety | None, max_categories: int) -> str:
    """What may follow 'Categories: ': None alone for Safe, else None or up to `max_categories` labels."""
    if safety is Safety.SAFE:
        return "None"
    _check_max_categories(max_categories)
    labels = "|".join(re.escape(c.value) for c in CATEGORIES_BY_MODE[mode])
    return rf"(None|({labels})(, ({labels})){{0,{max_categories - 1}}})"


def _refusal_regex(mode: GuardMode) -> str:
    return r"\nRefusal: (Yes|No)" if mode is GuardMode.RESPONSE else ""


def verdict_regex(mode: GuardMode, safety: Safety | None = None, *, max_categories: int = MAX_CATEGORIES) -> str:
    """The output grammar for `constrain=True`: always a parseable verdict.

    Safe comes with `Categories: None`; Unsafe and Controversial with up to `max_categories` labels
    of the mode (or None). `safety` fixes the verdict word.
    """
    safe = r"Safety: Safe\nCategories: None"
    words = "Unsafe|Controversial" if safety is None else safety.value
    flagged = rf"Safety: ({words})\nCategories: {_categories_regex(mode, safety, max_categories)}"
    pattern = safe if safety is Safety.SAFE else flagged if safety is not None else f"({safe}|{flagged})"
    return pattern + _refusal_regex(mode)


def details_prefix(safety: Safety) -> str:
    """The start of the answer once the verdict word is known: the verdict-first follow-up continues it."""
    return f"{VERDICT_PREFIX} {safety.value}\nCategories:"


def details_regex(mode: GuardMode, safety: Safety, *, max_categories: int = MAX_CATEGORIES) -> str:
    """The grammar of the rest of the answer after `details_prefix(safety)`."""
    return f" {_categories_regex(mode, safety, max_categories)}{_refusal_regex(mode)}"
