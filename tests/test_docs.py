"""The documents stay true: a short README, links that resolve, a layout that matches the tree, no lab notebook."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO, repository_files

README = REPO / "README.md"
#: Every document whose relative links must resolve.
LINKED_DOCS = sorted(
    [README, REPO / "helm" / "README.md", REPO / "loadtest" / "README.md", *(REPO / "docs").glob("*.md")]
)
#: The front door stays a front door; what does not fit goes to docs/.
README_MAX_LINES = 200


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
#: Measurements belong in the reports and history in commit messages: no test counts, no run dates.
MONTH = r"(?:January|February|March|April|May|June|July|August|September|October|November|December)"
NOTEBOOK = re.compile(
    rf"\b\d[\d,]*\s+(?:passed|failed|tests?)\b|\b\d{{1,2}}\s+{MONTH}\s+\d{{4}}\b|\b{MONTH}\s+\d{{4}}\b|\b20\d\d-\d\d-\d\d\b"
)


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (a `# comment` in a shell block is not a heading)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its rendered text, lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    text = re.sub(r"[`*]", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose_lines(path.read_text()):
        match = HEADING.match(line)
        if match:
            slug = github_slug(match.group(2))
            found.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return found


def relative_links(path: Path) -> list[str]:
    return [
        target
        for line in prose_lines(path.read_text())
        for target in LINK.findall(line)
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto: are not files here
    ]


def broken_link(source: Path, target: str) -> str | None:
    """Why `target`, linked from `source`, does not resolve; None when it does."""
    file_part, _, anchor = target.partition("#")
    resolved = (source.parent / file_part).resolve() if file_part else source
    name = resolved.relative_to(REPO).as_posix() if resolved.is_relative_to(REPO) else str(resolved)
    if not resolved.exists():
        return "no such file"
    if anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
        return f"no heading #{anchor} in {name}"
    return None


def tracked_top_level_directories() -> set[str]:
    return {
        path.relative_to(REPO).parts[0] + "/" for path in repository_files() if len(path.relative_to(REPO).parts) > 1
    }


def readme_layout() -> set[str]:
    """The directories the README's Layout section lists: the first word of each line of its code block."""
    section = README.read_text().partition("\n## Layout\n")[2]
    assert section, "README.md has no `## Layout` section"
    block = section.split("```")[1]
    return {line.split()[0] for line in block.splitlines()[1:] if line.strip()}


def test_readme_is_a_front_door() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines: move the detail to docs/"


@pytest.mark.parametrize("doc", LINKED_DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_resolves(doc: Path) -> None:
    broken = [f"{target}: {why}" for target in relative_links(doc) if (why := broken_link(doc, target))]
    assert broken == []


def test_the_docs_index_links_every_doc() -> None:
    index = REPO / "docs" / "README.md"
    linked = {(index.parent / target.partition("#")[0]).resolve() for target in relative_links(index)}
    pages = {path.relative_to(REPO).as_posix() for path in (REPO / "docs").glob("*.md") if path != index}
    assert sorted(name for name in pages if (REPO / name).resolve() not in linked) == []


def test_readme_layout_lists_exactly_the_tracked_top_level_directories() -> None:
    assert readme_layout() == tracked_top_level_directories()


@pytest.mark.parametrize("doc", LINKED_DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_document_restates_a_test_count_or_a_run_date(doc: Path) -> None:
    found = [match.group(0) for match in NOTEBOOK.finditer(doc.read_text())]
    assert found == [], "test counts belong to the test run, dates to commit messages and reports"


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    assert github_slug("Screening datasets: `guard screen`") == "screening-datasets-guard-screen"
    assert github_slug("The gateway: OpenAI moderations & LiteLLM's guardrail") == (
        "the-gateway-openai-moderations--litellms-guardrail"
    )
    doc = tmp_path / "doc.md"
    doc.write_text("# Title\n\n## Part\n\n```sh\n# not a heading\n```\n\n## Part\n")
    assert anchors(doc) == {"title", "part", "part-1"}
    assert broken_link(doc, "#part-1") is None
    assert broken_link(doc, "#not-a-heading") is not None
    assert broken_link(doc, "missing.md") == "no such file"
    doc.write_text("[a](other.md#x) [b](https://example.com) ![c](img.png)\n```\n[d](code.md)\n```\n")
    assert relative_links(doc) == ["other.md#x", "img.png"]
    sample = "769 passed in 8 min; 1,200 tests; on 28 November 2026; in November 2026; on 2026-11-28"
    assert [m.group(0) for m in NOTEBOOK.finditer(sample)] == [
        "769 passed",
        "1,200 tests",
        "28 November 2026",
        "November 2026",
        "2026-11-28",
    ]
    assert NOTEBOOK.search("40 generated conversations, 16 in flight, 2 CPU cores") is None
