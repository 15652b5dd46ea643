"""A guard policy as data: the categories the guard prompt lists, the grammar allows and the parser accepts.

The model's published policy is one instance (`DEFAULT_POLICY`, built from `_labels`); a custom policy is
another, usually read from a `guard_policy.yaml` file. Everything downstream (rendering, the output grammar,
parsing, explanations, the OpenAI moderation mapping) takes the policy as data, so a label is spelled once:
in the policy.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from guard_client._errors import GuardError
from guard_client._labels import CATEGORIES_BY_MODE, OPENAI_CATEGORIES, QWEN_TO_OPENAI, Category, GuardMode

#: The file a policy is read from (and that an adapter or merged model directory carries).
POLICY_FILE = "guard_policy.yaml"
#: The name of the model's own published policy.
DEFAULT_POLICY_NAME = "qwen3guard"
#: The longest category name: the answer names up to three, and the token budgets grow with the longest.
MAX_NAME_CHARS = 64
_POLICY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# A comma separates labels in the answer; a line break or other control character ends the line.
_BREAKS_ANSWER = re.compile(r"[,\x00-\x1f\x7f-\x9f\u2028\u2029]")
_LINE_BREAK = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class GuardPolicyError(GuardError, ValueError):
    """A policy (file) that cannot be used; the message is one line naming the file and the field."""

    def __init__(self, source: str, field: str, problem: str) -> None:
        super().__init__(f"{source}: {field}: {problem}" if field else f"{source}: {problem}")
        self.source = source
        self.field = field
        self.problem = problem


def _invalid(message: str, at: str = "") -> PydanticCustomError:
    """A validation error whose message is `message` as written; `at` extends its location (`[2].name`)."""
    return PydanticCustomError("guard_policy", message, {"at": at})


def _check_category_name(name: str) -> str:
    if not name.strip():
        raise _invalid("must not be empty")
    if name != name.strip():
        raise _invalid("must not start or end with whitespace")
    if _BREAKS_ANSWER.search(name):
        raise _invalid(
            "must not contain a comma, a line break or a control character: the answer lists categories "
            "separated by commas on one line"
        )
    if name.lower() == "none":
        raise _invalid("must not be 'None': the answer writes 'Categories: None' when no category applies")
    if name.endswith("."):
        raise _invalid("must not end with '.': the guard prompt lists each category as 'Name.'")
    if len(name) > MAX_NAME_CHARS:
        raise _invalid(f"must be at most {MAX_NAME_CHARS} characters, not {len(name)}")
    return name


class PolicyCategory(BaseModel):
    """One category of a policy: the label the guard writes, and what it means."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: The label, exactly as the guard prompt lists it and the guard writes it.
    name: str
    #: One line the guard prompt writes after the name (`Name. Definition`); None lists the name alone.
    definition: str | None = None
    #: The moderation modes whose prompt lists the category: both by default.
    modes: tuple[GuardMode, ...] = tuple(GuardMode)
    #: The OpenAI moderation keys the category maps onto (one, several, or none: then it shows only in
    #: the `qwen3guard` extension). A single key may be written as a string.
    openai: tuple[str, ...] = ()

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return _check_category_name(name)

    @field_validator("definition")
    @classmethod
    def _definition(cls, definition: str | None) -> str | None:
        if definition is None:
            return None
        if not definition.strip():
            raise _invalid("must not be empty (leave it out to list the name alone)")
        if _LINE_BREAK.search(definition):
            raise _invalid("must be one line: the guard prompt lists one category per line")
        return definition.strip()

    @field_validator("modes", mode="before")
    @classmethod
    def _one_mode(cls, modes: Any) -> Any:
        return (modes,) if isinstance(modes, str) else modes

    @field_validator("modes")
    @classmethod
    def _modes(cls, modes: tuple[GuardMode, ...]) -> tuple[GuardMode, ...]:
        if not modes:
            raise _invalid("must name at least one of: prompt, response")
        if len(set(modes)) != len(modes):
            raise _invalid("names a mode twice")
        return tuple(mode for mode in GuardMode if mode in modes)

    @field_validator("openai", mode="before")
    @classmethod
    def _one_key(cls, keys: Any) -> Any:
        if keys is None:
            return ()
        return (keys,) if isinstance(keys, str) else keys

    @field_validator("openai")
    @classmethod
    def _openai(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        for index, key in enumerate(keys):
            if key not in OPENAI_CATEGORIES:
                raise _invalid(
                    f"{key!r} is not an OpenAI moderation category; one of: {', '.join(OPENAI_CATEGORIES)}",
                    f"[{index}]" if len(keys) > 1 else "",
                )
        if len(set(keys)) != len(keys):
            raise _invalid("names an OpenAI category twice")
        return keys

    @property
    def label(self) -> Category | str:
        """What a verdict holds for this category: the `Category` enum for one of the model's own names."""
        return _label(self.name)


def _label(name: str) -> Category | str:
    try:
        return Category(name)
    except ValueError:
        return name


class GuardPolicy(BaseModel):
    """A safety policy the guard prompt states: a name and its categories (at least one).

    `GuardPolicy.load(path)` reads one from YAML; `GuardPolicy.default()` is the model's published policy,
    which every path renders, constrains and parses exactly as the model's own chat template.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: A short identifier (letters, digits, `.`, `_`, `-`), shown in explanations and errors.
    name: str
    #: In the order the guard prompt lists them.
    categories: tuple[PolicyCategory, ...] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _POLICY_NAME.fullmatch(name):
            raise _invalid("must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        return name

    @field_validator("categories")
    @classmethod
    def _unique(cls, categories: tuple[PolicyCategory, ...]) -> tuple[PolicyCategory, ...]:
        seen: dict[str, int] = {}
        for index, category in enumerate(categories):
            key = category.name.casefold()
            if key in seen:
                raise _invalid(
                    f"{category.name!r} repeats categories[{seen[key]}] (names are compared ignoring case)",
                    f"[{index}].name",
                )
            seen[key] = index
        return categories

    @classmethod
    def default(cls) -> GuardPolicy:
        """The model's published policy: its nine categories, Jailbreak in prompt moderation only."""
        return DEFAULT_POLICY

    @property
    def is_default(self) -> bool:
        """Whether this is the model's published policy (then the server's own chat template renders it)."""
        return self is DEFAULT_POLICY or self == DEFAULT_POLICY

    def categories_for(self, mode: GuardMode | str) -> tuple[PolicyCategory, ...]:
        """The categories the guard prompt of `mode` lists, in order."""
        return _by_mode(self)[GuardMode(mode)]

    def labels(self, mode: GuardMode | str) -> tuple[Category | str, ...]:
        """The labels a verdict of `mode` may hold, in order."""
        return tuple(category.label for category in self.categories_for(mode))

    def category(self, label: str) -> PolicyCategory | None:
        """The category named `label` (ignoring case), or None when the policy has none."""
        return _by_name(self).get(label.casefold())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> GuardPolicy:
        """Read and validate a policy file (or the `guard_policy.yaml` in a directory).

        Raises `GuardPolicyError`, one line naming the file and the field, for anything unusable.
        """
        path = Path(path)
        if path.is_dir():
            path = path / POLICY_FILE
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise GuardPolicyError(source, "", f"cannot read the policy file: {reason}") from None
        return cls.from_yaml(text, source)

    @classmethod
    def from_yaml(cls, text: str, source: str = POLICY_FILE) -> GuardPolicy:
        """Validate a policy written in YAML; `source` names it in errors."""
        import yaml  # only policy files need it: keep it off the client's import path

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise GuardPolicyError(source, "", f"not valid YAML{where}: {problem}") from None
        if not isinstance(data, dict):
            found = "an empty file" if data is None else f"a {type(data).__name__}"
            raise GuardPolicyError(source, "", f"expected a mapping with 'name' and 'categories', found {found}")
        return cls.from_data(data, source)

    @classmethod
    def from_data(cls, data: Any, source: str = POLICY_FILE) -> GuardPolicy:
        """Validate a policy given as plain data (a parsed file); `source` names it in errors."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise _policy_error(source, exc) from None

    def to_data(self) -> dict[str, Any]:
        """The policy as the plain data of its file: defaults left out, a single OpenAI key as a string."""
        categories = []
        for category in self.categories:
            entry: dict[str, Any] = {"name": category.name}
            if category.definition is not None:
                entry["definition"] = category.definition
            if category.modes != tuple(GuardMode):
                entry["modes"] = [mode.value for mode in category.modes]
            if category.openai:
                entry["openai"] = category.openai[0] if len(category.openai) == 1 else list(category.openai)
            categories.append(entry)
        return {"name": self.name, "categories": categories}

    def to_yaml(self) -> str:
        """The policy file's text; `from_yaml` reads it back to an equal policy."""
        import yaml

        text: str = yaml.safe_dump(self.to_data(), sort_keys=False, allow_unicode=True)
        return text

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the policy file at `path` (a directory gets a `guard_policy.yaml`); returns the file written."""
        target = Path(path)
        if target.is_dir():
            target = target / POLICY_FILE
        target.write_text(self.to_yaml(), encoding="utf-8")
        return target


@lru_cache(maxsize=64)
def _by_mode(policy: GuardPolicy) -> dict[GuardMode, tuple[PolicyCategory, ...]]:
    return {mode: tuple(c for c in policy.categories if mode in c.modes) for mode in GuardMode}


@lru_cache(maxsize=64)
def _by_name(policy: GuardPolicy) -> dict[str, PolicyCategory]:
    return {category.name.casefold(): category for category in policy.categories}


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _policy_error(source: str, exc: ValidationError) -> GuardPolicyError:
    """The first problem of `exc` as one line (`categories[1].modes: ...`), counting the others."""
    errors = exc.errors(include_url=False)
    # A list whose every item failed also reads as too short; the items' own errors say why.
    if any(len(e["loc"]) > 1 for e in errors):
        errors = [e for e in errors if not (e["type"] == "too_short" and len(e["loc"]) == 1)]
    first = errors[0]
    field = _location(tuple(first["loc"])) + str((first.get("ctx") or {}).get("at", ""))
    kind, message = first["type"], first["msg"]
    if kind == "extra_forbidden":
        known = PolicyCategory.model_fields if "categories" in first["loc"] else GuardPolicy.model_fields
        message = f"unknown field; known: {', '.join(known)}"
    elif kind == "missing":
        message = "required"
    elif kind == "string_type" and isinstance(first.get("input"), bool):
        message += " (YAML reads yes/no/on/off as true/false: quote it)"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return GuardPolicyError(source, field, " ".join(message.split()))


#: The model's published policy, from the labels the client already holds: every render, grammar and
#: parse with it is the model's own.
DEFAULT_POLICY = GuardPolicy(
    name=DEFAULT_POLICY_NAME,
    categories=tuple(
        PolicyCategory(
            name=category.value,
            modes=tuple(mode for mode in GuardMode if category in CATEGORIES_BY_MODE[mode]),
            openai=QWEN_TO_OPENAI[category],
        )
        for category in Category
    ),
)
