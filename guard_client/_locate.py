"""Where in a flagged text the verdict comes from: a pure search over windows of the text.

The search is a generator with no I/O, like the client's check flows: it yields the windows it
wants checked next (all of one round at once, so a driver checks them concurrently) and receives,
for each, whether the guard flagged it (None when that check could not be decided). Its return
value is the `Location`. `locate` drives it with any `check(windows) -> flags` callable; the clients
plug it into their flows, each window checked with the conversation before the text kept as context.

The search halves the flagged text along paragraph boundaries, then along sentence boundaries
inside one paragraph, checking both halves of every open window each round:
- one half flagged: narrow into it; both flagged: narrow into each (two spans);
- neither flagged: the window is flagged only as a whole (its parts pass on their own), and is the
  smallest span that can be reported without inventing one.

Bound (stated, and enforced by `max_checks`): narrowing one span to one sentence takes at most
2·⌈log2 P⌉ + 2·⌈log2 S⌉ extra checks, P the paragraphs of the text and S the most sentences in one
of its paragraphs; that is the default budget (`check_bound`). Further spans share it; a window the
budget cannot split further is reported as it stands, with `complete=False`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from pydantic import BaseModel, ConfigDict, Field

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n\s*")
# After sentence-ending punctuation (optionally closed by a quote or bracket) and whitespace, at a
# line break, or right after CJK full-width punctuation, which takes no space after it.
_SENTENCE_BREAK = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"')\]’”»]))\s+|\s*\n\s*|(?<=[。！？])(?=\S)")


@dataclass(frozen=True)
class Segment:
    """A sentence of the text: character offsets [start, end) and the paragraph it belongs to."""

    start: int
    end: int
    paragraph: int


@dataclass(frozen=True)
class Window:
    """A part of the text to check on its own: offsets into the original text, and that text."""

    start: int
    end: int
    text: str


class Span(BaseModel):
    """A part of the text the guard flags on its own."""

    model_config = ConfigDict(frozen=True)

    start: int = Field(description="character offset into the original text (inclusive)")
    end: int = Field(description="character offset into the original text (exclusive)")
    excerpt: str
    as_whole: bool = Field(
        default=False, description="its halves each pass on their own: only their combination is flagged"
    )


class Location(BaseModel):
    """Where a flagged text's verdict comes from."""

    model_config = ConfigDict(frozen=True)

    spans: list[Span]
    flagged_as_whole: bool = Field(description="the parts of the text pass on their own; only the whole is flagged")
    complete: bool = Field(description="False when the budget ran out or a window check failed before the end")
    checks: int = Field(description="extra guard checks the search made")
    max_checks: int = Field(description="the bound it ran under")
    paragraphs: int
    sentences: int


#: What the search yields (windows to check) and receives (flagged, or None when undecided).
LocateSearch: TypeAlias = Generator[list[Window], Sequence[bool | None], Location]


def _pieces(text: str, start: int, end: int, separator: re.Pattern[str]) -> list[tuple[int, int]]:
    pieces, position = [], start
    for match in separator.finditer(text, start, end):
        pieces.append((position, match.start()))
        position = match.end()
    pieces.append((position, end))
    return pieces


def segment(text: str) -> list[Segment]:
    """The sentences of `text`, grouped into paragraphs (split at blank lines); never empty."""
    segments: list[Segment] = []
    paragraph = 0
    for p_start, p_end in _pieces(text, 0, len(text), _PARAGRAPH_BREAK):
        found = False
        for start, end in _pieces(text, p_start, p_end, _SENTENCE_BREAK):
            while start < end and text[start].isspace():
                start += 1
            while end > start and text[end - 1].isspace():
                end -= 1
            if start < end:
                segments.append(Segment(start, end, paragraph))
                found = True
        paragraph += found
    return segments or [Segment(0, len(text), 0)]


def _ceil_log2(n: int) -> int:
    return math.ceil(math.log2(n)) if n > 1 else 0


def check_bound(text: str) -> int:
    """The default budget: 2·⌈log2 P⌉ + 2·⌈log2 S⌉ extra checks (see the module docstring)."""
    segments = segment(text)
    per_paragraph: dict[int, int] = {}
    for s in segments:
        per_paragraph[s.paragraph] = per_paragraph.get(s.paragraph, 0) + 1
    return 2 * _ceil_log2(len(per_paragraph)) + 2 * _ceil_log2(max(per_paragraph.values()))


def _split(segments: Sequence[Segment], a: int, b: int) -> int:
    """Where to halve segments [a, b): the middle paragraph boundary, else the middle sentence."""
    first, last = segments[a].paragraph, segments[b - 1].paragraph
    if first != last:
        middle = (first + last + 1) // 2
        return next(i for i in range(a, b) if segments[i].paragraph >= middle)
    return (a + b) // 2


def locate_search(text: str, *, max_checks: int | None = None) -> LocateSearch:
    """The search for a text the guard flagged as a whole (see the module docstring).

    Yields rounds of windows; send back one flag per window, in order.
    """
    segments = segment(text)
    budget = check_bound(text) if max_checks is None else max_checks
    if budget < 0:
        raise ValueError("max_checks must be zero or more")

    def window(a: int, b: int) -> Window:
        start, end = segments[a].start, segments[b - 1].end
        return Window(start, end, text[start:end])

    found: list[tuple[int, int, bool]] = []  # (a, b, as_whole)
    open_: list[tuple[int, int]] = [(0, len(segments))]
    checks, complete = 0, True
    while open_:
        splittable = [(a, b) for a, b in open_ if b - a > 1]
        found += [(a, b, False) for a, b in open_ if b - a <= 1]
        affordable = min(len(splittable), (budget - checks) // 2)
        if affordable < len(splittable):
            complete = False
            found += [(a, b, False) for a, b in splittable[affordable:]]
        splittable = splittable[:affordable]
        if not splittable:
            break
        halves = [h for a, b in splittable for h in ((a, _split(segments, a, b)), (_split(segments, a, b), b))]
        flags = list((yield [window(a, b) for a, b in halves]))
        if len(flags) != len(halves):
            raise ValueError(f"expected {len(halves)} flags, got {len(flags)}")
        checks += len(halves)
        open_ = []
        for index, (a, b) in enumerate(splittable):
            left, right = flags[2 * index], flags[2 * index + 1]
            flagged = [
                half for half, flag in zip(halves[2 * index : 2 * index + 2], (left, right), strict=True) if flag
            ]
            if None in (left, right):
                complete = False  # an undecided half may hold a span of its own
            if flagged:
                open_ += flagged
            else:
                found.append((a, b, left is False and right is False))

    found.sort()
    spans = [
        Span(start=w.start, end=w.end, excerpt=w.text, as_whole=as_whole)
        for a, b, as_whole in found
        for w in (window(a, b),)
    ]
    return Location(
        spans=spans,
        flagged_as_whole=len(found) == 1 and found[0][:2] == (0, len(segments)) and found[0][2],
        complete=complete,
        checks=checks,
        max_checks=budget,
        paragraphs=segments[-1].paragraph + 1,
        sentences=len(segments),
    )


def locate(
    text: str, check: Callable[[list[Window]], Sequence[bool | None]], *, max_checks: int | None = None
) -> Location:
    """Drive `locate_search` with a blocking `check` (one flag per window, in order)."""
    search = locate_search(text, max_checks=max_checks)
    try:
        windows = next(search)
        while True:
            windows = search.send(check(windows))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def window_messages(messages: Sequence[Mapping[str, str]], window: Window) -> list[dict[str, str]]:
    """The conversation to check for a window of its last message: everything before it kept as context."""
    *before, last = messages
    return [*(dict(m) for m in before), {"role": last["role"], "content": window.text}]
