"""The published safety policy, read from the shared reference: the independent source the tests hold
the client's policy data and explanations against."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tests.conftest import SHARED

REFERENCE = SHARED / "reference" / "qwen3guard-gen.md"
# "- **Name:** definition", "- **Name** [`Label`]: definition", "- **Name** (prompts only): definition"
_ENTRY = re.compile(r"^- \*\*(?P<name>[^*]+?):?\*\*(?: \[`(?P<label>[^`]+)`\]| \([^)]*\))?:? (?P<text>.+)$")


@dataclass(frozen=True)
class PublishedPolicy:
    severities: dict[str, str]  # label -> definition
    categories: dict[str, tuple[str, str]]  # label -> (policy name, definition)


def published_policy() -> PublishedPolicy:
    text = REFERENCE.read_text(encoding="utf-8")
    section = text.split("## The published safety policy", 1)[1]
    severity_part, category_part = section.split("Categories (", 1)
    severities = {}
    for line in severity_part.splitlines():
        if match := _ENTRY.match(line):
            severities[match["name"]] = match["text"]
    categories = {}
    for line in category_part.splitlines():
        if match := _ENTRY.match(line):
            categories[match["label"] or match["name"]] = (match["name"], match["text"])
    return PublishedPolicy(severities, categories)
