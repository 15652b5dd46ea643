"""What the command lines share: `guard check`'s and the applications' (`guard screen`, `guard tune`,
`python -m guard_eval`).

The check flags (`--scores`, `--constrain`, ...) are declared once, so every command that checks takes them
with the same names and help, and each command's config is built from its parsed arguments by field name
instead of copying every field across by hand.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar, cast

from guard_client._flows import CheckOptions

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Config = TypeVar("Config", bound="DataclassInstance")

#: The on/off `CheckOptions` a command line takes as flags (`verdict_only` is `--verdict-only`), with their help.
CHECK_FLAGS: dict[str, str] = {
    "scores": "add P(Safe/Unsafe/Controversial) from logprobs",
    "constrain": "constrain decoding to the verdict grammar",
    "verdict_only": "one-token verdict first; details only if flagged",
    "chunk": "split inputs too long for the server into windows",
    "locate": "for a flagged text, find the smallest spans flagged on their own",
}


def add_check_flags(parser: argparse.ArgumentParser) -> None:
    """Add `CHECK_FLAGS` to `parser`; `check_options` reads them back."""
    for name, help_text in CHECK_FLAGS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", action="store_true", help=help_text)


def check_options(args: argparse.Namespace) -> CheckOptions:
    """The `CheckOptions` the flags of `add_check_flags` were given."""
    return cast(CheckOptions, {name: getattr(args, name) for name in CHECK_FLAGS})


def config_from(cls: type[Config], source: object, **overrides: Any) -> Config:
    """A `cls` dataclass whose fields take the values of `source`'s attributes of the same names (parsed
    arguments, or a larger config); `overrides` set fields by keyword, and a field neither has keeps its default."""
    values = {f.name: getattr(source, f.name) for f in fields(cls) if f.init and hasattr(source, f.name)}
    return cls(**{**values, **overrides})
