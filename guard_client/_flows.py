"""The check flows: every check written once, without I/O.

A flow is a generator that yields the HTTP calls it needs (`Request`) or sub-flows to run
concurrently (`Parallel`) and receives their decoded JSON bodies (or results); `GuardClient` drives
flows with blocking I/O and `AsyncGuardClient` with asyncio (httpx's `Auth.auth_flow` idea applied
to a whole client). A third driver needs no new logic.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeAlias, TypedDict, TypeVar

from guard_client._constants import CHUNK_OVERLAP, is_standin_model
from guard_client._errors import GuardError, GuardInputError, GuardParseError
from guard_client._grammar import MAX_CATEGORIES, VERDICT_PREFIX, details_prefix, max_tokens_constrained
from guard_client._guard_policy import GuardPolicy
from guard_client._input import GuardInput, prepare_input
from guard_client._labels import Safety, Strictness
from guard_client._locate import Location, locate_search, window_messages
from guard_client._requests import (
    VerdictTokens,
    answer_max_tokens,
    chat_request,
    completion_request,
    details_request,
    tokenize_request,
    verdict_request,
)
from guard_client._verdict import FailurePolicy, Scores, Verdict, parse_verdict

T = TypeVar("T")
#: The header a check's `session` travels in: vllm-router's `consistent_hash` hashes it first.
SESSION_HEADER = "X-Session-ID"
_SEVERITY = {Safety.SAFE: 0, Safety.CONTROVERSIAL: 1, Safety.UNSAFE: 2}


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    json: dict[str, Any] | None = None
    #: Headers this request adds to the client's own (a check's `session`).
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Parallel:
    """Run these flows concurrently; the flow receives a list of `Verdict | GuardError` in order."""

    flows: list[Flow[Verdict]]


Flow: TypeAlias = Generator[Request | Parallel, Any, T]


def advance(flow: Flow[T], outcome: Any) -> Request | Parallel:
    """Hand a step's outcome to its flow (a `GuardError` is thrown into it) and get the next step.

    Drivers loop `step = advance(flow, outcome_of(step))` until the flow returns (StopIteration).
    """
    return flow.throw(outcome) if isinstance(outcome, GuardError) else flow.send(outcome)


class CheckOptions(TypedDict, total=False):
    """How a check is made (keyword options of `check`, `check_prompt`, `check_response`, `check_many`)."""

    #: Add P(Safe), P(Unsafe), P(Controversial) from the verdict token's logprobs.
    scores: bool
    #: Constrain decoding to the verdict grammar: the output always parses.
    constrain: bool
    #: One-token verdict first (client-side rendering, `/v1/completions`); details only when flagged.
    verdict_only: bool
    #: Check inputs longer than the server accepts in overlapping windows, worst first.
    chunk: bool
    #: The most category labels a constrained answer may name (1-3; 3 by default).
    max_categories: int
    #: For a flagged verdict, find the smallest spans of the last message still flagged on their own.
    locate: bool
    #: The policy this check states, instead of the client's (an input prepared with `prepare_input`
    #: already carries one).
    policy: GuardPolicy
    #: A stable key of the conversation this check belongs to, sent as the `X-Session-ID` header: a router
    #: in front of several guard replicas (vllm-router's `consistent_hash`) keeps its checks on one replica.
    session: str


@dataclass(frozen=True)
class Settings:
    """`CheckOptions` with their defaults, validated: one hashable value per way of checking."""

    scores: bool = False
    constrain: bool = False
    verdict_only: bool = False
    chunk: bool = False
    max_categories: int = MAX_CATEGORIES
    locate: bool = False
    policy: GuardPolicy | None = None
    session: str | None = None

    @classmethod
    def of(cls, options: CheckOptions) -> Settings:
        unknown = set(options) - set(CheckOptions.__annotations__)
        if unknown:
            raise GuardInputError(
                f"unknown check option(s) {sorted(unknown)}; known: {sorted(CheckOptions.__annotations__)}"
            )
        settings = cls(**options)
        if settings.verdict_only and settings.constrain:
            raise GuardInputError("verdict_only already constrains the verdict; constrain applies to full generation")
        if not 1 <= settings.max_categories <= MAX_CATEGORIES:
            raise GuardInputError(f"max_categories must lie between 1 and {MAX_CATEGORIES}")
        if settings.policy is not None and not isinstance(settings.policy, GuardPolicy):
            raise GuardInputError("policy must be a GuardPolicy, e.g. GuardPolicy.load('guard_policy.yaml')")
        if settings.session is not None and not (
            isinstance(settings.session, str) and 0 < len(settings.session) <= 256 and settings.session.isprintable()
        ):
            raise GuardInputError("session must be 1-256 printable characters (it is sent as a header)")
        return settings

    @property
    def headers(self) -> Mapping[str, str] | None:
        """What a check's requests add to the client's headers."""
        return None if self.session is None else {SESSION_HEADER: self.session}


@dataclass(frozen=True)
class ServerInfo:
    model: str
    root: str
    max_model_len: int

    @property
    def is_standin(self) -> bool:
        return is_standin_model(self.root)


@dataclass(eq=False)
class CheckFlows:
    """The flows of one client: its model, failure policy and strictness, and what it learnt of the server."""

    model: str
    base_url: str
    on_error: FailurePolicy
    strictness: Strictness
    min_verdict_mass: float
    _info: ServerInfo | None = field(default=None, init=False, repr=False)
    _verdict_tokens: VerdictTokens | None = field(default=None, init=False, repr=False)

    def server_info(self) -> Flow[ServerInfo]:
        if self._info is None:
            body = yield Request("GET", "/v1/models")
            models = {m.get("id"): m for m in body.get("data", [])}
            if self.model not in models:
                raise GuardError(
                    f"model {self.model!r} is not served at {self.base_url}; it serves: {', '.join(map(str, models))}"
                )
            entry = models[self.model]
            # vLLM lists a LoRA adapter with its base as `parent` and no max_model_len: the base's limit holds.
            limit = entry.get("max_model_len") or models.get(entry.get("parent"), {}).get("max_model_len")
            self._info = ServerInfo(self.model, str(entry.get("root", "")), int(limit or 0))
        return self._info

    def verdict_tokens(self) -> Flow[VerdictTokens]:
        if self._verdict_tokens is None:
            tokenized = {}
            for key, text in VerdictTokens.probe_texts().items():
                body = yield Request("POST", "/tokenize", tokenize_request(self.model, text))
                tokenized[key] = body["tokens"]
            try:
                self._verdict_tokens = VerdictTokens.from_tokenizations(tokenized)
            except ValueError as exc:
                raise GuardError(str(exc)) from None
        return self._verdict_tokens

    def check(self, guard_input: GuardInput, settings: Settings) -> Flow[Verdict]:
        """A whole check with the failure policy applied: the entry point of both clients.

        Input errors always raise; other failures raise or become an undecided verdict, per policy.
        """
        try:
            verdict = yield from self._check(guard_input, settings)
        except GuardInputError:
            raise
        except GuardError as exc:
            if self.on_error is FailurePolicy.RAISE:
                raise
            return Verdict.from_error(guard_input.mode, exc, self.on_error)
        if settings.locate and verdict.decided and verdict.flagged(self.strictness):
            location = yield from self._locate(guard_input, replace(settings, locate=False))
            verdict = verdict.model_copy(update={"location": location})
        return verdict

    def _locate(self, guard_input: GuardInput, settings: Settings) -> Flow[Location]:
        """The pure locate search, each round's windows checked concurrently with the conversation
        before the last message kept as context; a window that fails counts as unknown."""
        search = locate_search(guard_input.messages[-1]["content"])
        try:
            windows = next(search)
            while True:
                flows = [
                    self._check(prepare_input(window_messages(guard_input.messages, w), guard_input.policy), settings)
                    for w in windows
                ]
                results = yield Parallel(flows)
                windows = search.send(
                    [r.flagged(self.strictness) if isinstance(r, Verdict) and r.decided else None for r in results]
                )
        except StopIteration as stop:
            location: Location = stop.value
            return location

    def _check(self, guard_input: GuardInput, settings: Settings) -> Flow[Verdict]:
        info = yield from self.server_info()
        # The verdict-first follow-up for flagged items is a constrained request: budget for it.
        policy = guard_input.policy
        max_tokens = (
            max_tokens_constrained(policy)
            if settings.verdict_only
            else answer_max_tokens(policy, constrain=settings.constrain)
        )
        budget = info.max_model_len - max_tokens
        # Byte-level BPE never yields more tokens than UTF-8 bytes, so most inputs need no count.
        if info.max_model_len and len(guard_input.prompt.encode()) > budget:
            tokens = yield from self._count_tokens(guard_input.prompt)
            if tokens > budget:
                if not settings.chunk:
                    raise GuardInputError(
                        f"the guard prompt is {tokens} tokens, more than the {budget} the server accepts "
                        f"(max_model_len {info.max_model_len} minus {max_tokens} for the answer); "
                        "shorten the input or pass chunk=True to check it in overlapping windows"
                    )
                return (yield from self._chunked(guard_input, settings, tokens, budget))
        if settings.verdict_only:
            return (yield from self._verdict_first(guard_input, settings))
        return (yield from self._full_generation(guard_input, settings))

    def _count_tokens(self, text: str) -> Flow[int]:
        body = yield Request("POST", "/tokenize", tokenize_request(self.model, text))
        return int(body["count"])

    def _full_generation(self, guard_input: GuardInput, settings: Settings) -> Flow[Verdict]:
        """The whole answer in one request: the published policy's from the server's chat template; a custom
        policy's (which the template does not state) as the client's render continued after 'Safety:'."""
        tokens = (yield from self.verdict_tokens()) if settings.scores else None
        chat = guard_input.policy.is_default
        build, path = (chat_request, "/v1/chat/completions") if chat else (completion_request, "/v1/completions")
        body = build(
            guard_input,
            self.model,
            constrain=settings.constrain,
            scores=settings.scores,
            max_categories=settings.max_categories,
        )
        choice = _first_choice((yield Request("POST", path, body, settings.headers)))
        if chat:
            verdict = _parse_answer((choice.get("message") or {}).get("content") or "", guard_input, choice)
        else:
            verdict = _parse_answer(VERDICT_PREFIX + (choice.get("text") or ""), guard_input, choice)
        if tokens is None:
            return verdict
        scores = _chat_scores(choice, tokens) if chat else _completion_scores(choice, tokens)
        return verdict.model_copy(update={"scores": scores})

    def _verdict_first(self, guard_input: GuardInput, settings: Settings) -> Flow[Verdict]:
        tokens = yield from self.verdict_tokens()
        reply = yield Request(
            "POST", "/v1/completions", verdict_request(guard_input, self.model, tokens), settings.headers
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
        verdict = Verdict(mode=guard_input.mode, safety=safety, raw=f"{VERDICT_PREFIX} {safety.value}", scores=scores)
        if not verdict.flagged(self.strictness):
            return verdict
        # Flagged: continue the answer after the decided verdict word. The prompt is the one just
        # sent, so its KV blocks are in the prefix cache and the server decodes only the categories
        # (and refusal), under a grammar: they always parse and agree with the verdict.
        body = details_request(guard_input, self.model, safety, max_categories=settings.max_categories)
        choice = _first_choice((yield Request("POST", "/v1/completions", body, settings.headers)))
        detail = _parse_answer(details_prefix(safety) + (choice.get("text") or ""), guard_input, choice)
        return detail.model_copy(update={"scores": scores})

    def _chunked(self, guard_input: GuardInput, settings: Settings, total_tokens: int, budget: int) -> Flow[Verdict]:
        *context, last = guard_input.messages
        text = last["content"]
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
        # Each window is checked as one input: not chunked or located again, and under the policy it carries.
        single = replace(settings, chunk=False, locate=False, policy=None)
        flows = [
            self._check(prepare_input([*context, {"role": last["role"], "content": piece}], guard_input.policy), single)
            for piece in windows
        ]
        results = yield Parallel(flows)
        return combine_worst_first(results)


def combine_worst_first(results: Sequence[Verdict | GuardError]) -> Verdict:
    """One verdict for a chunked input: the most severe decided window wins; an Unsafe window
    outweighs windows that could not be decided, which otherwise make the whole undecided."""
    decided = [r for r in results if isinstance(r, Verdict) and r.safety is not None]
    failures = [r for r in results if not (isinstance(r, Verdict) and r.safety is not None)]
    worst = max(decided, key=lambda v: _SEVERITY[v.safety] if v.safety else -1, default=None)
    if failures and (worst is None or worst.safety is not Safety.UNSAFE):
        first = failures[0]
        if isinstance(first, GuardError):
            raise first
        return first
    if worst is None:
        raise GuardInputError("nothing to combine: no window was checked")
    same = [v for v in decided if v.safety is worst.safety]
    categories = list(dict.fromkeys(c for v in same for c in v.categories))
    refusals = [v.refusal for v in decided if v.refusal is not None]
    refusal = None if not refusals else all(refusals)
    return worst.model_copy(
        update={"categories": categories, "refusal": refusal, "raw": "\n---\n".join(v.raw for v in decided)}
    )


def _first_choice(reply: Any) -> dict[str, Any]:
    try:
        choice = reply["choices"][0]
    except (KeyError, IndexError, TypeError) as exc:
        raise GuardParseError("the server's reply has no choices", str(reply)[:500]) from exc
    if not isinstance(choice, dict):
        raise GuardParseError("the server's reply has a malformed choice", str(reply)[:500])
    return choice


def _parse_answer(text: str, guard_input: GuardInput, choice: Mapping[str, Any]) -> Verdict:
    try:
        return parse_verdict(text, guard_input.mode, guard_input.policy)
    except GuardParseError as exc:
        if choice.get("finish_reason") == "length":
            raise GuardParseError(f"{exc.reason} (output cut at max_tokens)", text) from None
        raise


def _token_id(token: str) -> int:
    # With return_tokens_as_token_ids the server names tokens "token_id:<n>".
    return int(token.rsplit(":", 1)[-1])


def _scores_from(candidates: Mapping[str, float], tokens: VerdictTokens) -> Scores:
    by_id = tokens.by_id
    probs: dict[Safety, float] = {}
    for token, logprob in candidates.items():
        safety = by_id.get(_token_id(token))
        if safety is not None and logprob is not None and math.isfinite(logprob):
            probs[safety] = math.exp(logprob)
    return Scores(
        safe=probs.get(Safety.SAFE), unsafe=probs.get(Safety.UNSAFE), controversial=probs.get(Safety.CONTROVERSIAL)
    )


def _completion_scores(choice: Mapping[str, Any], tokens: VerdictTokens) -> Scores | None:
    """Scores at the verdict token: the first generated token (the prompt ends with 'Safety:')."""
    logprobs = choice.get("logprobs") or {}
    try:
        first = {**logprobs["top_logprobs"][0], logprobs["tokens"][0]: logprobs["token_logprobs"][0]}
    except (KeyError, IndexError, TypeError):
        return None
    return _scores_from(first, tokens)


def _chat_scores(choice: Mapping[str, Any], tokens: VerdictTokens) -> Scores | None:
    """Scores at the verdict token: the first generated token after the text 'Safety:'."""
    content = (choice.get("logprobs") or {}).get("content") or []
    text = ""
    for entry in content:
        if text.strip() == VERDICT_PREFIX:
            top = {item["token"]: item["logprob"] for item in entry.get("top_logprobs") or []}
            top[entry["token"]] = entry["logprob"]
            return _scores_from(top, tokens)
        text += bytes(entry.get("bytes") or []).decode("utf-8", errors="replace")
    return None
