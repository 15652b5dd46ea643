"""`guard screen` in process against the fake vLLM: inputs, outputs, bad input, and a 100,000-row run
interrupted by SIGINT and resumed with every row answered exactly once."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from guard_client import AsyncGuardClient
from guard_client.batch import ResumableRun, RunManifest
from guard_client.testing import FakeVLLM
from guard_screen import screen_command
from tests.conftest import REPO
from tests.screen.conftest import InstantGuard, fake_client, fake_guard


def _screen(argv: list[str], fake: FakeVLLM | InstantGuard | None = None) -> tuple[int, str, str]:
    fake = fake or fake_guard()
    out, err = io.StringIO(), io.StringIO()

    def make(url: str | None, **kwargs: Any) -> AsyncGuardClient | InstantGuard:
        return fake if isinstance(fake, InstantGuard) else fake_client(fake, url or "http://fake-guard")

    code = screen_command([*argv, "--no-progress"], out, err, make_client=make)
    return code, out.getvalue(), err.getvalue()


def _jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_jsonl_rows_become_one_verdict_each_and_a_summary(tmp_path: Path) -> None:
    rows: list[Any] = [
        {"id": "a", "prompt": "UNSAFE question"},
        {"id": "b", "prompt": "question", "response": "CONTRO answer"},
        {"id": "c", "prompt": "hello", "response": None},
        '{"id": "d", "prompt": ',  # malformed: reported, the run goes on
        {"id": "e", "prompt": ""},  # empty text
        {"id": "a", "prompt": "again"},  # repeated id
        {"id": "f", "prompt": "GARBLE"},
    ]
    out = tmp_path / "out"
    code, stdout, stderr = _screen(
        [str(_jsonl(tmp_path / "in.jsonl", rows)), "--out", str(out), "--parquet", "--explain"]
    )
    assert code == 0, stderr
    assert "in.jsonl:4: malformed JSON" in stderr
    assert "in.jsonl:5: column 'prompt' must be a non-empty string" in stderr
    assert "in.jsonl:6: id 'a' repeats row 1" in stderr
    verdicts = _read(out / "verdicts.jsonl")
    assert [v["id"] for v in verdicts] == ["a", "b", "c", "f"]
    by_id = {v["id"]: v for v in verdicts}
    assert (by_id["a"]["safety"], by_id["a"]["flagged_strict"], by_id["a"]["row"]) == ("Unsafe", True, 1)
    assert (by_id["b"]["mode"], by_id["b"]["flagged_strict"], by_id["b"]["flagged_loose"]) == ("response", True, False)
    assert by_id["c"]["mode"] == "prompt"
    assert by_id["a"]["explanation"]["severity"]["label"] == "Unsafe"
    assert (by_id["f"]["safety"], by_id["f"]["error_type"], by_id["f"]["flagged_strict"]) == (
        None,
        "GuardParseError",
        False,
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["severity"] == {"Safe": 1, "Unsafe": 1, "Controversial": 1, "undecided": 1}
    assert summary["categories"] == {"Violent": 2}
    assert summary["flagged"]["strict"] == {"count": 2, "rate": 2 / 3}
    assert summary["flagged"]["loose"] == {"count": 1, "rate": 1 / 3}
    assert summary["errors"] == {"GuardParseError": 1}
    assert [p["row"] for p in summary["input"]["rejected_rows"]] == [4, 5, 6]
    assert summary["throughput"]["checked_this_run"] == 4
    assert "| Unsafe | 1 |" in (out / "summary.md").read_text()
    assert (out / "summary.png").read_bytes()[:4] == b"\x89PNG"
    import pyarrow.parquet as pq

    table = pq.read_table(out / "verdicts.parquet").to_pylist()
    assert [r["id"] for r in table] == ["a", "b", "c", "f"]
    assert "verdicts: " in stdout


def test_csv_and_parquet_with_named_columns(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    conversation = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "UNSAFE reply"}]
    csv_path = tmp_path / "in.csv"
    csv_path.write_text('key,chat\nk1,"' + json.dumps(conversation).replace('"', '""') + '"\nk2,not json\n')
    code, _, stderr = _screen(
        [str(csv_path), "--out", str(tmp_path / "c"), "--messages-column", "chat", "--id-column", "key"]
    )
    assert code == 0, stderr
    assert "in.csv:3: column 'chat' is not JSON messages" in stderr
    [record] = _read(tmp_path / "c" / "verdicts.jsonl")
    assert (record["id"], record["mode"], record["safety"], record["refusal"]) == ("k1", "response", "Unsafe", False)

    pq.write_table(
        pa.Table.from_pylist([{"body": "UNSAFE", "n": 1}, {"body": "fine", "n": 2}]), tmp_path / "in.parquet"
    )
    code, _, stderr = _screen(
        [str(tmp_path / "in.parquet"), "--out", str(tmp_path / "p"), "--text-column", "body", "--keep", "n"]
    )
    assert code == 0, stderr
    records = _read(tmp_path / "p" / "verdicts.jsonl")
    assert [(r["id"], r["n"], r["safety"]) for r in records] == [("1", 1, "Unsafe"), ("2", 2, "Safe")]


def test_bad_input_gets_a_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = _jsonl(tmp_path / "in.jsonl", [{"text": "x"}])
    code, _, err = _screen([str(good), "--out", str(tmp_path / "o"), "--prompt-column", "question"])
    assert (code, err.strip()) == (2, "error: no column 'question' (--prompt-column) in the input; it has: text")
    code, _, err = _screen([str(_jsonl(tmp_path / "none.jsonl", [{"body": "x"}])), "--out", str(tmp_path / "o")])
    assert code == 2 and "no column to check" in err and "it has: body" in err
    code, _, err = _screen([str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")])
    assert (code, err.strip()) == (2, f"error: no input file at {tmp_path / 'missing.jsonl'}")
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"text": "caf\xe9"}\n')
    code, _, err = _screen([str(latin), "--out", str(tmp_path / "o")])
    assert code == 2 and "is not UTF-8 text" in err
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    code, _, err = _screen([str(tmp_path / "bad.parquet"), "--out", str(tmp_path / "o")])
    assert code == 2 and "cannot read" in err and "as Parquet" in err
    code, _, err = _screen([str(_jsonl(tmp_path / "in.txt", [{"text": "x"}])), "--out", str(tmp_path / "o")])
    assert code == 2 and "--format" in err
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if pyarrow were not installed
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    code, _, err = _screen([str(tmp_path / "bad.parquet"), "--out", str(tmp_path / "o")])
    assert code == 2 and "pip install 'qwen3guard-serving[screen]'" in err


def test_an_output_directory_in_use_is_refused(tmp_path: Path) -> None:
    good = _jsonl(tmp_path / "in.jsonl", [{"text": "x"}])
    with ResumableRun(tmp_path / "o", RunManifest(model="m", root="r")):
        code, _, err = _screen([str(good), "--out", str(tmp_path / "o")])
    assert code == 1
    assert f"error: {tmp_path / 'o'} is in use by another run" in err
    code, _, err = _screen([str(good), "--out", str(tmp_path / "o")])  # released: the next run may start
    assert code == 0, err


def test_other_options_are_refused_and_errors_make_the_exit_status_1(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "in.jsonl", [{"text": "fine"}, {"text": "BROKEN"}])
    code, _, err = _screen([str(path), "--out", str(tmp_path / "o")])
    assert code == 1, err  # the HTTP 500 is logged and retried next run
    code, _, err = _screen([str(path), "--out", str(tmp_path / "o"), "--constrain"])
    assert code == 1 and "option constrain: False, not True" in err


@pytest.fixture
def ctrl_c() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt here as in a terminal, also when pytest runs as a background job of a
    non-interactive shell, which starts it with SIGINT ignored (then a raised SIGINT would do nothing)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _sigint_at(after: int) -> Callable[[int], None]:
    def on_check(n: int) -> None:
        if n == after:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C, delivered to this process mid-run

    return on_check


def test_sigint_stops_a_run_against_the_fake_vllm_and_the_rerun_finishes_it(tmp_path: Path, ctrl_c: None) -> None:
    path = _jsonl(tmp_path / "in.jsonl", [{"id": f"r{i}", "text": f"row {i}"} for i in range(2000)])
    argv = [str(path), "--out", str(tmp_path / "out"), "--concurrency", "16"]
    answered = 0

    def fail(body: dict[str, Any]) -> None:
        nonlocal answered
        answered += 1
        _sigint_at(500)(answered)

    code, _, err = _screen(argv, fake_guard(fail=fail))
    assert code == 130, err
    first = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    assert 400 <= len(first) <= 500 + 16  # those in flight when Ctrl-C came may still finish
    assert _screen(argv)[0] == 0
    ids = [json.loads(line)["id"] for line in (tmp_path / "out" / "verdicts.jsonl").read_text().splitlines()]
    assert ids == [f"r{i}" for i in range(2000)]
    assert len((tmp_path / "out" / "results.jsonl").read_text().splitlines()) == 2000


def test_100k_rows_interrupted_and_resumed_are_each_answered_exactly_once(tmp_path: Path, ctrl_c: None) -> None:
    n = 100_000
    path = tmp_path / "big.jsonl"
    path.write_text("".join(f'{{"id": "r{i}", "text": "row {i}"}}\n' for i in range(n)), encoding="utf-8")
    out = tmp_path / "out"
    argv = [str(path), "--out", str(out), "--concurrency", "64"]
    code, _, err = _screen(argv, InstantGuard(on_check=_sigint_at(30_000)))
    assert code == 130, err
    assert "rerun the same command to resume" in err
    first = (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
    assert 29_000 <= len(first) <= 30_000 + 64
    code, _, err = _screen(argv, InstantGuard())
    assert code == 0, err
    log = [json.loads(line)["id"] for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert (out / "results.jsonl").read_text(encoding="utf-8").splitlines()[: len(first)] == first  # append-only
    assert Counter(log).most_common(1)[0][1] == 1  # no row checked twice
    verdicts = [json.loads(line)["id"] for line in (out / "verdicts.jsonl").read_text(encoding="utf-8").splitlines()]
    assert verdicts == [f"r{i}" for i in range(n)]  # every row once, in input order
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"] == {"with_record": n, "pending": 0, "decided": n, "undecided": 0, "to_retry": 0}
    assert summary["throughput"]["already_done"] == len(first)


def test_the_guard_command_runs_screen_without_the_library_importing_it(tmp_path: Path) -> None:
    code = (
        "import sys, io, guard_client, guard_client.__main__ as cli\n"
        "assert 'guard_screen' not in sys.modules\n"
        "err = io.StringIO()\n"
        f"status = cli.main(['screen', {str(tmp_path / 'missing.jsonl')!r}, '--out', {str(tmp_path / 'o')!r}], "
        "io.StringIO(), err)\n"
        "print(status, 'guard_screen' in sys.modules, err.getvalue().strip())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    status, imported, message = done.stdout.strip().split(" ", 2)
    assert (status, imported) == ("2", "True")
    assert message.startswith("error:") and "missing.jsonl" in message
    listed = subprocess.run(
        [sys.executable, "-m", "guard_client", "--help"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert "screen" in listed and "moderate a whole" in listed
