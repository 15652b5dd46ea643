"""The load test's mix of checks, apart from locust so the runner can validate it before starting."""

from __future__ import annotations

import random
from typing import Any

from bench.corpus import GuardItem, split_by_mode
from guard_client import GuardMode, chat_request, prepare_input


class CheckMix:
    """The checks the load test's users send: which text, which mode, streamed or not, and the body."""

    def __init__(self, items: list[GuardItem], response_share: float, stream_share: float, constrained: bool):
        by_mode = split_by_mode(items)
        self.prompts, self.responses = by_mode[GuardMode.PROMPT], by_mode[GuardMode.RESPONSE]
        if not 0.0 <= response_share <= 1.0 or not 0.0 <= stream_share <= 1.0:
            raise ValueError("the response share and the stream share must lie between 0 and 1")
        if response_share > 0 and not self.responses:
            raise ValueError(
                "the data has no rows with a response: add a response dataset or set the response share to 0"
            )
        if response_share < 1 and not self.prompts:
            raise ValueError("the data has no prompt-only rows: add a prompt dataset or set the response share to 1")
        self.response_share = response_share
        self.stream_share = stream_share
        self.constrained = constrained

    def draw(self, rng: random.Random) -> tuple[GuardItem, bool]:
        pool = self.responses if rng.random() < self.response_share else self.prompts
        return rng.choice(pool), rng.random() < self.stream_share

    def body(self, item: GuardItem, model: str, stream: bool) -> dict[str, Any]:
        """The request the project's client sends for this check (plus streaming when asked)."""
        return chat_request(prepare_input(item.messages()), model, constrain=self.constrained, stream=stream)


def check_name(mode: GuardMode, stream: bool) -> str:
    """The locust entry name of a check: one entry per request type."""
    return f"{mode.value} check" + (" (stream)" if stream else "")


def parse_steps(text: str) -> list[int]:
    """'1,2,4,8' -> [1, 2, 4, 8]; users per step, each at least 1."""
    try:
        steps = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--guard-steps must be comma-separated user counts, got {text!r}") from None
    if not steps or min(steps) < 1:
        raise ValueError(f"--guard-steps needs at least one step of 1 or more users, got {text!r}")
    return steps
