"""The policy an adapter is trained for: the client's `GuardPolicy`, its exact bytes (copied beside the
adapter and hashed into the card), and the one renderer both training and serving use."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from guard_client import POLICY_FILE, GuardMode, GuardPolicy, GuardPolicyError, Messages, render_guard_prompt

__all__ = ["POLICY_FILE", "PolicyFileError", "TunePolicy", "load_policy"]


class PolicyFileError(ValueError):
    """The policy file cannot be read or is not a policy; the message is one line naming the file."""


@dataclass(frozen=True)
class TunePolicy:
    path: Path
    policy: GuardPolicy
    text: bytes

    @property
    def name(self) -> str:
        return self.policy.name

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.policy.categories)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text).hexdigest()

    def allowed(self, mode: GuardMode) -> tuple[str, ...]:
        return tuple(c.name for c in self.policy.categories_for(mode))

    def render(self, messages: Messages) -> str:
        """The guard prompt exactly as the client renders it for this policy."""
        return render_guard_prompt(messages, self.policy)


def load_policy(path: Path) -> TunePolicy:
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise PolicyFileError(f"cannot read the policy file {path}: {exc.strerror or exc}") from None
    try:
        policy = GuardPolicy.load(path)
    except GuardPolicyError as exc:
        raise PolicyFileError(str(exc)) from None
    return TunePolicy(path, policy, text)
