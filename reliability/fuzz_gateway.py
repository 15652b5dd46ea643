"""Fuzz every route of the gateway over HTTP: schemathesis from the gateway's own OpenAPI document
(valid and invalid requests), plus hypothesis-built chat requests (the chat route reads its raw body,
so the document has no schema for it). The guard behind it says Unsafe to everything: an answer that
lets anything through after the guard was asked is a silent Safe."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import requests
import schemathesis
from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

from guard_client.testing import CHECK_PATHS
from reliability.classify import allowed_http, classify_http
from reliability.fuzz_client import fuzz_settings
from reliability.report import Outcome, Report

DEADLINE = 20.0
R = TypeVar("R")


class GuardCalls:
    """Counts the checks the fake guard received (its --record file)."""

    def __init__(self, record: Path) -> None:
        self.record = record

    def count(self) -> int:
        if not self.record.exists():
            return 0
        return sum(json.loads(line)["path"] in CHECK_PATHS for line in self.record.read_text().splitlines() if line)


def _settings(examples: int) -> settings:
    return fuzz_settings(examples, derandomize=False)


def _sent(report: Report, interface: str, where: str, send: Callable[[], R]) -> R | None:
    """`send()`'s response; None once a request that got no answer in time (a hang) or no connection (a
    crash) is counted."""
    try:
        return send()
    except (requests.Timeout, httpx.TimeoutException):
        report.tally(interface).add(Outcome.HANG, f"{where}no answer in {DEADLINE} s")
    except (requests.ConnectionError, httpx.HTTPError) as exc:
        report.tally(interface).add(Outcome.CRASH, f"{where}connection failed: {exc!r}")
    return None


def _record(report: Report, interface: str, path: str, response: Any, guard_asked: bool) -> None:
    tally = report.tally(interface)
    outcome, problem = classify_http(response.status_code, response.text, response.headers)
    tally.add(outcome, f"{path} -> {response.status_code} {response.text[:200]}")
    if problem and outcome not in (Outcome.UNEXPECTED_5XX,):
        tally.schema_violations += 1
        tally.note(problem)
    if guard_asked and allowed_http(path, response.status_code, response.text):
        tally.silent_safe += 1
        tally.note(f"silent Safe: {path} -> {response.text[:200]}")


def _fuzz_operation(
    report: Report, base_url: str, operation: Any, mode: GenerationMode, examples: int, calls: GuardCalls
) -> None:
    interface = f"gateway {operation.method.upper()} {operation.path}"
    try:
        strategy = operation.as_strategy(generation_mode=mode)
    except Exception:  # a mode that cannot be generated for this route (no parameters)
        return

    @_settings(examples)
    @given(case=strategy)
    def run(case: Any) -> None:
        before = calls.count()
        response = _sent(report, interface, f"{case.path} ", lambda: case.call(base_url=base_url, timeout=DEADLINE))
        if response is None:
            return
        _record(report, interface, operation.path, response, calls.count() > before)
        if response.status_code < 300:
            try:
                case.validate_response(response, checks=[response_schema_conformance])
            except Exception as exc:  # schemathesis' failure group: the answer does not match the document
                report.tally(interface).schema_violations += 1
                report.tally(interface).note(f"schema: {str(exc)[:200]}")

    try:
        run()
    except Exception as exc:  # hypothesis could not generate for this mode (a route without parameters)
        if type(exc).__name__ != "Unsatisfiable":
            report.tally(interface).note(f"{mode.value}: {type(exc).__name__}: {str(exc)[:200]}")


def fuzz_openapi(report: Report, base_url: str, examples: int, calls: GuardCalls) -> None:
    schema = schemathesis.openapi.from_url(base_url + "/openapi.json")
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            report.tally("gateway OpenAPI document").note(f"invalid operation: {result}")
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz_operation(report, base_url, result.ok(), mode, examples, calls)


# Any JSON: the chat route reads its raw body itself.
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
_roles = st.sampled_from(["user", "assistant", "system", "tool", "function", "developer", "", "USER"]) | st.text(
    max_size=8
)
_content = (
    st.text(max_size=300)
    | st.lists(
        st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", "input_audio", "x"]), "text": st.text()}),
        max_size=3,
    )
    | _json_values
)
_message = st.fixed_dictionaries({"role": _roles, "content": _content}, optional={"name": st.text(max_size=8)})
_chat_body = st.fixed_dictionaries(
    {"messages": st.lists(_message, max_size=5) | _json_values},
    optional={"model": st.text(max_size=20), "stream": st.booleans() | _json_values, "n": st.integers(-2, 3)},
)
_raw = st.binary(max_size=200) | st.text(max_size=200).map(str.encode)


def fuzz_chat(report: Report, base_url: str, examples: int, calls: GuardCalls) -> None:
    interface = "gateway POST /v1/chat/completions"
    path = "/v1/chat/completions"
    with httpx.Client(base_url=base_url, timeout=DEADLINE) as client:

        @_settings(examples)
        @given(body=_chat_body.map(lambda b: json.dumps(b).encode()) | _raw)
        def run(body: bytes) -> None:
            before = calls.count()
            headers = {"content-type": "application/json"}
            response = _sent(report, interface, "", lambda: client.post(path, content=body, headers=headers))
            if response is None:
                return
            if "text/event-stream" in response.headers.get("content-type", ""):
                # A stream under an always-Unsafe guard may only end blocked: no released content.
                outcome = Outcome.VERDICT
                report.tally(interface).add(outcome)
                if calls.count() > before and '"content_filter"' not in response.text:
                    report.tally(interface).silent_safe += 1
                    report.tally(interface).note(f"silent Safe stream: {response.text[:200]}")
                return
            _record(report, interface, path, response, calls.count() > before)

        run()
