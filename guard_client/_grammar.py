"""The output grammar: what a constrained answer may be, and the token budgets it implies.

It is the parser's mirror (`_verdict.parse_verdict` reads what these patterns allow), so both
spell the answer's shape from the same labels: the policy's names (the model's own by default).
"""

from __future__ import annotations

import re

from guard_client._guard_policy import DEFAULT_POLICY, GuardPolicy
from guard_client._labels import GuardMode, Safety

#: The start of every answer; the verdict word follows it.
VERDICT_PREFIX = "Safety:"
#: The most category labels a constrained answer may name (the model names one in practice).
MAX_CATEGORIES = 3


def max_tokens_details(policy: GuardPolicy = DEFAULT_POLICY) -> int:
    """The most tokens the answer after `details_prefix` can take under `policy`'s grammar.

    Every token of a byte-level BPE holds at least one byte, so the longest answer the grammar allows,
    in UTF-8 bytes, bounds the tokens it can take, even when a model (the random stand-in) spells it
    with unusual tokens.
    """
    longest = max(len(category.name.encode()) for category in policy.categories)
    return len(" ") + MAX_CATEGORIES * longest + (MAX_CATEGORIES - 1) * len(", ") + len("\nRefusal: Yes")


def max_tokens_constrained(policy: GuardPolicy = DEFAULT_POLICY) -> int:
    """The most tokens a whole constrained answer can take under `policy`'s grammar; also bounds the
    verdict-first path: its follow-up's prompt ends with the verdict line it continues."""
    return len("Safety: Controversial\nCategories:") + max_tokens_details(policy)


#: `max_tokens_details` of the published policy.
MAX_TOKENS_DETAILS = max_tokens_details(DEFAULT_POLICY)
#: `max_tokens_constrained` of the published policy.
MAX_TOKENS_CONSTRAINED = max_tokens_constrained(DEFAULT_POLICY)


def _check_max_categories(max_categories: int) -> None:
    if not 1 <= max_categories <= MAX_CATEGORIES:
        raise ValueError(f"max_categories must lie between 1 and {MAX_CATEGORIES}, not {max_categories}")


def _categories_regex(mode: GuardMode, safety: Safety | None, max_categories: int, policy: GuardPolicy) -> str:
    """What may follow 'Categories: ': None alone for Safe, else None or up to `max_categories` of the
    policy's labels of the mode."""
    if safety is Safety.SAFE:
        return "None"
    _check_max_categories(max_categories)
    names = [category.name for category in policy.categories_for(mode)]
    if not names:
        return "None"
    labels = "|".join(re.escape(name) for name in names)
    return rf"(None|({labels})(, ({labels})){{0,{max_categories - 1}}})"


def _refusal_regex(mode: GuardMode) -> str:
    return r"\nRefusal: (Yes|No)" if mode is GuardMode.RESPONSE else ""


def verdict_regex(
    mode: GuardMode,
    safety: Safety | None = None,
    *,
    max_categories: int = MAX_CATEGORIES,
    policy: GuardPolicy = DEFAULT_POLICY,
) -> str:
    """The output grammar for `constrain=True`: always a parseable verdict.

    Safe comes with `Categories: None`; Unsafe and Controversial with up to `max_categories` labels
    of `policy` for the mode (or None). `safety` fixes the verdict word.
    """
    return _answer_regex(VERDICT_PREFIX, mode, safety, max_categories, policy)


def continuation_regex(
    mode: GuardMode, *, max_categories: int = MAX_CATEGORIES, policy: GuardPolicy = DEFAULT_POLICY
) -> str:
    """`verdict_regex` after its `VERDICT_PREFIX`: the grammar of a completion that continues a prompt
    ending with 'Safety:' (a custom policy's check, `completion_request`)."""
    return _answer_regex("", mode, None, max_categories, policy)


def _answer_regex(prefix: str, mode: GuardMode, safety: Safety | None, max_categories: int, policy: GuardPolicy) -> str:
    safe = rf"{prefix} Safe\nCategories: None"
    words = "Unsafe|Controversial" if safety is None else safety.value
    flagged = rf"{prefix} ({words})\nCategories: {_categories_regex(mode, safety, max_categories, policy)}"
    pattern = safe if safety is Safety.SAFE else flagged if safety is not None else f"({safe}|{flagged})"
    return pattern + _refusal_regex(mode)


def details_prefix(safety: Safety) -> str:
    """The start of the answer once the verdict word is known: the verdict-first follow-up continues it."""
    return f"{VERDICT_PREFIX} {safety.value}\nCategories:"


def details_regex(
    mode: GuardMode, safety: Safety, *, max_categories: int = MAX_CATEGORIES, policy: GuardPolicy = DEFAULT_POLICY
) -> str:
    """The grammar of the rest of the answer after `details_prefix(safety)`, with `policy`'s labels."""
    return f" {_categories_regex(mode, safety, max_categories, policy)}{_refusal_regex(mode)}"
