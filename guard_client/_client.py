"""`GuardClient` and `AsyncGuardClient`: thin twins that drive the shared flows in `_core`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import httpx
from httpx_aiohttp import AiohttpTransport
from tenacity import AsyncRetrying, Retrying
from tqdm import tqdm

from guard_client._core import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MIN_VERDICT_MASS,
    DEFAULT_TIMEOUT,
    CheckItem,
    CheckOptions,
    Flow,
    Messages,
    Parallel,
    Request,
    ServerInfo,
    _Core,
    item_messages,
    map_transport_error,
)
from guard_client._errors import GuardError, GuardInputError
from guard_client._labels import Strictness
from guard_client._verdict import FailurePolicy, Verdict

_Result = Verdict | GuardError


def _options(scores: bool, constrain: bool, verdict_only: bool, chunk: bool) -> CheckOptions:
    if verdict_only and constrain:
        raise GuardInputError("verdict_only already constrains the verdict; constrain applies to full generation")
    return CheckOptions(scores=scores, constrain=constrain, verdict_only=verdict_only, chunk=chunk)


def _check_concurrency(concurrency: int) -> None:
    if concurrency < 1:
        raise GuardInputError("concurrency must be at least 1")


class _ClientBase:
    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        model: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        on_error: FailurePolicy | str = FailurePolicy.RAISE,
        strictness: Strictness | str = Strictness.STRICT,
        min_verdict_mass: float = DEFAULT_MIN_VERDICT_MASS,
    ) -> None:
        """
        Args:
            base_url: the guard server (default `$GUARD_URL`, else http://localhost:8000).
            api_key: sent as a bearer token (default `$GUARD_API_KEY`).
            model: the served model name (default `$GUARD_MODEL`, else `qwen3guard`).
            timeout: seconds per HTTP request.
            max_retries: retries on 408/409/429/5xx and connection errors, honouring Retry-After.
            on_error: when the guard cannot answer: `raise` (default), `fail_closed` (an undecided,
                flagged verdict) or `fail_open` (undecided, not flagged). Never a Safe verdict.
            strictness: how Controversial is read when deciding to fetch details (verdict_only).
            min_verdict_mass: verdict_only refuses to decide when the model puts less probability
                than this on the three verdict words together.
        """
        self._core = _Core(base_url, api_key, model, timeout, max_retries, on_error, min_verdict_mass, strictness)

    @property
    def base_url(self) -> str:
        return self._core.base_url

    @property
    def model(self) -> str:
        return self._core.model


class GuardClient(_ClientBase):
    """Blocking client. Thread-safe; `check_many` runs checks on a thread pool."""

    def __init__(self, base_url: str | None = None, *, transport: httpx.BaseTransport | None = None, **kwargs: Any):
        super().__init__(base_url, **kwargs)
        self._http = httpx.Client(
            base_url=self._core.base_url, headers=self._core.headers(), timeout=self._core.timeout, transport=transport
        )

    def __enter__(self) -> GuardClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def server_info(self) -> ServerInfo:
        return cast(ServerInfo, self._drive(self._core.server_info_flow()))

    def check(
        self,
        messages: Messages,
        *,
        scores: bool = False,
        constrain: bool = False,
        verdict_only: bool = False,
        chunk: bool = False,
    ) -> Verdict:
        """Check a conversation; the role of the last message picks prompt or response moderation."""
        options = _options(scores, constrain, verdict_only, chunk)
        flow = self._core.guarded_check_flow(messages, options)
        return cast(Verdict, self._drive(flow))

    def check_prompt(self, prompt: str, **options: Any) -> Verdict:
        return self.check(item_messages(prompt), **options)

    def check_response(self, prompt: str, response: str, **options: Any) -> Verdict:
        return self.check(item_messages((prompt, response)), **options)

    def check_many(
        self,
        items: Iterable[CheckItem],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        progress: bool = False,
        **options: Any,
    ) -> list[_Result]:
        """Check many items concurrently. Results keep input order; an item that fails is returned
        as its `GuardError` (or an undecided verdict under fail_open/fail_closed) and the rest go on."""
        _check_concurrency(concurrency)
        batch = list(items)

        def one(item: CheckItem) -> _Result:
            try:
                return self.check(item_messages(item), **options)
            except GuardError as exc:
                return exc

        with (
            ThreadPoolExecutor(max_workers=concurrency) as pool,
            tqdm(total=len(batch), disable=not progress, unit="check") as bar,
        ):
            futures = [pool.submit(one, item) for item in batch]
            for future in futures:
                future.add_done_callback(lambda _: bar.update())
            return [future.result() for future in futures]

    # -- driving flows -------------------------------------------------------------------------

    def _send(self, request: Request) -> Any:
        for attempt in Retrying(**self._core.retry_kwargs()):
            with attempt:
                try:
                    response = self._http.request(request.method, request.path, json=request.json)
                except httpx.HTTPError as exc:
                    raise map_transport_error(exc, self._core.base_url) from exc
                return self._core.decode(response)
        raise AssertionError("unreachable")  # pragma: no cover

    def _drive(self, flow: Any) -> Any:
        try:
            step = next(flow)
            while True:
                if isinstance(step, Parallel):
                    result: Any = self._run_parallel(step.flows)
                else:
                    try:
                        result = self._send(step)
                    except GuardError as exc:
                        step = flow.throw(exc)
                        continue
                step = flow.send(result)
        except StopIteration as stop:
            return stop.value

    def _run_parallel(self, flows: Sequence[Flow]) -> list[_Result]:
        def one(flow: Flow) -> _Result:
            try:
                return self._drive(flow)  # type: ignore[no-any-return]
            except GuardError as exc:
                return exc

        with ThreadPoolExecutor(max_workers=min(len(flows), DEFAULT_CONCURRENCY)) as pool:
            return list(pool.map(one, flows))


class AsyncGuardClient(_ClientBase):
    """asyncio client; the twin of `GuardClient` with the same methods as coroutines."""

    def __init__(
        self, base_url: str | None = None, *, transport: httpx.AsyncBaseTransport | None = None, **kwargs: Any
    ):
        super().__init__(base_url, **kwargs)
        if transport is None:
            # httpcore's asyncio pool costs more per request than the check itself at high
            # concurrency; aiohttp's pool behind the same httpx API sustains several times more.
            transport = AiohttpTransport(limits=httpx.Limits(max_connections=512, max_keepalive_connections=512))
        self._http = httpx.AsyncClient(
            base_url=self._core.base_url, headers=self._core.headers(), timeout=self._core.timeout, transport=transport
        )

    async def __aenter__(self) -> AsyncGuardClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def server_info(self) -> ServerInfo:
        return await self._drive(self._core.server_info_flow())  # type: ignore[no-any-return]

    async def check(
        self,
        messages: Messages,
        *,
        scores: bool = False,
        constrain: bool = False,
        verdict_only: bool = False,
        chunk: bool = False,
    ) -> Verdict:
        options = _options(scores, constrain, verdict_only, chunk)
        flow = self._core.guarded_check_flow(messages, options)
        return await self._drive(flow)  # type: ignore[no-any-return]

    async def check_prompt(self, prompt: str, **options: Any) -> Verdict:
        return await self.check(item_messages(prompt), **options)

    async def check_response(self, prompt: str, response: str, **options: Any) -> Verdict:
        return await self.check(item_messages((prompt, response)), **options)

    async def check_many(
        self,
        items: Iterable[CheckItem],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        progress: bool = False,
        **options: Any,
    ) -> list[_Result]:
        _check_concurrency(concurrency)
        batch = list(items)
        gate = asyncio.Semaphore(concurrency)
        with tqdm(total=len(batch), disable=not progress, unit="check") as bar:

            async def one(item: CheckItem) -> _Result:
                async with gate:
                    try:
                        return await self.check(item_messages(item), **options)
                    except GuardError as exc:
                        return exc
                    finally:
                        bar.update()

            return list(await asyncio.gather(*(one(item) for item in batch)))

    async def _send(self, request: Request) -> Any:
        async for attempt in AsyncRetrying(**self._core.retry_kwargs()):
            with attempt:
                try:
                    response = await self._http.request(request.method, request.path, json=request.json)
                except httpx.HTTPError as exc:
                    raise map_transport_error(exc, self._core.base_url) from exc
                return self._core.decode(response)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _drive(self, flow: Any) -> Any:
        try:
            step = next(flow)
            while True:
                if isinstance(step, Parallel):
                    result: Any = await asyncio.gather(*(self._drive_captured(f) for f in step.flows))
                else:
                    try:
                        result = await self._send(step)
                    except GuardError as exc:
                        step = flow.throw(exc)
                        continue
                step = flow.send(result)
        except StopIteration as stop:
            return stop.value

    async def _drive_captured(self, flow: Flow) -> _Result:
        try:
            return await self._drive(flow)  # type: ignore[no-any-return]
        except GuardError as exc:
            return exc
