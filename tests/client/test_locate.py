"""The locate search, against a scripted fake guard that flags exactly the texts holding a marker."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import pytest

from guard_client import Location, Window, check_bound, locate, locate_search, segment, window_messages

MARKER = "ZQX-forbidden"
WORDS = [
    "the",
    "a",
    "guard",
    "model",
    "reads",
    "every",
    "line",
    "of",
    "text",
    "and",
    "answers",
    "with",
    "one",
    "label",
    "per",
    "check",
]


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))).capitalize() + rng.choice(".!?")


def paragraphs(rng: random.Random, n: int) -> list[list[str]]:
    return [[sentence(rng) for _ in range(rng.randint(1, 6))] for _ in range(n)]


def join(paras: list[list[str]]) -> str:
    return "\n\n".join(" ".join(p) for p in paras)


class Guard:
    """Flags a window when `rule` says so; counts the windows it was asked about."""

    def __init__(self, rule: Callable[[str], bool | None]) -> None:
        self.rule = rule
        self.rounds: list[list[Window]] = []

    def __call__(self, windows: list[Window]) -> Sequence[bool | None]:
        self.rounds.append(windows)
        return [self.rule(w.text) for w in windows]


def contains(*markers: str) -> Callable[[str], bool]:
    return lambda text: all(m in text for m in markers)


@pytest.mark.parametrize("n", range(1, 101))
def test_finds_the_marked_sentence_within_the_bound(n: int) -> None:
    rng = random.Random(n)
    paras = paragraphs(rng, n)
    p = rng.randrange(n)
    s = rng.randrange(len(paras[p]))
    paras[p][s] = paras[p][s][:-1] + f" {MARKER} here."
    text = join(paras)
    guard = Guard(contains(MARKER))

    found = locate(text, guard)

    start = text.index(paras[p][s])
    assert [(x.start, x.end) for x in found.spans] == [(start, start + len(paras[p][s]))]
    assert found.spans[0].excerpt == paras[p][s] == text[found.spans[0].start : found.spans[0].end]
    assert found.complete and not found.flagged_as_whole and not found.spans[0].as_whole
    bound = check_bound(text)
    assert found.checks == sum(len(r) for r in guard.rounds) <= bound == found.max_checks
    longest = max(len(x) for x in paras)
    assert bound == 2 * _ceil_log2(n) + 2 * _ceil_log2(longest)
    assert (found.paragraphs, found.sentences) == (n, sum(len(x) for x in paras))
    # Concurrency: each round asks for both halves of the one open window at once.
    assert all(len(r) == 2 for r in guard.rounds)


def _ceil_log2(n: int) -> int:
    return (n - 1).bit_length()


@pytest.mark.parametrize("n", [2, 3, 7, 50, 100])
def test_flagged_as_whole_when_only_the_combination_is_flagged(n: int) -> None:
    rng = random.Random(1000 + n)
    paras = paragraphs(rng, n)
    paras[0][0] = "FIRST " + paras[0][0]
    paras[-1][-1] = paras[-1][-1] + " SECOND"
    text = join(paras)
    found = locate(text, Guard(contains("FIRST", "SECOND")))
    assert found.flagged_as_whole
    assert [(x.start, x.end, x.as_whole) for x in found.spans] == [(0, len(text), True)]
    assert found.checks == 2  # both halves pass: nothing smaller to report


def test_a_combination_inside_the_text_is_narrowed_to_the_window_holding_both() -> None:
    rng = random.Random(7)
    paras = paragraphs(rng, 16)
    paras[9][0] = "FIRST " + paras[9][0]
    paras[9][-1] = paras[9][-1] + " SECOND"
    paras[8][0] += " SECOND"  # alone, in another paragraph: flags nothing
    text = join(paras)
    found = locate(text, Guard(contains("FIRST", "SECOND")))
    assert not found.flagged_as_whole
    (span,) = found.spans
    assert "FIRST" in span.excerpt and "SECOND" in span.excerpt
    # The smallest window along the boundaries that holds both: within paragraph 9.
    assert (
        text.index(" ".join(paras[9]))
        <= span.start
        < span.end
        <= text.index(" ".join(paras[9])) + len(" ".join(paras[9]))
    )
    assert span.as_whole == (len(paras[9]) > 1)


def test_two_separate_markers_give_two_spans_when_the_budget_allows() -> None:
    rng = random.Random(3)
    paras = paragraphs(rng, 20)
    paras[2][0] = f"{MARKER} " + paras[2][0]
    paras[17][-1] = paras[17][-1][:-1] + f" {MARKER}."
    text = join(paras)
    found = locate(text, Guard(contains(MARKER)), max_checks=100)
    assert [x.excerpt for x in found.spans] == [paras[2][0], paras[17][-1]]
    assert found.complete
    # Under the default bound, spans share the budget: what it cannot split is reported as it stands.
    tight = locate(text, Guard(contains(MARKER)))
    assert not tight.complete and tight.checks <= check_bound(text)
    assert sum(x.excerpt.count(MARKER) for x in tight.spans) == 2


@pytest.mark.parametrize("max_checks", [0, 1, 2, 5])
def test_the_budget_is_enforced(max_checks: int) -> None:
    rng = random.Random(11)
    paras = paragraphs(rng, 100)
    paras[63][0] += f" {MARKER}"
    text = join(paras)
    guard = Guard(contains(MARKER))
    found = locate(text, guard, max_checks=max_checks)
    assert found.checks == sum(len(r) for r in guard.rounds) <= max_checks
    assert not found.complete and found.max_checks == max_checks
    assert len(found.spans) == 1 and MARKER in found.spans[0].excerpt


def test_an_undecided_half_stops_short_and_says_so() -> None:
    text = join([[f"Beta {MARKER}."], ["Other."], ["Alpha one.", "Alpha two."], ["Delta."]])
    found = locate(text, Guard(lambda t: None if "Alpha" in t else MARKER in t))
    assert [x.excerpt for x in found.spans] == [f"Beta {MARKER}."]
    assert not found.complete  # the undecided half might hold a span too
    # Nothing flagged and a half undecided: the window stands, and is not called "flagged as a whole".
    stuck = locate(text, Guard(lambda t: None if "Alpha" in t else False))
    assert [(x.start, x.end, x.as_whole) for x in stuck.spans] == [(0, len(text), False)]
    assert not stuck.complete and not stuck.flagged_as_whole


def test_offsets_index_the_original_text() -> None:
    text = (
        f"  Intro line.\r\n\r\n\tSecond para; still.  Then {MARKER}!\u201d  Next…\n\n\n  终了。{MARKER}在这里。最后。  "
    )
    found = locate(text, Guard(contains(MARKER)), max_checks=50)
    assert found.complete
    for span in found.spans:
        assert text[span.start : span.end] == span.excerpt
        assert MARKER in span.excerpt and span.excerpt == span.excerpt.strip()
    assert [x.excerpt for x in found.spans] == [f"Then {MARKER}!\u201d", f"{MARKER}在这里。"]


def test_segments_follow_paragraphs_then_sentences() -> None:
    text = "One. Two!\n\nThree? Four\nFive.\n   \n\nSix"
    got = [(text[s.start : s.end], s.paragraph) for s in segment(text)]
    assert got == [("One.", 0), ("Two!", 0), ("Three?", 1), ("Four", 1), ("Five.", 1), ("Six", 2)]
    assert [(s.start, s.end) for s in segment("")] == [(0, 0)]


def test_a_single_sentence_needs_no_check() -> None:
    guard = Guard(contains(MARKER))
    found = locate(f"Only {MARKER}.", guard)
    assert guard.rounds == [] and found.checks == 0 and found.max_checks == 0
    assert found.spans[0].excerpt == f"Only {MARKER}." and not found.flagged_as_whole


def test_the_search_is_a_pure_generator() -> None:
    search = locate_search("A. B.\n\nC. D.")
    first = next(search)
    assert [w.text for w in first] == ["A. B.", "C. D."]
    second = search.send([False, True])
    assert [w.text for w in second] == ["C.", "D."]
    with pytest.raises(StopIteration) as stop:
        search.send([True, False])
    location = stop.value.value
    assert isinstance(location, Location) and [s.excerpt for s in location.spans] == ["C."]
    with pytest.raises(ValueError, match="expected 2 flags"):
        s2 = locate_search("A.\n\nB.")
        next(s2)
        s2.send([True])
    with pytest.raises(ValueError, match="max_checks"):
        next(locate_search("A.\n\nB.", max_checks=-1))


def test_window_messages_keep_the_conversation_before_as_context() -> None:
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "long answer"}]
    assert window_messages(messages, Window(5, 11, "answer")) == [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "answer"},
    ]
