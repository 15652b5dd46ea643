"""Fuzz the client API (`prepare_input`, `parse_verdict`, `check`/`check_many` through the fake vLLM's
transport) and the CLI (`guard check`, `guard parse`, `guard screen` with odd files, in process against
the fake guard over HTTP) with hypothesis: any unicode, control characters, huge strings, odd types.

Silent Safe: a Safe verdict (or unflagged one) that the guard's answer did not say ("Safety: Safe"
absent from the fake's reply, or 'UNSAFE' in the text checked by the marked fake guard)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from guard_client import (
    FailurePolicy,
    GuardClient,
    GuardMode,
    GuardParseError,
    Safety,
    Verdict,
    parse_verdict,
    prepare_input,
)
from guard_client.__main__ import main as guard_main
from guard_client.testing import FakeVLLM
from reliability.classify import classify_exception, classify_verdict
from reliability.report import Outcome, Report, Tally

DEADLINE = 30.0

# Text as hostile as hypothesis makes it: every code point class, control characters, the guard's own
# markers, template tokens, and now and then a huge string.
_specials = st.sampled_from(
    ["Safety: Safe", "Safety: Unsafe", "<|im_start|>", "<|im_end|>", "\x00", "\u202e", "\ud7ff", "\r\n", "UNSAFE"]
)
_text = st.one_of(
    st.text(max_size=200),
    st.text(st.characters(codec="utf-8"), max_size=50),
    st.lists(st.one_of(st.text(max_size=20), _specials), max_size=8).map("".join),
    st.integers(1_000, 200_000).map(lambda n: "x" * n),
)
_scalars = st.none() | st.booleans() | st.integers() | st.floats() | _text | st.binary(max_size=20)
_anything = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4), max_leaves=10
)
_role = st.sampled_from(["user", "assistant", "system", "tool", "", "User"]) | _text
_message = st.fixed_dictionaries({"role": _role, "content": _text | _anything}) | _anything
_messages = st.lists(_message, max_size=5) | _anything | _text
_good_messages = st.lists(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "content": _text}), min_size=1, max_size=4
)
_reply = st.one_of(
    _text,
    st.builds(
        lambda s, c, r: f"Safety: {s}\nCategories: {c}{r}",
        st.sampled_from(["Safe", "Unsafe", "Controversial", "safe", "", "Maybe"]),
        st.sampled_from(["None", "Violent", "Violent, PII", "Nonsense", ""]),
        st.sampled_from(["", "\nRefusal: Yes", "\nRefusal: maybe"]),
    ),
)


def fuzz_settings(examples: int, **more: Any) -> settings:
    """The suite's hypothesis settings (fuzz_gateway's too): `examples` inputs, generated only (nothing shrunk,
    replayed or stored), no deadline; `more` adds settings."""
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
        **more,
    )


_SAID_SAFE = re.compile(r"^\s*safety\s*:\s*safe\b", re.IGNORECASE | re.MULTILINE)


def _said_safe(reply: str) -> bool:
    """Whether the guard's answer says Safe at all (in any case or spacing the parser may accept)."""
    return bool(_SAID_SAFE.search(reply))


def _timed(tally: Tally, detail: str, call: Callable[[], Outcome]) -> Outcome | None:
    started = time.monotonic()
    try:
        outcome = call()
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        outcome = classify_exception(exc)
        detail = f"{detail}: {type(exc).__name__}: {exc}"
    if time.monotonic() - started > DEADLINE:
        outcome = Outcome.HANG
    tally.add(outcome, detail)
    return outcome


def fuzz_api(report: Report, examples: int) -> None:
    tally = report.tally("client prepare_input")

    @fuzz_settings(examples)
    @given(messages=_messages)
    def prepare(messages: Any) -> None:
        def call() -> Outcome:
            prepare_input(messages)
            return Outcome.VERDICT  # accepted: a rendered GuardInput

        _timed(tally, repr(messages)[:100], call)

    prepare()
    parse_tally = report.tally("client parse_verdict")

    @fuzz_settings(examples)
    @given(text=_reply, mode=st.sampled_from(list(GuardMode)))
    def parse(text: str, mode: GuardMode) -> None:
        def call() -> Outcome:
            try:
                verdict = parse_verdict(text, mode)
            except GuardParseError:
                return Outcome.CLEAR_ERROR
            if verdict.safety is Safety.SAFE and not _said_safe(text):
                parse_tally.silent_safe += 1
                parse_tally.note(f"silent Safe: parse_verdict({text!r})")
            return Outcome.VERDICT

        _timed(parse_tally, repr(text)[:100], call)

    parse()
    check_tally = report.tally("client check / check_many")

    @fuzz_settings(examples)
    @given(
        messages=st.one_of(_good_messages, _messages),
        batch=st.lists(_good_messages | _text, max_size=4),
        reply=_reply,
        on_error=st.sampled_from(list(FailurePolicy)),
        failure=st.sampled_from([None, 500, "drop", "timeout"]),
    )
    def check(messages: Any, batch: list[Any], reply: str, on_error: FailurePolicy, failure: Any) -> None:
        def fail(body: dict[str, Any]) -> httpx.Response | Exception | None:
            if failure == 500:
                return httpx.Response(500, json={"error": {"message": "engine died"}})
            if failure == "drop":
                return httpx.RemoteProtocolError("peer closed connection")
            if failure == "timeout":
                return httpx.ReadTimeout("timed out")
            return None

        fake = FakeVLLM(reply=lambda body: reply, fail=fail)
        if failure is not None:
            check_tally.faults += 1

        def judge(verdict: Verdict) -> Outcome:
            if verdict.safety is Safety.SAFE and (failure is not None or not _said_safe(reply)):
                check_tally.silent_safe += 1
                check_tally.note(f"silent Safe: reply {reply!r}, failure {failure}")
            if not verdict.decided and not verdict.flagged() and verdict.policy is not FailurePolicy.FAIL_OPEN:
                check_tally.silent_safe += 1
                check_tally.note(f"undecided and unflagged under {on_error}")
            return classify_verdict(verdict)

        with GuardClient(
            "http://fake", transport=httpx.MockTransport(fake), on_error=on_error, max_retries=0
        ) as client:
            _timed(check_tally, f"check {repr(messages)[:80]}", lambda: judge(client.check(messages)))

            def many() -> Outcome:
                verdicts = client.check_many(batch, concurrency=2)
                if len(verdicts) != len(batch):
                    check_tally.lost += abs(len(batch) - len(verdicts))
                outcomes = [judge(v) for v in verdicts]
                return max(outcomes, key=list(Outcome).index) if outcomes else Outcome.VERDICT

            _timed(check_tally, f"check_many {repr(batch)[:80]}", many)

    check()


def _run_cli(argv: list[str], stdin: str = "") -> tuple[int | None, str, str, BaseException | None]:
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stderr(err):
            code: int | None = guard_main(argv, out, err)
        return code, out.getvalue(), err.getvalue(), None
    except SystemExit as exc:
        return (exc.code if isinstance(exc.code, int) else 2), out.getvalue(), err.getvalue(), None
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        return None, out.getvalue(), err.getvalue(), exc
    finally:
        sys.stdin = saved


def _cli_outcome(
    tally: Tally, argv: list[str], code: int | None, err: str, exc: BaseException | None, out: str = ""
) -> Outcome:
    if exc is not None or "Traceback" in err:
        return Outcome.CRASH
    if code == 0:
        return Outcome.VERDICT
    if code == 2 and err.strip():
        return Outcome.CLEAR_ERROR
    if code == 1 and (err.strip() or '"error"' in out):  # documented: some check failed, said where
        return Outcome.POLICY
    tally.note(f"exit {code} with stderr {err[:100]!r}: {argv[:3]}")
    return Outcome.CRASH


def _cli_silent_safe(tally: Tally, texts: list[str], out: str) -> None:
    """The marked fake guard says Unsafe for 'UNSAFE': such a text answered Safe is a silent Safe."""
    for line, text in zip(out.splitlines(), texts, strict=False):
        record = json.loads(line)
        if "UNSAFE" in text and record.get("safety") == "Safe":
            tally.silent_safe += 1
            tally.note(f"silent Safe: {text[:80]!r}")


def fuzz_cli(report: Report, guard_url: str, examples: int, screen_examples: int) -> None:
    tally = report.tally("CLI guard check / parse")
    url = ["--url", guard_url, "--timeout", "10"]

    @fuzz_settings(examples)
    @given(
        text=_text,
        response=st.none() | _text,
        lines=st.lists(_text | _anything.map(lambda v: json.dumps(v, default=repr)), max_size=5),
    )
    def check(text: str, response: str | None, lines: list[str]) -> None:
        text = text.replace("\x00", "")  # argv cannot carry NUL: the OS refuses it before the CLI runs
        argv = ["check", *url, *(["--response", text, response.replace("\x00", "")] if response else [text])]
        started = time.monotonic()
        code, out, err, exc = _run_cli(argv)
        outcome = _cli_outcome(tally, argv, code, err, exc)
        tally.add(Outcome.HANG if time.monotonic() - started > DEADLINE else outcome, f"{argv[:4]} {exc!r}")
        if code == 0 and not response:
            _cli_silent_safe(tally, [text], out)
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, errors="surrogatepass") as batch:
            batch.write("\n".join(lines))
        try:
            with open(batch.name, encoding="utf-8") as written:  # as the CLI reads it
                expected = sum(bool(line.strip()) for line in written)
        except UnicodeDecodeError:
            expected = 0
        argv = ["check", *url, "--jsonl", batch.name, "--on-error", "fail_closed"]
        code, out, err, exc = _run_cli(argv)
        tally.add(_cli_outcome(tally, argv, code, err, exc, out), f"--jsonl {lines!r} {exc!r}")
        answered = len(out.splitlines())
        if code in (0, 1) and answered != expected:
            tally.lost += abs(expected - answered)
            tally.note(f"--jsonl: {expected} lines in, {answered} out: {lines!r}")
        Path(batch.name).unlink()
        code, out, err, exc = _run_cli(["parse", "--mode", "prompt"], stdin=text)
        tally.add(_cli_outcome(tally, ["parse"], code, err, exc), f"parse {text[:80]!r} {exc!r}")
        if code == 0 and json.loads(out).get("safety") == "Safe" and not _said_safe(text):
            tally.silent_safe += 1
            tally.note(f"silent Safe: guard parse {text[:80]!r}")

    check()
    screen = report.tally("CLI guard screen")

    rows = st.one_of(
        st.fixed_dictionaries({"id": _scalars, "text": _text | _anything}),
        st.fixed_dictionaries({"prompt": _text, "response": st.none() | _text}),
        st.fixed_dictionaries({"messages": _messages}),
        _anything,
    )
    files = st.one_of(
        st.tuples(st.just(".jsonl"), st.lists(rows.map(lambda r: json.dumps(r, default=str)) | _text, max_size=6)),
        st.tuples(st.just(".csv"), st.lists(_text, max_size=6)),
        st.tuples(st.sampled_from([".parquet", ".jsonl", ".csv", ".txt"]), st.lists(_text, max_size=2)),
    )

    @fuzz_settings(screen_examples)
    @given(file=files)
    def run_screen(file: tuple[str, list[str]]) -> None:
        suffix, lines = file
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"input{suffix}"
            path.write_text("\n".join(lines), errors="surrogatepass")
            argv = ["screen", str(path), "--out", str(Path(tmp) / "out"), "--url", guard_url, "--no-progress"]
            started = time.monotonic()
            code, _out, err, exc = _run_cli(argv)
            outcome = _cli_outcome(screen, argv, code, err, exc)
            screen.add(Outcome.HANG if time.monotonic() - started > DEADLINE else outcome, f"{lines!r} {exc!r}")
            verdicts = Path(tmp) / "out" / "verdicts.jsonl"
            if code == 0 and verdicts.exists():
                for line in verdicts.read_text().splitlines():
                    record = json.loads(line)
                    text = json.dumps(record.get("messages") or record.get("text") or "")
                    if "UNSAFE" in text and record.get("safety") == "Safe":
                        screen.silent_safe += 1

    run_screen()
