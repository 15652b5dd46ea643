"""The gateway's one door to the guard: `guard_client`'s `AsyncGuardClient`, the verdict cache and
the check metrics. Endpoints hand it prepared inputs and get one verdict per input, in order.

`Guards` holds one `Guard` per served guard model (the base guard, and each adapter or merged model of
the configuration's `models:`, each with its policy); a request's `model` picks one."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from guard_client import (
    STANDIN_WARNING,
    AsyncGuardClient,
    CheckOptions,
    FailurePolicy,
    GuardError,
    GuardInput,
    GuardInputError,
    GuardPolicy,
    ServerInfo,
    Verdict,
    prepare_input,
)
from guard_client.conversation import (
    ConversationError,
    ConversationView,
    NonText,
    NonTextPartError,
    answer_view,
    conversation_view,
)
from guard_gateway.cache import CacheKey, VerdictCache
from guard_gateway.config import GuardSettings
from guard_gateway.errors import InvalidRequest, ModelNotFound, UnsupportedRequest
from guard_gateway.metrics import GatewayMetrics

log = logging.getLogger("guard_gateway")
_INPUT_ERROR = GuardInputError.__name__


@contextlib.contextmanager
def _readable() -> Iterator[None]:
    """A part the guard cannot read is a 422 naming it (under `conversation.non_text: refuse`); a malformed
    message a 400 naming it."""
    try:
        yield
    except NonTextPartError as exc:
        raise UnsupportedRequest(
            f"{exc}; the gateway does not pass unguarded content "
            "(conversation.non_text: pass_annotated lets it through, annotated)",
            param=exc.param,
        ) from None
    except ConversationError as exc:
        raise InvalidRequest(str(exc), param=exc.param) from None


def view_of(messages: Any, param: str, non_text: NonText) -> ConversationView:
    """The guard's view of a client's conversation (`guard_client.conversation`), the one every endpoint
    checks."""
    with _readable():
        return conversation_view(messages, non_text, param)


def answer_of(message: Mapping[str, Any], param: str, non_text: NonText) -> ConversationView:
    """An answer as the guard reads it (`guard_client.conversation.answer_view`)."""
    with _readable():
        return answer_view(message, non_text, param)


@dataclass(frozen=True)
class Readiness:
    ready: bool
    detail: str
    #: Whether checks are grammar-constrained; None while unset and not yet learnt from the guard.
    constrain: bool | None = None


def affinity_key(messages: Sequence[Mapping[str, str]], given: str | None = None) -> str:
    """The key that keeps one conversation's checks on one guard replica behind a router (sent as
    `guard_client.SESSION_HEADER`, which vllm-router's `consistent_hash` hashes): `given` (the client's own
    `X-Session-ID`) when it is a usable header value, else a digest of the conversation up to its first user
    message, which every later turn and every stream window of it repeats. Conversations that open alike
    share a replica, and with it the cached prefix they share."""
    if given and len(given) <= 256 and given.isprintable():
        return given
    first_user = next((i for i, m in enumerate(messages) if m.get("role") == "user"), len(messages) - 1)
    opening = json.dumps(list(messages[: first_user + 1]), ensure_ascii=False, sort_keys=True)
    return "conv-" + hashlib.sha256(opening.encode()).hexdigest()[:32]


class Guard:
    def __init__(
        self,
        settings: GuardSettings,
        on_failure: FailurePolicy,
        metrics: GatewayMetrics,
        cache: VerdictCache | None,
        transport: httpx.AsyncBaseTransport | None = None,
        log_checked_text: bool = False,
    ) -> None:
        self.settings = settings
        self.model = settings.model
        #: The categories this guard model was trained for: every input it checks is rendered with them.
        self.policy = GuardPolicy.load(settings.policy) if settings.policy else GuardPolicy.default()
        self._metrics = metrics
        self._cache = cache
        self._log_text = log_checked_text
        #: guard.constrain as set, else learnt from the served model (the stand-in: on); None until then.
        self.constrain = settings.constrain
        self._options: CheckOptions = {"scores": settings.scores, "chunk": settings.chunk}
        self._client_args: dict[str, Any] = {
            "api_key": settings.api_key.get_secret_value() if settings.api_key else None,
            "model": settings.model,
            "timeout": settings.timeout,
            "max_retries": settings.max_retries,
            "on_error": on_failure,
            "policy": self.policy,
        }
        self._transport = transport
        self.client = AsyncGuardClient(settings.url, transport=transport, **self._client_args)
        self._readiness: tuple[float, Readiness] | None = None

    async def aclose(self) -> None:
        await self.client.aclose()

    def prepare(self, messages: Sequence[Any], param: str) -> GuardInput:
        """Validate and render one conversation with this guard's policy; bad input is a 400 naming `param`."""
        try:
            return prepare_input(messages, self.policy)
        except GuardInputError as exc:
            raise InvalidRequest(f"Invalid value for {param!r}: {exc}", param=param) from None

    def _learn(self, info: ServerInfo) -> None:
        """With guard.constrain unset, constrain exactly when the guard serves the random-weight stand-in."""
        if self.constrain is None:
            self.constrain = info.is_standin
            if info.is_standin:
                log.warning(
                    "the guard at %s serves the random-weight stand-in: constrained decoding on (guard.constrain "
                    "unset); %s",
                    self.settings.url,
                    STANDIN_WARNING,
                )

    async def _options_now(self) -> CheckOptions:
        """The check options, guard.constrain learnt first when unset. The client fetches the server's model
        list before its first check anyway (cached after): asking for it here costs no extra request."""
        if self.constrain is None:
            with contextlib.suppress(GuardError):
                self._learn(await self.client.server_info())
        return {**self._options, "constrain": bool(self.constrain)}

    async def check(
        self, inputs: Sequence[GuardInput], endpoint: str, params: Sequence[str], session: str | None = None
    ) -> list[Verdict]:
        """One verdict per input, in order: cached ones at once, the rest from the guard concurrently
        (each distinct prompt once). An input the guard refuses as given is a 400 naming its param.
        `session`: the conversation's affinity key (see `affinity_key`), sent with every check; not part of
        the cache key (a verdict does not depend on the replica that gave it)."""
        options = await self._options_now()
        option_key = tuple(sorted(options.items()))
        keys = [CacheKey(self.model, item.mode, item.prompt, option_key) for item in inputs]
        found: dict[CacheKey, Verdict] = {}
        if self._cache is not None:
            for key in keys:
                verdict = self._cache.get(key)
                if verdict is not None:
                    found[key] = verdict
            self._metrics.cache_hits.inc(sum(key in found for key in keys))
            self._metrics.cache_misses.inc(sum(key not in found for key in keys))
        missing = {key: item for key, item in zip(keys, inputs, strict=True) if key not in found}
        if missing:
            if self._log_text:
                log.info("checking %s", [item.messages for item in missing.values()])
            started = time.perf_counter()
            sent: CheckOptions = {**options, "session": session} if session else options
            verdicts = await self.client.check_many(
                list(missing.values()),  # prepared once by the endpoint: checked as they are
                concurrency=self.settings.concurrency,
                **sent,
            )
            self._metrics.guard_latency.observe(time.perf_counter() - started)
            for key, verdict in zip(missing, verdicts, strict=True):
                found[key] = verdict
                if verdict.decided:
                    if self._cache is not None:
                        self._cache.put(key, verdict)
                elif verdict.error_type != _INPUT_ERROR:
                    self._metrics.guard_errors.labels(verdict.error_type or "GuardError").inc()
        results = [found[key] for key in keys]
        for param, verdict in zip(params, results, strict=True):
            if verdict.error_type == _INPUT_ERROR:
                raise InvalidRequest(f"Invalid value for {param!r}: {verdict.error}", param=param)
        for verdict in results:
            self._count(verdict, endpoint)
        return results

    def _count(self, verdict: Verdict, endpoint: str) -> None:
        label = verdict.safety.value.lower() if verdict.safety else "undecided"
        self._metrics.checks.labels(endpoint, verdict.mode.value, label).inc()
        for category in verdict.categories:
            self._metrics.categories.labels(endpoint, verdict.mode.value, str(category)).inc()

    async def readiness(self) -> Readiness:
        """Whether the guard answers and serves the expected model, reused for `ready_ttl_seconds`."""
        now = time.monotonic()
        if self._readiness is not None and now - self._readiness[0] < self.settings.ready_ttl_seconds:
            return self._readiness[1]
        # A fresh client: the long-lived one remembers the server's model list after its first answer.
        probe = AsyncGuardClient(
            self.settings.url, transport=self._transport, **{**self._client_args, "max_retries": 0}
        )
        try:
            info = await asyncio.wait_for(probe.server_info(), timeout=self.settings.timeout)
            self._learn(info)
            detail = f"the guard at {self.settings.url} serves {info.model!r}"
            if info.is_standin:
                detail += f" (the random-weight stand-in; constrained decoding {'on' if self.constrain else 'off'})"
            result = Readiness(True, detail, self.constrain)
        except (GuardError, TimeoutError) as exc:
            result = Readiness(
                False, f"the guard at {self.settings.url} is not ready: {exc or 'timed out'}", self.constrain
            )
        finally:
            if self._transport is None:
                await probe.aclose()
        self._readiness = (now, result)
        return result


class Guards:
    """The guard models this gateway answers for, by served name; the base guard is the default."""

    def __init__(self, default: Guard, models: Mapping[str, Guard], aliases: Sequence[str]) -> None:
        self.default = default
        self._models = dict(models)
        self._aliases = frozenset(aliases)

    def pick(self, requested: str | None) -> Guard:
        """The guard for a request's `model`: none, the base guard's name or an OpenAI alias picks the base
        guard; another configured name its own; anything else is a 404 listing what is served."""
        if requested is None or requested == self.default.model or requested in self._aliases:
            return self.default
        guard = self._models.get(requested)
        if guard is None:
            raise ModelNotFound(requested, [self.default.model, *self._models, *sorted(self._aliases)])
        return guard

    def pick_if_served(self, requested: str | None) -> Guard:
        """As `pick`, but a name this gateway does not serve picks the base guard: LiteLLM's `model` is the
        name of the LLM the guarded call went to, and only names a guard model when a route is set up so."""
        return self._models.get(requested or "", self.default)

    def __iter__(self) -> Iterator[Guard]:
        return iter([self.default, *self._models.values()])

    async def readiness(self) -> Readiness:
        """Ready when every guard model answers; the detail names the first that does not. `constrain` is the
        base guard's (the models beside it are served by the same server)."""
        results = [await guard.readiness() for guard in self]
        failed = [result for result in results if not result.ready]
        if failed:
            return failed[0]
        return Readiness(True, "; ".join(result.detail for result in results), results[0].constrain)

    async def aclose(self) -> None:
        for guard in self:
            await guard.aclose()
