"""Security properties of the gateway, checked against a running one with keys configured: every
route that sees checked text needs a key, compared in constant time; the open routes leak neither
text nor keys; checked text and credentials stay out of the log and the main LLM's key away from
the guard; oversized bodies are refused before they are read whole, with or without Content-Length."""

from __future__ import annotations

import contextlib
import hmac
import json
import socket
import time
from pathlib import Path
from unittest import mock

import httpx

from guard_gateway.auth import check_key
from guard_gateway.errors import AuthenticationFailed
from reliability.report import Check, Report
from reliability.services import InProcessGateway, fake_guard, fake_upstream

CLIENT_KEY = "sk-client-6f1d0c2e9a"
UPSTREAM_KEY = "sk-upstream-93be1a7c44"
GUARD_KEY = "sk-guard-0d4f18b2c7"
MARKER = "zebra-quartz-7731 secret text"
OPEN = {"/health", "/ready", "/metrics", "/openapi.json"}
LIMIT = 65536


def _constant_time() -> Check:
    """Every key is compared with hmac.compare_digest, whether the presented one matches or not."""
    keys = frozenset({"key-one", "key-two", "key-three"})
    with mock.patch.object(hmac, "compare_digest", wraps=hmac.compare_digest) as spy:
        for token in ("key-two", "key-twx", "k"):
            with contextlib.suppress(AuthenticationFailed):
                check_key(keys, f"Bearer {token}")
    ok = spy.call_count == 3 * len(keys)
    return Check("keys compared in constant time", ok, f"hmac.compare_digest called {spy.call_count}x for 3x3 keys")


def _chunked_over_limit(port: int) -> Check:
    """A chunked body with no Content-Length: 413 must come while most of it is still unsent."""
    chunk, total = 16384, 64 * 16384  # 1 MiB offered against a 64 KiB limit
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/moderations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {CLIENT_KEY}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        sock.setblocking(False)
        answer = b""
        while sent < total:
            with contextlib.suppress(BlockingIOError):
                answer += sock.recv(4096)
            if answer:
                break
            try:
                sock.sendall(f"{chunk:x}\r\n".encode() + b"a" * chunk + b"\r\n")
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                time.sleep(0.01)
                continue
            sent += chunk
            time.sleep(0.002)
        sock.settimeout(5)
        with contextlib.suppress(OSError):
            answer += sock.recv(4096)
    status = answer.split(b" ", 2)[1] if answer.startswith(b"HTTP/") else b"none"
    ok = status == b"413" and sent < total // 2
    return Check(
        "chunked body without Content-Length refused early", ok, f"{status.decode()} after {sent} of {total} bytes"
    )


def _lying_length(port: int) -> Check:
    """Content-Length of 1 GB with no body: 413 at once, nothing read; a short one: a 4xx, not a 5xx."""
    results = []
    for head in (b"Content-Length: 1000000000\r\n\r\n", b'Content-Length: 5\r\n\r\n{"input": "hello"}'):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/moderations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Authorization: Bearer {CLIENT_KEY}\r\n".encode()
                + head
            )
            started = time.monotonic()
            answer = sock.recv(4096)
            results.append((answer.split(b" ", 2)[1].decode() if answer else "none", time.monotonic() - started))
    ok = results[0][0] == "413" and results[0][1] < 2 and results[1][0].startswith("4")
    return Check(
        "lying or huge Content-Length refused", ok, f"1 GB claimed: {results[0][0]}; short claim: {results[1][0]}"
    )


def run_security(report: Report, workdir: Path) -> None:
    record = workdir / "security-guard.jsonl"
    guard = fake_guard(workdir, record=record).start()
    upstream = fake_upstream(workdir, words=5, token_interval=0).start()
    gateway = InProcessGateway(
        workdir,
        guard.url,
        upstream.url + "/v1",
        **{
            "auth.api_keys": CLIENT_KEY,
            "upstream.api_key": UPSTREAM_KEY,
            "guard.api_key": GUARD_KEY,
            "limits.max_body_bytes": str(LIMIT),
        },
    ).start()
    checks: list[Check] = []
    try:
        paths = json.loads(httpx.get(gateway.url + "/openapi.json").text)["paths"]
        routes = [(method.upper(), path) for path, ops in paths.items() for method in ops]
        refused: list[str] = []
        wrong: list[str] = []
        for method, path in routes:
            if path in OPEN:
                continue
            for headers, bucket in (({}, refused), ({"Authorization": "Bearer nope"}, wrong)):
                response = httpx.request(method, gateway.url + path, headers=headers, json={}, timeout=10)
                if response.status_code != 401:
                    bucket.append(f"{method} {path}: {response.status_code}")
        protected = len([r for r in routes if r[1] not in OPEN])
        checks.append(
            Check(
                "every route that sees text needs a key",
                not refused and not wrong,
                f"{protected} routes: 401 without a key and with a wrong one"
                if not (refused or wrong)
                else f"not refused: {refused + wrong}",
            )
        )
        checks.append(_constant_time())
        auth = {"Authorization": f"Bearer {CLIENT_KEY}"}
        httpx.post(gateway.url + "/v1/moderations", json={"input": MARKER}, headers=auth, timeout=30)
        chat = {"model": "main-llm", "messages": [{"role": "user", "content": MARKER}]}
        answered = httpx.post(gateway.url + "/v1/chat/completions", json=chat, headers=auth, timeout=30)
        secrets = (MARKER, CLIENT_KEY, UPSTREAM_KEY, GUARD_KEY)
        leaks = [
            f"{path} shows {secret[:6]}..."
            for path in sorted(OPEN)
            for secret in secrets
            if secret in httpx.get(gateway.url + path, timeout=10).text
        ]
        checks.append(Check("open routes leak no text or keys", not leaks, ", ".join(leaks) or f"{sorted(OPEN)} clean"))
        log = gateway.log.read_text()
        in_log = [secret[:6] + "..." for secret in secrets if secret in log]
        checks.append(
            Check(
                "checked text and keys absent from the log (defaults)",
                not in_log and len(log) > 0,
                f"{len(log.splitlines())} log lines; found: {in_log or 'nothing'}",
            )
        )
        to_guard = record.read_text()
        reached = [
            name for name, key in (("upstream key", UPSTREAM_KEY), ("client key", CLIENT_KEY)) if key in to_guard
        ]
        checks.append(
            Check(
                "the main LLM's and the client's keys never reach the guard",
                not reached and answered.status_code == 200,
                f"chat {answered.status_code}; {to_guard.count(chr(10))} guard requests; found: {reached or 'nothing'}",
            )
        )
        checks.append(_chunked_over_limit(gateway.port))
        checks.append(_lying_length(gateway.port))
        malformed = httpx.post(
            gateway.url + "/v1/moderations",
            content=b'{"input": "unterminated',
            headers={**auth, "content-type": "application/json"},
        )
        checks.append(
            Check(
                "malformed JSON is a 400 in OpenAI's envelope",
                malformed.status_code == 400 and "error" in malformed.json(),
                f"{malformed.status_code}",
            )
        )
    finally:
        gateway.stop()
        upstream.stop()
        guard.stop()
    report.checks += checks
