"""Fault scenarios: the guard killed, frozen or dropping connections in the middle of each interface's
work, the main LLM killed mid-stream, slow and vanishing clients, a full output directory. Each ends
in its documented outcome; nothing may be lost or read as Safe (every checked text carries the marked
fake guard's 'UNSAFE' marker, so Safe is never the guard's decision), no process may be left behind,
and the gateway must serve again by itself once the guard is back."""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx

from guard_client import AsyncGuardClient, FailurePolicy, Safety
from reliability.classify import allowed_http, classify_http
from reliability.report import Outcome, Report, Scenario
from reliability.services import REPO, InProcessGateway, Service, descendants, fake_guard, fake_upstream, orphans

UNSAFE = "UNSAFE request number {}"
CHAT = "/v1/chat/completions"


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


def _serves(gateway_url: str) -> bool:
    """The gateway answers a moderation with a verdict (not 503) and reports ready."""
    ok = httpx.get(gateway_url + "/ready", timeout=5).status_code == 200
    answer = httpx.post(gateway_url + "/v1/moderations", json={"input": f"UNSAFE probe {time.time()}"}, timeout=10)
    return ok and answer.status_code == 200 and answer.json()["results"][0]["flagged"] is True


def _later(seconds: float, action: Callable[[], Any]) -> threading.Thread:
    def later() -> None:
        time.sleep(seconds)
        action()

    thread = threading.Thread(target=later, daemon=True)
    thread.start()
    return thread


class Run:
    """The scenarios of one suite run: a work directory and the report they add to."""

    def __init__(self, report: Report, workdir: Path, quick: bool) -> None:
        self.report, self.workdir, self.quick = report, workdir, quick

    @contextmanager
    def scenario(self, name: str, interface: str, fault: str, expected: str) -> Iterator[Scenario]:
        before = descendants()
        scenario = Scenario(name, interface, fault, expected)
        started = time.monotonic()
        self.report.tally(interface).faults += 1
        try:
            yield scenario
        except Exception as exc:
            scenario.ok = False
            scenario.observed += f" [scenario error: {type(exc).__name__}: {exc}]"
        finally:
            time.sleep(0.2)
            left = orphans(before)
            scenario.orphans = len(left)
            for pid in left:  # never leave them running, but count them
                with suppress(Exception):
                    import psutil

                    psutil.Process(pid).kill()
            scenario.ok = scenario.ok and scenario.orphans == 0 and scenario.lost == 0 and scenario.silent_safe == 0
            scenario.seconds = round(time.monotonic() - started, 1)
            self.report.scenarios.append(scenario)

    def services(self, *services: Service | InProcessGateway) -> _Services:
        return _Services(list(services))

    def record_http(self, interface: str, path: str, response: httpx.Response, scenario: Scenario) -> Outcome:
        tally = self.report.tally(interface)
        outcome, problem = classify_http(response.status_code, response.text, response.headers)
        tally.add(outcome, f"{path} -> {response.status_code} {response.text[:200]}")
        if problem:
            tally.schema_violations += 1
            tally.note(problem)
        if allowed_http(path, response.status_code, response.text) and '"fail_open"' not in response.text:
            scenario.silent_safe += 1
        return outcome


class _Services:
    def __init__(self, services: list[Service | InProcessGateway]) -> None:
        self.services = services

    def __enter__(self) -> _Services:
        return self

    def __exit__(self, *exc: object) -> None:
        for service in reversed(self.services):
            service.stop()


@contextmanager
def _suppress() -> Iterator[None]:
    with suppress(Exception):
        yield


# -- the client API --------------------------------------------------------------------------------------


def guard_killed_during_check_many(run: Run) -> None:
    items = 24 if run.quick else 120
    with run.scenario(
        "guard killed during check_many",
        "client check / check_many",
        "SIGKILL of the guard mid-batch, restarted after it",
        "one verdict per item, in order: Unsafe or undecided (fail_closed, flagged); rerun of the undecided decides",
    ) as s:
        guard = fake_guard(run.workdir, delay=0.2, slots=4).start()  # 20 checks/s: the kill lands mid-batch
        with run.services(guard):
            texts = [UNSAFE.format(i) for i in range(items)]

            async def batch(batch_texts: list[str]) -> list[Any]:
                async with AsyncGuardClient(
                    guard.url, on_error=FailurePolicy.FAIL_CLOSED, max_retries=0, timeout=5
                ) as client:
                    return await client.check_many(batch_texts, concurrency=4)

            killer = _later(0.4, guard.kill)
            verdicts = asyncio.run(batch(texts))
            killer.join()
            s.items = items
            s.lost = items - len(verdicts)
            s.silent_safe = sum(v.safety is Safety.SAFE or not v.flagged() for v in verdicts)
            undecided = [t for t, v in zip(texts, verdicts, strict=False) if not v.decided]
            tally = run.report.tally("client check / check_many")
            for verdict in verdicts:
                tally.add(Outcome.VERDICT if verdict.decided else Outcome.POLICY)
            guard.start()
            again = asyncio.run(batch(undecided))
            s.recovered = all(v.decided and v.safety is Safety.UNSAFE for v in again)
            s.observed = f"{items - len(undecided)} Unsafe, {len(undecided)} undecided (flagged); rerun: all decided"
            s.ok = s.recovered and 0 < len(undecided) < items


# -- guard screen ----------------------------------------------------------------------------------------


def _screen(guard_url: str, rows: Path, out: Path, fsize: int | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "guard_client", "screen", str(rows), "--out", str(out), "--url", guard_url]
    argv += ["--no-progress", "--concurrency", "4", "--timeout", "5"]

    def limit() -> None:  # a full disk: writes past `fsize` bytes fail (EFBIG) instead of killing the process
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize or 0, fsize or 0))

    return subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, timeout=300, preexec_fn=limit if fsize else None
    )


def _screened(out: Path, rows: int, scenario: Scenario) -> bool:
    """Every row answered once, none Safe."""
    verdicts = out / "verdicts.jsonl"
    if not verdicts.exists():
        scenario.lost = rows
        return False
    records = [json.loads(line) for line in verdicts.read_text().splitlines() if line.strip()]
    ids = {str(r.get("id")) for r in records}
    scenario.lost = rows - len(ids)
    scenario.silent_safe = sum(r.get("safety") == "Safe" or r.get("flagged_strict") is False for r in records)
    return len(records) == rows == len(ids)


def _rows(run: Run, name: str, count: int) -> Path:
    path = run.workdir / f"{name}.jsonl"
    path.write_text("".join(json.dumps({"id": f"r{i}", "text": UNSAFE.format(i)}) + "\n" for i in range(count)))
    return path


def guard_killed_during_screen(run: Run) -> None:
    count = 40 if run.quick else 200
    with run.scenario(
        "guard killed during guard screen",
        "CLI guard screen",
        "SIGKILL of the guard mid-run, restarted; the same command rerun",
        "exit 1 with the unanswered rows kept for retry; the rerun answers exactly the rest: exit 0",
    ) as s:
        guard = fake_guard(run.workdir, delay=0.05, slots=4).start()
        with run.services(guard):
            rows, out = _rows(run, "screen-kill", count), run.workdir / "screen-kill"
            killer = _later(1.0, guard.kill)
            first = _screen(guard.url, rows, out)
            killer.join()
            guard.start()
            second = _screen(guard.url, rows, out)
            s.items = count
            whole = _screened(out, count, s)
            tally = run.report.tally("CLI guard screen")
            for result in (first, second):
                crashed = "Traceback" in result.stderr
                tally.add(Outcome.CRASH if crashed else Outcome.VERDICT if result.returncode == 0 else Outcome.POLICY)
            s.recovered = second.returncode == 0 and whole
            s.observed = f"first run exit {first.returncode}, rerun exit {second.returncode}, {count - s.lost} rows"
            s.ok = s.recovered and first.returncode in (0, 1) and "Traceback" not in first.stderr + second.stderr


def screen_output_full(run: Run) -> None:
    count = 40 if run.quick else 200
    with run.scenario(
        "guard screen output directory full",
        "CLI guard screen",
        "RLIMIT_FSIZE of 6 KB on the run (writes fail with EFBIG, as on a full disk), then lifted",
        "a clear error and non-zero exit, no traceback; the rerun resumes and answers every row once",
    ) as s:
        guard = fake_guard(run.workdir).start()
        with run.services(guard):
            rows, out = _rows(run, "screen-full", count), run.workdir / "screen-full"
            first = _screen(guard.url, rows, out, fsize=6000)
            second = _screen(guard.url, rows, out)
            s.items = count
            whole = _screened(out, count, s)
            crashed = "Traceback" in first.stderr
            run.report.tally("CLI guard screen").add(
                Outcome.CRASH if crashed else Outcome.CLEAR_ERROR, f"full disk: {first.stderr[-300:]}"
            )
            s.recovered = second.returncode == 0 and whole
            tail = first.stderr.strip().splitlines()[-1:] or [""]
            s.observed = f"exit {first.returncode}: {tail[0][:120]!r}; rerun exit {second.returncode}"
            s.ok = s.recovered and first.returncode != 0 and not crashed


# -- the gateway -----------------------------------------------------------------------------------------


def guard_killed_during_moderations(run: Run) -> None:
    batches = 12 if run.quick else 60
    with run.scenario(
        "guard killed during moderation batches",
        "gateway POST /v1/moderations",
        "SIGKILL of the guard with batches in flight, restarted after them",
        "each batch: 200 all flagged, or 503 guard_unavailable + Retry-After; serving again once the guard is back",
    ) as s:
        guard = fake_guard(run.workdir, delay=0.05, slots=4).start()
        gateway = InProcessGateway(run.workdir, guard.url, **{"cache.enabled": "false"}).start()
        with run.services(guard, gateway):

            def one(i: int) -> None:
                body = {"input": [UNSAFE.format(f"{i}.{j}") for j in range(4)]}
                try:
                    response = httpx.post(gateway.url + "/v1/moderations", json=body, timeout=30)
                except httpx.TimeoutException:
                    run.report.tally("gateway POST /v1/moderations").add(Outcome.HANG, "moderation batch")
                    return
                run.record_http("gateway POST /v1/moderations", "/v1/moderations", response, s)
                if response.status_code == 200 and len(response.json()["results"]) != 4:
                    s.lost += 4

            killer = _later(0.5, guard.kill)
            with ThreadPoolExecutor(6) as pool:
                list(pool.map(one, range(batches)))
            killer.join()
            s.items = batches * 4
            guard.start()
            s.recovered = _wait(lambda: _serves(gateway.url), 30)
            s.observed = "200 flagged or 503 guard_unavailable; ready again without a gateway restart"
            s.ok = s.recovered


def guard_frozen(run: Run) -> None:
    with run.scenario(
        "guard frozen (SIGSTOP) past every timeout",
        "gateway POST /v1/moderations",
        "SIGSTOP of the guard for longer than guard.timeout (1.5 s), then SIGCONT",
        "503 guard_unavailable within the timeout (+ margin), /ready 503; client: undecided GuardTimeoutError",
    ) as s:
        guard = fake_guard(run.workdir).start()
        gateway = InProcessGateway(run.workdir, guard.url, **{"guard.timeout": "1.5", "cache.enabled": "false"})
        gateway.start()
        with run.services(guard, gateway):
            guard.freeze()
            try:
                started = time.monotonic()
                answers = []
                for i in range(3):
                    answers.append(
                        httpx.post(gateway.url + "/v1/moderations", json={"input": UNSAFE.format(i)}, timeout=30)
                    )
                    run.record_http("gateway POST /v1/moderations", "/v1/moderations", answers[-1], s)
                took = (time.monotonic() - started) / 3
                ready = httpx.get(gateway.url + "/ready", timeout=30).status_code

                async def client_check() -> Any:
                    async with AsyncGuardClient(guard.url, timeout=1.5, max_retries=0, on_error="fail_closed") as c:
                        return await c.check_many([UNSAFE.format("c")])

                verdict = asyncio.run(client_check())[0]
            finally:
                guard.thaw()
            s.items = 4
            s.silent_safe += int(not verdict.flagged())
            run.report.tally("client check / check_many").add(
                Outcome.POLICY if not verdict.decided else Outcome.VERDICT
            )
            s.recovered = _wait(lambda: _serves(gateway.url), 30)
            statuses = [a.status_code for a in answers]
            s.observed = f"{statuses} in {took:.1f} s each, /ready {ready}, client {verdict.error_type}"
            s.ok = s.recovered and statuses == [503] * 3 and took < 1.5 + 2.0 and ready == 503
            if took > 1.5 + 2.0:
                run.report.tally("gateway POST /v1/moderations").add(Outcome.HANG, f"answer after {took:.1f} s")


def guard_garbled(run: Run) -> None:
    with run.scenario(
        "guard answers 500 and unreadable output",
        "gateway POST /v1/guard/checks",
        "the guard's HTTP 500 ('BROKEN') and an answer without a Safety line ('GARBLE')",
        "fail_closed: 503 guard_unavailable; fail_open: 200 with policy fail_open, never Safe",
    ) as s:
        guard = fake_guard(run.workdir).start()
        closed = InProcessGateway(run.workdir, guard.url, **{"cache.enabled": "false"}).start()
        opened = InProcessGateway(
            run.workdir, guard.url, **{"cache.enabled": "false", "policy.on_guard_failure": "fail_open"}
        ).start()
        with run.services(guard, closed, opened):
            results = []
            for gateway in (closed, opened):
                for marker in ("BROKEN", "GARBLE"):
                    body = {"checks": [{"messages": [{"role": "user", "content": f"{marker} text"}]}]}
                    response = httpx.post(gateway.url + "/v1/guard/checks", json=body, timeout=30)
                    run.record_http("gateway POST /v1/guard/checks", "/v1/guard/checks", response, s)
                    results.append(response)
                    if response.status_code == 200 and response.json()["results"][0]["safety"] is not None:
                        s.silent_safe += 1
            s.items = len(results)
            statuses = [r.status_code for r in results]
            s.recovered = True
            s.observed = f"statuses {statuses}"
            s.ok = statuses == [503, 503, 200, 200] and all('"fail_open"' in r.text for r in results[2:])


def _stream(url: str, text: str, read: Callable[[str], None] | None = None, timeout: float = 30) -> list[str]:
    """The SSE data lines of one guarded chat stream."""
    body = {"model": "main-llm", "stream": True, "messages": [{"role": "user", "content": text}]}
    lines = []
    with httpx.stream("POST", url + CHAT, json=body, timeout=timeout) as response:
        if response.status_code != 200:
            return [f"status {response.status_code} {response.read().decode()[:200]}"]
        for line in response.iter_lines():
            if line.startswith("data: "):
                lines.append(line[6:])
                if read is not None:
                    read(line[6:])
    return lines


def _released(lines: list[str]) -> str:
    text = ""
    for line in lines:
        if line.startswith("{"):
            for choice in json.loads(line).get("choices") or []:
                text += (choice.get("delta") or {}).get("content") or ""
    return text


def _checked_answers(record: Path) -> list[str]:
    answers = []
    for line in record.read_text().splitlines():
        entry = json.loads(line)
        if entry["path"] in ("/v1/chat/completions",):
            messages = json.loads(entry["body"]).get("messages", [])
            if messages and messages[-1].get("role") == "assistant":
                answers.append(str(messages[-1].get("content")))
    return answers


@contextmanager
def _chat_gateway(
    run: Run, *, words: int, token_interval: float, record: Path | None = None, settings: dict[str, str] | None = None
) -> Iterator[tuple[Service, Service, InProcessGateway]]:
    """The fake guard (recording its checks to `record`), the fake main LLM streaming `words` words one per
    `token_interval` s, and the gateway in front of both with `settings`: started, and stopped on leaving."""
    guard = fake_guard(run.workdir, record=record).start()
    upstream = fake_upstream(run.workdir, words=words, token_interval=token_interval).start()
    gateway = InProcessGateway(run.workdir, guard.url, upstream.url + "/v1", **(settings or {})).start()
    with run.services(guard, upstream, gateway):
        yield guard, upstream, gateway


def _kill_at_first_release(service: Service) -> Callable[[str], None]:
    """A stream reader that kills `service` once the stream releases its first answer text (from a thread, so
    the stream reads on)."""
    killed = threading.Event()

    def on_line(line: str) -> None:
        if not killed.is_set() and _released([line]):
            killed.set()
            threading.Thread(target=service.kill, daemon=True).start()

    return on_line


def _ended_in_error(lines: list[str]) -> bool:
    """The stream ended as a failed one must: an error event, then [DONE]."""
    return bool(lines) and lines[-1] == "[DONE]" and any('"error"' in line for line in lines)


def guard_killed_during_chat_stream(run: Run) -> None:
    record = run.workdir / "chat-guard.jsonl"
    settings = {"chat.window_chars": "64", "cache.enabled": "false"}
    with (
        run.scenario(
            "guard killed during a guarded chat stream",
            "gateway POST /v1/chat/completions",
            "SIGKILL of the guard while hold_back streams an answer, restarted",
            "the stream ends with an error event and [DONE]; every released character was checked; streams again",
        ) as s,
        _chat_gateway(run, words=150, token_interval=0.02, record=record, settings=settings) as (guard, _, gateway),
    ):
        lines = _stream(gateway.url, "tell me a story", _kill_at_first_release(guard))
        released = _released(lines)
        checked = _checked_answers(record)
        s.items = 1
        unchecked = bool(released) and not any(answer.startswith(released) for answer in checked)
        s.silent_safe = int(unchecked)
        ended = _ended_in_error(lines)
        guard.start()
        again = _stream(gateway.url, "tell me another")
        s.recovered = bool(again) and again[-1] == "[DONE]" and not any('"error"' in x for x in again)
        run.report.tally("gateway POST /v1/chat/completions").add(Outcome.POLICY if ended else Outcome.CRASH)
        s.observed = f"released {len(released)} chars (all checked: {not unchecked}), error event + [DONE]: {ended}"
        s.ok = ended and s.recovered


def upstream_killed_mid_stream(run: Run) -> None:
    with (
        run.scenario(
            "main LLM killed mid-stream",
            "gateway POST /v1/chat/completions",
            "SIGKILL of the upstream LLM while streaming; then a whole answer with it down; then restarted",
            "an error event in OpenAI's envelope and [DONE]; 502 upstream_unavailable; serving again",
        ) as s,
        _chat_gateway(run, words=150, token_interval=0.02) as (_, upstream, gateway),
    ):
        lines = _stream(gateway.url, "tell me a story", _kill_at_first_release(upstream))
        ended = _ended_in_error(lines)
        body = {"model": "main-llm", "messages": [{"role": "user", "content": "hello"}]}
        down = httpx.post(gateway.url + CHAT, json=body, timeout=30)
        run.record_http("gateway POST /v1/chat/completions", CHAT, down, s)
        upstream.start()
        s.recovered = _wait(lambda: httpx.post(gateway.url + CHAT, json=body, timeout=30).status_code == 200, 30)
        s.items = 2
        s.observed = f"stream error event + [DONE]: {ended}; with the LLM down: {down.status_code}"
        s.ok = ended and down.status_code == 502 and s.recovered


class DroppingProxy:
    """A TCP proxy that passes bytes through, or (dropping) closes each connection as soon as it opens."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.dropping = False
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if self.dropping:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                client.close()  # RST
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if self.dropping:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with suppress(Exception):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def stop(self) -> None:
        self.closed = True
        self.sock.close()


def connections_dropped(run: Run) -> None:
    with run.scenario(
        "connections to the guard dropped",
        "gateway POST /beta/litellm_basic_guardrail_api",
        "every connection to the guard reset (TCP RST) for a while, then passed again",
        "503 guard_unavailable (LiteLLM's fail_closed), never action NONE; serving again",
    ) as s:
        guard = fake_guard(run.workdir).start()
        proxy = DroppingProxy(guard.port)
        gateway = InProcessGateway(run.workdir, proxy.url, **{"cache.enabled": "false"}).start()
        with run.services(guard, gateway):
            try:
                proxy.dropping = True
                path = "/beta/litellm_basic_guardrail_api"
                for i in range(6):
                    body = {"texts": [UNSAFE.format(i)], "input_type": "request"}
                    response = httpx.post(gateway.url + path, json=body, timeout=30)
                    run.record_http("gateway POST " + path, path, response, s)
                s.items = 6
                proxy.dropping = False
                s.recovered = _wait(lambda: _serves(gateway.url), 30)
                s.observed = "503 guard_unavailable while dropped; blocked again once passed"
                s.ok = s.recovered
            finally:
                proxy.stop()


def slow_reader_and_disconnects(run: Run) -> None:
    with (
        run.scenario(
            "slow-reading and disconnecting clients",
            "gateway POST /v1/chat/completions",
            "a client reading a stream at 5 chunks/s; 12 clients that leave after the first chunk (limit 4 in flight)",
            "the slow stream completes; probes answer meanwhile; leavers free their admission slots (no 429 after)",
        ) as s,
        _chat_gateway(run, words=30, token_interval=0.01, settings={"limits.max_in_flight": "4"}) as (_, _, gateway),
    ):
        slow: list[str] = []
        reader = threading.Thread(
            target=lambda: slow.extend(_stream(gateway.url, "a story please", lambda _: time.sleep(0.2), 60))
        )
        reader.start()
        probe_times = []
        for _ in range(5):
            started = time.monotonic()
            httpx.get(gateway.url + "/health", timeout=10)
            probe_times.append(time.monotonic() - started)
            time.sleep(0.1)
        body = {"model": "main-llm", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(12):
            with httpx.stream("POST", gateway.url + CHAT, json=body, timeout=30) as response:
                next(response.iter_bytes(), b"")  # one chunk, then hang up
        reader.join(timeout=90)
        time.sleep(0.5)
        after = [
            httpx.post(gateway.url + CHAT, json={**body, "stream": False}, timeout=30).status_code for _ in range(4)
        ]
        s.items = 1 + 12 + 4
        completed = bool(slow) and slow[-1] == "[DONE]"
        s.lost = 0 if completed else 1
        s.recovered = after == [200] * 4
        s.observed = f"slow stream complete: {completed}; probe max {max(probe_times) * 1000:.0f} ms; after: {after}"
        s.ok = completed and s.recovered and max(probe_times) < 2.0
        run.report.tally("gateway POST /v1/chat/completions").add(Outcome.VERDICT if completed else Outcome.HANG)


SCENARIOS: list[Callable[[Run], None]] = [
    guard_killed_during_check_many,
    guard_killed_during_screen,
    screen_output_full,
    guard_killed_during_moderations,
    guard_frozen,
    guard_garbled,
    guard_killed_during_chat_stream,
    upstream_killed_mid_stream,
    connections_dropped,
    slow_reader_and_disconnects,
]


def run_faults(report: Report, workdir: Path, quick: bool, only: list[str] | None = None) -> None:
    run = Run(report, workdir, quick)
    for scenario in SCENARIOS:
        if only is None or scenario.__name__ in only:
            scenario(run)
