"""The policy an adapter is trained for, and the one renderer both training and serving use.

The seam to part 1: `guard_client.GuardPolicy` (loading and validating `guard_policy.yaml`) and the
policy-aware `render_guard_prompt(messages, policy=...)` are the client's. Until the client has them,
this module reads the file's name and category names itself and renders with the model's own template
(whose category block then still lists the default nine); with them, it delegates to the client.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import guard_client
from guard_client import GuardMode, Messages, render_guard_prompt

#: The file name an adapter directory carries its policy under (the launcher looks for it).
POLICY_FILE = str(getattr(guard_client, "POLICY_FILE", "guard_policy.yaml"))


class PolicyFileError(ValueError):
    """The policy file cannot be read or is not a policy; the message is one line naming the file."""


@dataclass(frozen=True)
class TunePolicy:
    """What training needs of a policy: its categories per mode, its exact bytes (to copy and hash),
    and the client's policy object when the client has one."""

    path: Path
    name: str
    categories: tuple[str, ...]
    prompt_only: frozenset[str] = frozenset()
    text: bytes = b""
    client_policy: Any = field(default=None, compare=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text).hexdigest()

    def allowed(self, mode: GuardMode) -> tuple[str, ...]:
        if mode is GuardMode.PROMPT:
            return self.categories
        return tuple(c for c in self.categories if c not in self.prompt_only)

    def render(self, messages: Messages) -> str:
        """The guard prompt exactly as the client sends it to the server for this policy."""
        if self.client_policy is not None:
            return render_guard_prompt(messages, policy=self.client_policy)  # type: ignore[call-arg,unused-ignore]
        return render_guard_prompt(messages)


def load_policy(path: Path) -> TunePolicy:
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise PolicyFileError(f"cannot read the policy file {path}: {exc.strerror or exc}") from None
    client_class = getattr(guard_client, "GuardPolicy", None)
    if client_class is not None:
        try:
            policy = client_class.load(path)
        except Exception as exc:  # GuardPolicyError: already one line naming the file and field
            raise PolicyFileError(str(exc)) from None
        names = tuple(str(c.name) for c in policy.categories)
        prompt_only = frozenset(
            str(c.name) for c in policy.categories if [str(m) for m in c.modes] == [GuardMode.PROMPT.value]
        )
        return TunePolicy(path, str(policy.name), names, prompt_only, text, policy)
    return _read_policy_yaml(path, text)


def _read_policy_yaml(path: Path, text: bytes) -> TunePolicy:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyFileError(f"{path} is not YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise PolicyFileError(f"{path}: a policy needs a 'name' (a string)")
    categories = data.get("categories")
    if not isinstance(categories, list) or not categories:
        raise PolicyFileError(f"{path}: 'categories' must be a non-empty list")
    names: list[str] = []
    prompt_only: set[str] = set()
    for index, category in enumerate(categories):
        if not isinstance(category, dict) or not isinstance(category.get("name"), str) or not category["name"].strip():
            raise PolicyFileError(f"{path}: categories[{index}] needs a 'name' (a non-empty string)")
        if category["name"] in names:
            raise PolicyFileError(f"{path}: categories[{index}] repeats the name {category['name']!r}")
        names.append(category["name"])
        if category.get("modes") == [GuardMode.PROMPT.value]:
            prompt_only.add(category["name"])
    return TunePolicy(path, data["name"], tuple(names), frozenset(prompt_only), text)
