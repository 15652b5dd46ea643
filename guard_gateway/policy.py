"""The one place where strictness and the failure policy turn a verdict into allow, annotate or block.

Every endpoint (moderations, the LiteLLM guardrail, the chat proxy) asks `Policy.decide`; none
reads `Verdict.safety` or the failure policy itself. A verdict the guard did not decide is never
allowed as Safe: under fail_closed it raises `GuardUnavailable` (503), under fail_open it is
allowed, marked (`Decision.failed_open`) and counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from guard_client import Category, FailurePolicy, GuardMode, Strictness, Verdict
from guard_gateway.errors import GuardUnavailable
from guard_gateway.metrics import GatewayMetrics


class Action(StrEnum):
    """What happens to flagged content. Ordered by severity: the most severe of a verdict's categories wins."""

    ALLOW = "allow"  # let it through unmarked
    ANNOTATE = "annotate"  # let it through with the verdict attached
    BLOCK = "block"


_SEVERITY = {Action.ALLOW: 0, Action.ANNOTATE: 1, Action.BLOCK: 2}


class DirectionPolicy(BaseModel):
    """The actions for one direction (prompt or response moderation)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: Action = Field(default=Action.BLOCK, description="action for a flagged verdict")
    categories: dict[Category, Action] = Field(default_factory=dict, description="per-category overrides")


class PolicySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    strictness: Strictness = Field(default=Strictness.STRICT, description="strict counts Controversial as unsafe")
    on_guard_failure: Literal[FailurePolicy.FAIL_CLOSED, FailurePolicy.FAIL_OPEN] = Field(
        default=FailurePolicy.FAIL_CLOSED, description="fail_closed answers 503; fail_open lets through, marked"
    )
    retry_after_seconds: int = Field(default=5, ge=0, description="Retry-After of a 503 guard_unavailable")
    prompt: DirectionPolicy = Field(default=DirectionPolicy(), description="actions for prompts (user turns)")
    response: DirectionPolicy = Field(default=DirectionPolicy(), description="actions for responses")

    def for_mode(self, mode: GuardMode) -> DirectionPolicy:
        return self.prompt if mode is GuardMode.PROMPT else self.response


@dataclass(frozen=True)
class Decision:
    action: Action
    verdict: Verdict
    #: The model's reading under the configured strictness (before category actions).
    flagged: bool
    #: The guard did not decide and the failure policy let the content through.
    failed_open: bool = False

    @property
    def blocked(self) -> bool:
        return self.action is Action.BLOCK

    def reason(self) -> str:
        """One line for a block message: severity and categories, never the checked text."""
        verdict = self.verdict
        if not verdict.decided:
            return f"the guard did not decide ({verdict.error}); failing open"
        labels = ", ".join(str(category) for category in verdict.categories) or "no category"
        return f"Qwen3Guard {verdict.mode.value} moderation: {verdict.safety} ({labels})"


class Policy:
    def __init__(self, settings: PolicySettings, metrics: GatewayMetrics) -> None:
        self.settings = settings
        self.strictness = settings.strictness
        self._metrics = metrics

    def decide(self, verdict: Verdict, endpoint: str) -> Decision:
        """The action for one verdict; raises GuardUnavailable for an undecided verdict when failing closed."""
        return self.decide_all([verdict], endpoint)[0]

    def decide_all(self, verdicts: Sequence[Verdict], endpoint: str) -> list[Decision]:
        """Decisions for the verdicts of one request: if the guard failed on any of them and the
        policy fails closed, the whole request is refused (503), as a partial answer cannot be acted on."""
        undecided = [verdict for verdict in verdicts if not verdict.decided]
        if undecided and self.settings.on_guard_failure is FailurePolicy.FAIL_CLOSED:
            self._metrics.fail_closed.labels(endpoint).inc(len(undecided))
            raise GuardUnavailable(
                f"the guard could not decide: {undecided[0].error}", retry_after=self.settings.retry_after_seconds
            )
        if undecided:
            self._metrics.fail_open.labels(endpoint).inc(len(undecided))
        return [self._decide(verdict) for verdict in verdicts]

    def _decide(self, verdict: Verdict) -> Decision:
        if not verdict.decided:
            return Decision(Action.ALLOW, verdict, flagged=False, failed_open=True)
        if not verdict.flagged(self.strictness):
            return Decision(Action.ALLOW, verdict, flagged=False)
        direction = self.settings.for_mode(verdict.mode)
        # A custom policy's category has no per-category setting here: it takes the mode's default.
        actions = [
            direction.categories.get(category, direction.default)
            if isinstance(category, Category)
            else direction.default
            for category in verdict.categories
        ]
        action = max(actions or [direction.default], key=_SEVERITY.__getitem__)
        return Decision(action, verdict, flagged=True)
