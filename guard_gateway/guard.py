"""The gateway's one door to the guard: `guard_client`'s `AsyncGuardClient`, the verdict cache and
the check metrics. Endpoints hand it prepared inputs and get one verdict per input, in order.

`Guards` holds one `Guard` per served guard model (the base guard, and each adapter or merged model of
the configuration's `models:`, each with its policy); a request's `model` picks one."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from guard_client import (
    AsyncGuardClient,
    CheckOptions,
    FailurePolicy,
    GuardError,
    GuardInput,
    GuardInputError,
    GuardPolicy,
    Verdict,
    prepare_input,
)
from guard_gateway.cache import CacheKey, VerdictCache
from guard_gateway.config import GuardSettings
from guard_gateway.errors import InvalidRequest, ModelNotFound
from guard_gateway.metrics import GatewayMetrics

log = logging.getLogger("guard_gateway")
_INPUT_ERROR = GuardInputError.__name__


@dataclass(frozen=True)
class Readiness:
    ready: bool
    detail: str


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
        self._metrics = metrics
        self._cache = cache
        self._log_text = log_checked_text
        self._options: CheckOptions = {
            "scores": settings.scores,
            "chunk": settings.chunk,
            "constrain": settings.constrain,
        }
        self._option_key = tuple(sorted(self._options.items()))
        self._client_args: dict[str, Any] = {
            "api_key": settings.api_key.get_secret_value() if settings.api_key else None,
            "model": settings.model,
            "timeout": settings.timeout,
            "max_retries": settings.max_retries,
            "on_error": on_failure,
            "policy": GuardPolicy.load(settings.policy) if settings.policy else None,
        }
        self._transport = transport
        self.client = AsyncGuardClient(settings.url, transport=transport, **self._client_args)
        self._readiness: tuple[float, Readiness] | None = None

    async def aclose(self) -> None:
        await self.client.aclose()

    @staticmethod
    def prepare(messages: Sequence[Any], param: str) -> GuardInput:
        """Validate and render one conversation; bad input is a 400 naming `param`."""
        try:
            return prepare_input(messages)
        except GuardInputError as exc:
            raise InvalidRequest(f"Invalid value for {param!r}: {exc}", param=param) from None

    async def check(self, inputs: Sequence[GuardInput], endpoint: str, params: Sequence[str]) -> list[Verdict]:
        """One verdict per input, in order: cached ones at once, the rest from the guard concurrently
        (each distinct prompt once). An input the guard refuses as given is a 400 naming its param."""
        keys = [CacheKey(self.model, item.mode, item.prompt, self._option_key) for item in inputs]
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
            verdicts = await self.client.check_many(
                list(missing.values()),  # prepared once by the endpoint: checked as they are
                concurrency=self.settings.concurrency,
                **self._options,
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
            result = Readiness(True, f"the guard at {self.settings.url} serves {info.model!r}")
        except (GuardError, TimeoutError) as exc:
            result = Readiness(False, f"the guard at {self.settings.url} is not ready: {exc or 'timed out'}")
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
        """Ready when every guard model answers; the detail names the first that does not."""
        results = [await guard.readiness() for guard in self]
        failed = [result for result in results if not result.ready]
        return failed[0] if failed else Readiness(True, "; ".join(result.detail for result in results))

    async def aclose(self) -> None:
        for guard in self:
            await guard.aclose()
