"""The logic both clients share, written once without I/O.

A check is a generator ("flow") that yields the HTTP calls it needs and receives their decoded
JSON bodies; `GuardClient` drives flows with blocking I/O and `AsyncGuardClient` with asyncio.
Retries, error mapping, request bodies and response interpretation all live here.
"""

from __future__ import annotations

import math
import os
import random
import re
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias, cast

import httpx
from tenacity import RetryCallState, retry_if_exception, stop_after_attempt

from guard_client._errors import (
    GuardConnectionError,
    GuardError,
    GuardHTTPError,
    GuardInputError,
    GuardParseError,
    GuardTimeoutError,
)
from guard_client._labels import CATEGORIES_BY_MODE, STANDIN_MARKER, Category, GuardMode, Safety, Strictness
from guard_client._template import content_text, guard_mode, render_guard_prompt
from guard_client._verdict import FailurePolicy, Scores, Verdict, parse_verdict

DEFAULT_BASE_URL = "http://localhost:8000"
DEFAULT_MODEL = "qwen3guard"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 2
DEFAULT_CONCURRENCY = 16
#: Every valid output fits in 32 tokens (about 9 in prompt mode, 13 in response mode).
MAX_TOKENS = 32
#: vLLM's default cap on returned top logprobs.
TOP_LOGPROBS = 20
#: Below this share of probability on a verdict word the model is not answering the guard question.
DEFAULT_MIN_VERDICT_MASS = 0.5
RETRY_STATUSES = frozenset({408, 409, 429})
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
MAX_RETRY_AFTER = 60.0
#: Fraction of a window repeated in the next one when long inputs are chunked.
CHUNK_OVERLAP = 0.125
ENV_URL, ENV_API_KEY, ENV_MODEL = "GUARD_URL", "GUARD_API_KEY", "GUARD_MODEL"
_VERDICT_PREFIX = "Safety:"
_SEVERITY = {Safety.SAFE: 0, Safety.CONTROVERSIAL: 1, Safety.UNSAFE: 2}

Messages: TypeAlias = Sequence[Mapping[str, Any]]
#: What `check_many` accepts per item: a prompt, a (prompt, response) pair, or messages.
CheckItem: TypeAlias = str | tuple[str, str] | Messages


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    json: dict[str, Any] | None = None


@dataclass(frozen=True)
class Parallel:
    """Run these flows concurrently; the flow receives a list of `Verdict | GuardError` in order."""

    flows: list[Flow]


Flow: TypeAlias = Generator[Request | Parallel, Any, Verdict]


@dataclass(frozen=True)
class ServerInfo:
    model: str
    root: str
    max_model_len: int

    @property
    def is_standin(self) -> bool:
        return STANDIN_MARKER in self.root


@dataclass(frozen=True)
class CheckOptions:
    scores: bool = False
    constrain: bool = False
    verdict_only: bool = False
    chunk: bool = False


@dataclass
class _VerdictTokens:
    """The first sub-token id of each verdict word after 'Safety:', read from the server's tokenizer."""

    by_id: dict[int, Safety] = field(default_factory=dict)


#: Every token of a grammar-constrained answer holds at least one of its (ASCII) characters, so
#: the longest answer the grammar allows, in characters, bounds the tokens it can take, even when
#: a model (the random stand-in) spells it with unusual tokens.
MAX_TOKENS_DETAILS = len(" ") + 3 * max(len(c.value) for c in Category) + 2 * len(", ") + len("\nRefusal: Yes")
#: Also bounds the verdict-first path: its follow-up's prompt ends with the verdict line it continues.
MAX_TOKENS_CONSTRAINED = len("Safety: Controversial\nCategories:") + MAX_TOKENS_DETAILS


def _categories_regex(mode: GuardMode, safety: Safety | None) -> str:
    """What may follow 'Categories: ': None alone for Safe, else None or up to three labels of the mode."""
    if safety is Safety.SAFE:
        return "None"
    labels = "|".join(re.escape(c.value) for c in CATEGORIES_BY_MODE[mode])
    return rf"(None|({labels})(, ({labels})){{0,2}})"


def _refusal_regex(mode: GuardMode) -> str:
    return r"\nRefusal: (Yes|No)" if mode is GuardMode.RESPONSE else ""


def verdict_regex(mode: GuardMode, safety: Safety | None = None) -> str:
    """The output grammar for `constrain=True`: always a parseable verdict.

    Safe comes with `Categories: None`; Unsafe and Controversial with up to three labels of the
    mode (or None). `safety` fixes the verdict word.
    """
    safe = r"Safety: Safe\nCategories: None"
    words = "Unsafe|Controversial" if safety is None else safety.value
    flagged = rf"Safety: ({words})\nCategories: {_categories_regex(mode, safety)}"
    pattern = safe if safety is Safety.SAFE else flagged if safety is not None else f"({safe}|{flagged})"
    return pattern + _refusal_regex(mode)


def details_prefix(safety: Safety) -> str:
    """The start of the answer once the verdict word is known: the verdict-first follow-up continues it."""
    return f"{_VERDICT_PREFIX} {safety.value}\nCategories:"


def details_regex(mode: GuardMode, safety: Safety) -> str:
    """The grammar of the rest of the answer after `details_prefix(safety)`."""
    return f" {_categories_regex(mode, safety)}{_refusal_regex(mode)}"


def normalize_messages(messages: Messages) -> list[dict[str, str]]:
    """Validate messages and flatten their content to text; raises GuardInputError."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise GuardInputError("messages must be a list of {'role': ..., 'content': ...} mappings")
    if not messages:
        raise GuardInputError("a guard check needs at least one message")
    out = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise GuardInputError(f"message {index} must be a mapping with a string 'role' and a 'content'")
        try:
            text = content_text(message.get("content"))
        except GuardInputError as exc:
            raise GuardInputError(f"message {index}: {exc}") from None
        out.append({"role": message["role"], "content": text})
    return out


def item_messages(item: CheckItem) -> Messages:
    """Turn a `check_many` item into messages."""
    if isinstance(item, str):
        return [{"role": "user", "content": item}]
    if isinstance(item, tuple) and len(item) == 2 and all(isinstance(part, str) for part in item):
        return [{"role": "user", "content": item[0]}, {"role": "assistant", "content": item[1]}]
    if isinstance(item, Sequence):
        return cast(Messages, item)  # validated by normalize_messages
    raise GuardInputError(
        f"cannot check an item of type {type(item).__name__}: pass a str, (prompt, response) or messages"
    )


def combine_worst_first(mode: GuardMode, results: Sequence[Verdict | GuardError]) -> Verdict:
    """One verdict for a chunked input: the most severe decided window wins; an Unsafe window
    outweighs windows that could not be decided, which otherwise make the whole undecided."""
    decided = [r for r in results if isinstance(r, Verdict) and r.decided]
    failures = [r for r in results if not (isinstance(r, Verdict) and r.decided)]
    worst = max(decided, key=lambda v: _SEVERITY[v.safety], default=None)  # type: ignore[index]
    if failures and (worst is None or worst.safety is not Safety.UNSAFE):
        first = failures[0]
        if isinstance(first, GuardError):
            raise first
        return first
    assert worst is not None
    same = [v for v in decided if v.safety is worst.safety]
    categories = list(dict.fromkeys(c for v in same for c in v.categories))
    refusals = [v.refusal for v in decided if v.refusal is not None]
    refusal = None if not refusals else all(refusals)
    return worst.model_copy(
        update={"categories": categories, "refusal": refusal, "raw": "\n---\n".join(v.raw for v in decided)}
    )


class _Core:
    """Configuration, request bodies and response interpretation shared by both clients."""

    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        model: str | None,
        timeout: float,
        max_retries: int,
        on_error: FailurePolicy | str,
        min_verdict_mass: float,
        strictness: Strictness | str,
    ) -> None:
        self.base_url = (base_url or os.environ.get(ENV_URL) or DEFAULT_BASE_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get(ENV_API_KEY)
        self.model = model or os.environ.get(ENV_MODEL) or DEFAULT_MODEL
        if timeout <= 0:
            raise GuardInputError("timeout must be positive")
        if max_retries < 0:
            raise GuardInputError("max_retries must be zero or more")
        self.timeout = timeout
        self.max_retries = max_retries
        self.on_error = FailurePolicy(on_error)
        self.min_verdict_mass = min_verdict_mass
        self.strictness = Strictness(strictness)
        self._info: ServerInfo | None = None
        self._verdict_tokens: _VerdictTokens | None = None

    # -- transport helpers ---------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def retry_kwargs(self) -> dict[str, Any]:
        return {
            "retry": retry_if_exception(_is_retryable),
            "stop": stop_after_attempt(self.max_retries + 1),
            "wait": _retry_wait,
            "reraise": True,
        }

    @staticmethod
    def decode(response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise _http_error(response)
        try:
            return response.json()
        except ValueError as exc:
            raise GuardHTTPError(response.status_code, f"response is not JSON: {response.text[:200]!r}") from exc

    # -- flows -------------------------------------------------------------------------------

    def server_info_flow(self) -> Generator[Request, Any, ServerInfo]:
        if self._info is None:
            body = yield Request("GET", "/v1/models")
            models = {m.get("id"): m for m in body.get("data", [])}
            if self.model not in models:
                raise GuardError(
                    f"model {self.model!r} is not served at {self.base_url}; it serves: {', '.join(map(str, models))}"
                )
            entry = models[self.model]
            self._info = ServerInfo(self.model, str(entry.get("root", "")), int(entry.get("max_model_len") or 0))
        return self._info

    def guarded_check_flow(self, messages: Messages, options: CheckOptions) -> Flow:
        """A whole check with the failure policy applied; the entry point of both clients.

        Raises GuardInputError at once (before any request) for messages that cannot be checked.
        """
        normalized = normalize_messages(messages)
        return self.guarded(guard_mode(normalized), self.check_flow(normalized, options))

    def check_flow(self, normalized: list[dict[str, str]], options: CheckOptions) -> Flow:
        """One check of messages already passed through `normalize_messages`."""
        mode = guard_mode(normalized)
        info = yield from self.server_info_flow()
        prompt = render_guard_prompt(normalized)
        # The verdict-first follow-up for flagged items is a constrained request: budget for it.
        max_tokens = MAX_TOKENS_CONSTRAINED if options.constrain or options.verdict_only else MAX_TOKENS
        budget = info.max_model_len - max_tokens
        # Byte-level BPE never yields more tokens than UTF-8 bytes, so most inputs need no count.
        if info.max_model_len and len(prompt.encode()) > budget:
            tokens = yield from self._count_tokens(prompt)
            if tokens > budget:
                if not options.chunk:
                    raise GuardInputError(
                        f"the guard prompt is {tokens} tokens, more than the {budget} the server accepts "
                        f"(max_model_len {info.max_model_len} minus {max_tokens} for the answer); "
                        "shorten the input or pass chunk=True to check it in overlapping windows"
                    )
                return (yield from self._chunked_flow(normalized, mode, options, tokens, budget))
        if options.verdict_only:
            return (yield from self._verdict_first_flow(mode, prompt))
        return (yield from self._chat_flow(normalized, mode, options))

    def guarded(self, mode_hint: GuardMode, flow: Flow) -> Flow:
        """Apply the failure policy around a flow: input errors always raise."""
        try:
            return (yield from flow)
        except GuardInputError:
            raise
        except GuardError as exc:
            if self.on_error is FailurePolicy.RAISE:
                raise
            raw = exc.raw if isinstance(exc, GuardParseError) else ""
            return Verdict.undecided(mode_hint, str(exc), self.on_error, raw)

    def _count_tokens(self, text: str) -> Generator[Request, Any, int]:
        body = yield Request("POST", "/tokenize", {"model": self.model, "prompt": text, "add_special_tokens": False})
        return int(body["count"])

    def _chat_flow(self, messages: list[dict[str, str]], mode: GuardMode, options: CheckOptions) -> Flow:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": 0,
            "max_tokens": MAX_TOKENS_CONSTRAINED if options.constrain else MAX_TOKENS,
        }
        if options.constrain:
            body["structured_outputs"] = {"regex": verdict_regex(mode)}
        tokens = None
        if options.scores:
            tokens = yield from self._verdict_tokens_flow()
            body |= {"logprobs": True, "top_logprobs": TOP_LOGPROBS, "return_tokens_as_token_ids": True}
        reply = yield Request("POST", "/v1/chat/completions", body)
        choice = _first_choice(reply)
        verdict = _parse_answer((choice.get("message") or {}).get("content") or "", mode, choice)
        if tokens is not None:
            verdict = verdict.model_copy(update={"scores": _chat_scores(choice, tokens)})
        return verdict

    def _verdict_tokens_flow(self) -> Generator[Request, Any, _VerdictTokens]:
        if self._verdict_tokens is None:
            prefix = yield Request(
                "POST", "/tokenize", {"model": self.model, "prompt": _VERDICT_PREFIX, "add_special_tokens": False}
            )
            found = _VerdictTokens()
            for safety in Safety:
                full = yield Request(
                    "POST",
                    "/tokenize",
                    {"model": self.model, "prompt": f"{_VERDICT_PREFIX} {safety.value}", "add_special_tokens": False},
                )
                head = prefix["tokens"]
                if full["tokens"][: len(head)] != head or len(full["tokens"]) <= len(head):
                    raise GuardError(
                        f"the server's tokenizer does not split '{_VERDICT_PREFIX} {safety.value}' as expected"
                    )
                found.by_id[int(full["tokens"][len(head)])] = safety
            if len(found.by_id) != len(Safety):
                raise GuardError(
                    "the verdict words share their first token; verdict-first scoring cannot tell them apart"
                )
            self._verdict_tokens = found
        return self._verdict_tokens

    def _verdict_first_flow(self, mode: GuardMode, prompt: str) -> Flow:
        tokens = yield from self._verdict_tokens_flow()
        reply = yield Request(
            "POST",
            "/v1/completions",
            {
                "model": self.model,
                "prompt": prompt + _VERDICT_PREFIX,
                "max_tokens": 1,
                "temperature": 0,
                "logprobs": TOP_LOGPROBS,
                # Greedy among the three verdict words: the model's own preference between them.
                "allowed_token_ids": sorted(tokens.by_id),
                "return_tokens_as_token_ids": True,
            },
        )
        logprobs = _first_choice(reply).get("logprobs") or {}
        try:
            chosen = _token_id(logprobs["tokens"][0])
            candidates = {**logprobs["top_logprobs"][0], logprobs["tokens"][0]: logprobs["token_logprobs"][0]}
        except (KeyError, IndexError, TypeError) as exc:
            raise GuardParseError("the completion carries no logprobs for the verdict token", str(reply)) from exc
        scores = _scores_from(candidates, tokens)
        safety = tokens.by_id.get(chosen)
        if safety is None:
            raise GuardParseError(f"the server answered token {chosen}, not a verdict word", str(logprobs))
        if scores.verdict_mass < self.min_verdict_mass:
            raise GuardParseError(
                f"the model put only {scores.verdict_mass:.2g} of its probability on a verdict word "
                f"(minimum {self.min_verdict_mass:g})",
                str(logprobs),
            )
        verdict = Verdict(mode=mode, safety=safety, raw=f"{_VERDICT_PREFIX} {safety.value}", scores=scores)
        if not verdict.flagged(self.strictness):
            return verdict
        # Flagged: continue the answer after the decided verdict word. The prompt is the one just
        # sent, so its KV blocks are in the prefix cache and the server decodes only the categories
        # (and refusal), under a grammar: they always parse and agree with the verdict.
        start = details_prefix(safety)
        reply = yield Request(
            "POST",
            "/v1/completions",
            {
                "model": self.model,
                "prompt": prompt + start,
                "max_tokens": MAX_TOKENS_DETAILS,
                "temperature": 0,
                "structured_outputs": {"regex": details_regex(mode, safety)},
            },
        )
        choice = _first_choice(reply)
        detail = _parse_answer(start + (choice.get("text") or ""), mode, choice)
        return detail.model_copy(update={"scores": scores})

    def _chunked_flow(
        self, messages: list[dict[str, str]], mode: GuardMode, options: CheckOptions, total_tokens: int, budget: int
    ) -> Flow:
        text = messages[-1]["content"]
        text_tokens = yield from self._count_tokens(text)
        room = budget - (total_tokens - text_tokens) - 16  # 16: joins between pieces may tokenize differently
        if room < 64 or not text:
            raise GuardInputError(
                f"the conversation before the checked message already takes {total_tokens - text_tokens} of the "
                f"{budget} tokens the server accepts; chunking splits only the last message"
            )
        window = max(1, int(room * len(text) / max(text_tokens, 1) * 0.9))
        step = max(1, int(window * (1 - CHUNK_OVERLAP)))
        starts = range(0, max(len(text) - window, 0) + step, step)
        windows = [text[s : s + window] for s in starts if s < len(text)]
        single = CheckOptions(scores=options.scores, constrain=options.constrain, verdict_only=options.verdict_only)
        flows = [
            self.check_flow([*messages[:-1], {"role": messages[-1]["role"], "content": piece}], single)
            for piece in windows
        ]
        results = yield Parallel(flows)
        return combine_worst_first(mode, results)


def _first_choice(reply: Any) -> dict[str, Any]:
    try:
        choice = reply["choices"][0]
    except (KeyError, IndexError, TypeError) as exc:
        raise GuardParseError("the server's reply has no choices", str(reply)[:500]) from exc
    if not isinstance(choice, dict):
        raise GuardParseError("the server's reply has a malformed choice", str(reply)[:500])
    return choice


def _parse_answer(text: str, mode: GuardMode, choice: Mapping[str, Any]) -> Verdict:
    try:
        return parse_verdict(text, mode)
    except GuardParseError as exc:
        if choice.get("finish_reason") == "length":
            raise GuardParseError(f"{exc.reason} (output cut at max_tokens)", text) from None
        raise


def _token_id(token: str) -> int:
    # With return_tokens_as_token_ids the server names tokens "token_id:<n>".
    return int(token.rsplit(":", 1)[-1])


def _scores_from(candidates: Mapping[str, float], tokens: _VerdictTokens) -> Scores:
    probs: dict[Safety, float] = {}
    for token, logprob in candidates.items():
        safety = tokens.by_id.get(_token_id(token))
        if safety is not None and logprob is not None and math.isfinite(logprob):
            probs[safety] = math.exp(logprob)
    return Scores(
        safe=probs.get(Safety.SAFE), unsafe=probs.get(Safety.UNSAFE), controversial=probs.get(Safety.CONTROVERSIAL)
    )


def _chat_scores(choice: Mapping[str, Any], tokens: _VerdictTokens) -> Scores | None:
    """Scores at the verdict token: the first generated token after the text 'Safety:'."""
    content = (choice.get("logprobs") or {}).get("content") or []
    text = ""
    for entry in content:
        if text.strip() == _VERDICT_PREFIX:
            top = {item["token"]: item["logprob"] for item in entry.get("top_logprobs") or []}
            top[entry["token"]] = entry["logprob"]
            return _scores_from(top, tokens)
        text += bytes(entry.get("bytes") or []).decode("utf-8", errors="replace")
    return None


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, GuardConnectionError):
        return True
    return isinstance(exc, GuardHTTPError) and (exc.status_code in RETRY_STATUSES or exc.status_code >= 500)


def _retry_wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        return float(min(retry_after, MAX_RETRY_AFTER))
    delay: float = min(INITIAL_RETRY_DELAY * 2 ** (state.attempt_number - 1), MAX_RETRY_DELAY)
    return delay * (0.75 + random.random() / 2)


def _http_error(response: httpx.Response) -> GuardHTTPError:
    try:
        body = response.json()
        message = str(body.get("error", {}).get("message") or body.get("message") or body)
    except (ValueError, AttributeError):
        message = response.text[:500] or response.reason_phrase
    retry_after = None
    header = response.headers.get("retry-after")
    if header is not None:
        try:
            retry_after = max(0.0, float(header))
        except ValueError:  # an HTTP date: fall back to our own back-off
            retry_after = None
    return GuardHTTPError(response.status_code, message, retry_after)


def map_transport_error(exc: httpx.HTTPError, base_url: str) -> GuardError:
    cause = exc.__cause__
    # httpx-aiohttp reports a refused connection as ConnectTimeout; its cause tells the truth.
    refused = isinstance(cause, OSError) and not isinstance(cause, TimeoutError)
    if isinstance(exc, httpx.TimeoutException) and not refused:
        return GuardTimeoutError(f"no answer from {base_url} in time ({type(exc).__name__})")
    return GuardConnectionError(f"cannot reach the guard at {base_url}: {exc or type(exc).__name__}")
