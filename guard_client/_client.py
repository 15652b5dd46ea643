"""`GuardClient` and `AsyncGuardClient`: thin twins that drive the shared flows in `_flows`."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, Unpack

import httpx
from tqdm import tqdm

from guard_client._constants import (
    DEFAULT_BASE_URL,
    DEFAULT_CONCURRENCY,
    DEFAULT_MIN_VERDICT_MASS,
    DEFAULT_MODEL,
    DEFAULT_TIMEOUT,
    ENV_API_KEY,
    ENV_MODEL,
    ENV_URL,
)
from guard_client._errors import GuardError, GuardInputError
from guard_client._flows import CheckFlows, CheckOptions, Flow, Parallel, Request, ServerInfo, Settings, advance
from guard_client._guard_policy import DEFAULT_POLICY, GuardPolicy
from guard_client._input import CheckItem, GuardInput, Messages, item_messages, item_mode, prepare_input
from guard_client._labels import Strictness
from guard_client._requests import VerdictTokens
from guard_client._retry import DEFAULT_MAX_RETRIES, decode_response, retry_wait
from guard_client._verdict import FailurePolicy, Verdict
from guard_client._wire import AiohttpWire, AsyncHttpxWire, AsyncWire, HttpxWire

T = TypeVar("T")


def _check_concurrency(concurrency: int) -> None:
    if concurrency < 1:
        raise GuardInputError("concurrency must be at least 1")


class _NoBar:
    """`check_many`'s bar when progress is off. `tqdm(disable=True)` still scans every live bar when it is
    created, a cost each of a gateway's many concurrent one-item `check_many` calls paid (py-spy)."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int = 1) -> None:
        return None


def _progress_bar(total: int, progress: bool) -> tqdm[Any] | _NoBar:
    return tqdm(total=total, unit="check") if progress else _NoBar()


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
        policy: GuardPolicy | None = None,
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
            policy: the policy every check states (default: the model's published one), e.g.
                `GuardPolicy.load("guard_policy.yaml")` with `model=` the adapter trained on it. A check's
                `policy=` option overrides it. With a custom policy the client renders the prompt and
                sends it to `/v1/completions`, since the server's chat template states the model's own.
        """
        if timeout <= 0:
            raise GuardInputError("timeout must be positive")
        if max_retries < 0:
            raise GuardInputError("max_retries must be zero or more")
        self.base_url = (base_url or os.environ.get(ENV_URL) or DEFAULT_BASE_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get(ENV_API_KEY)
        self.model = model or os.environ.get(ENV_MODEL) or DEFAULT_MODEL
        self.timeout = timeout
        self.max_retries = max_retries
        if policy is not None and not isinstance(policy, GuardPolicy):
            raise GuardInputError("policy must be a GuardPolicy, e.g. GuardPolicy.load('guard_policy.yaml')")
        self.policy = policy if policy is not None else DEFAULT_POLICY
        self._flows = CheckFlows(
            self.model, self.base_url, FailurePolicy(on_error), Strictness(strictness), min_verdict_mass
        )

    @property
    def on_error(self) -> FailurePolicy:
        return self._flows.on_error

    def _check_flow(self, messages: Messages | GuardInput, options: CheckOptions) -> Flow[Verdict]:
        """Prepare once (raises GuardInputError before anything is sent), then the check's flow."""
        settings = Settings.of(options)
        if not isinstance(messages, GuardInput):
            return self._flows.check(prepare_input(messages, settings.policy or self.policy), settings)
        if settings.policy is not None and settings.policy != messages.policy:
            raise GuardInputError(
                f"the input was prepared with policy {messages.policy.name!r}, not {settings.policy.name!r}: "
                "prepare it with the policy to check it with"
            )
        return self._flows.check(messages, settings)

    def _batch_failure(self, item: CheckItem, exc: GuardError) -> Verdict:
        """check_many's one shape for a failed item: an undecided verdict naming the error."""
        policy = None if isinstance(exc, GuardInputError) or self.on_error is FailurePolicy.RAISE else self.on_error
        return Verdict.from_error(item_mode(item), exc, policy)


class GuardClient(_ClientBase):
    """Blocking client. Thread-safe; `check_many` runs checks on a thread pool."""

    def __init__(
        self, base_url: str | None = None, *, transport: httpx.BaseTransport | None = None, **kwargs: Any
    ) -> None:
        super().__init__(base_url, **kwargs)
        self._wire = HttpxWire(self.base_url, self.api_key, self.timeout, transport)

    def __enter__(self) -> GuardClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._wire.close()

    def server_info(self) -> ServerInfo:
        return self._drive(self._flows.server_info())

    def verdict_tokens(self) -> VerdictTokens:
        """The verdict words' first token ids in the server's tokenizer (what `scores`/`verdict_only` use)."""
        return self._drive(self._flows.verdict_tokens())

    def check(self, messages: Messages | GuardInput, **options: Unpack[CheckOptions]) -> Verdict:
        """Check a conversation (or an input prepared with `prepare_input`); the role of the last message
        picks prompt or response moderation."""
        return self._drive(self._check_flow(messages, options))

    def check_prompt(self, prompt: str, **options: Unpack[CheckOptions]) -> Verdict:
        return self.check(item_messages(prompt), **options)

    def check_response(self, prompt: str, response: str, **options: Unpack[CheckOptions]) -> Verdict:
        return self.check(item_messages((prompt, response)), **options)

    def check_many(
        self,
        items: Iterable[CheckItem],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        progress: bool = False,
        **options: Unpack[CheckOptions],
    ) -> list[Verdict]:
        """Check many items concurrently: one `Verdict` per item, in input order, never an exception.
        An item that fails is an undecided verdict whose `error`/`error_type` say why."""
        _check_concurrency(concurrency)
        Settings.of(options)  # a bad option is the caller's error, not every item's
        batch = list(items)

        def one(item: CheckItem) -> Verdict:
            try:
                return self.check(item_messages(item), **options)
            except GuardError as exc:
                return self._batch_failure(item, exc)

        with (
            ThreadPoolExecutor(max_workers=concurrency) as pool,
            _progress_bar(len(batch), progress) as bar,
        ):
            futures = [pool.submit(one, item) for item in batch]
            for future in futures:
                future.add_done_callback(lambda _: bar.update())
            return [future.result() for future in futures]

    # -- driving flows -------------------------------------------------------------------------

    def _send(self, request: Request) -> Any:
        retries = 0
        while True:
            try:
                return self._send_once(request)
            except GuardError as exc:
                if (wait := retry_wait(exc, retries, self.max_retries)) is None:
                    raise
            retries += 1
            time.sleep(wait)

    def _send_once(self, request: Request) -> Any:
        return decode_response(self._wire.send(request.method, request.path, request.json, request.headers))

    def _drive(self, flow: Flow[T]) -> T:
        try:
            step = next(flow)
            while True:
                step = advance(flow, self._outcome(step))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def _outcome(self, step: Request | Parallel) -> Any:
        if isinstance(step, Parallel):
            return self._run_parallel(step.flows)
        try:
            return self._send(step)
        except GuardError as exc:
            return exc

    def _run_parallel(self, flows: Sequence[Flow[Verdict]]) -> list[Verdict | GuardError]:
        def one(flow: Flow[Verdict]) -> Verdict | GuardError:
            try:
                return self._drive(flow)
            except GuardError as exc:
                return exc

        with ThreadPoolExecutor(max_workers=min(len(flows), DEFAULT_CONCURRENCY)) as pool:
            return list(pool.map(one, flows))


class AsyncGuardClient(_ClientBase):
    """asyncio client; the twin of `GuardClient` with the same methods as coroutines."""

    def __init__(
        self, base_url: str | None = None, *, transport: httpx.AsyncBaseTransport | None = None, **kwargs: Any
    ) -> None:
        super().__init__(base_url, **kwargs)
        self._wire: AsyncWire = (
            AiohttpWire(self.base_url, self.api_key, self.timeout)
            if transport is None
            else AsyncHttpxWire(self.base_url, self.api_key, self.timeout, transport)
        )

    async def __aenter__(self) -> AsyncGuardClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._wire.aclose()

    async def server_info(self) -> ServerInfo:
        return await self._drive(self._flows.server_info())

    async def verdict_tokens(self) -> VerdictTokens:
        return await self._drive(self._flows.verdict_tokens())

    async def check(self, messages: Messages | GuardInput, **options: Unpack[CheckOptions]) -> Verdict:
        return await self._drive(self._check_flow(messages, options))

    async def check_prompt(self, prompt: str, **options: Unpack[CheckOptions]) -> Verdict:
        return await self.check(item_messages(prompt), **options)

    async def check_response(self, prompt: str, response: str, **options: Unpack[CheckOptions]) -> Verdict:
        return await self.check(item_messages((prompt, response)), **options)

    async def check_many(
        self,
        items: Iterable[CheckItem],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        progress: bool = False,
        **options: Unpack[CheckOptions],
    ) -> list[Verdict]:
        _check_concurrency(concurrency)
        Settings.of(options)
        import asyncio

        batch = list(items)
        gate = asyncio.Semaphore(concurrency)
        with _progress_bar(len(batch), progress) as bar:

            async def one(item: CheckItem) -> Verdict:
                async with gate:
                    try:
                        return await self.check(item_messages(item), **options)
                    except GuardError as exc:
                        return self._batch_failure(item, exc)
                    finally:
                        bar.update()

            if len(batch) == 1:  # a gateway's usual call: no task to schedule
                return [await one(batch[0])]
            return list(await asyncio.gather(*(one(item) for item in batch)))

    async def _send(self, request: Request) -> Any:
        import asyncio

        retries = 0
        while True:
            try:
                return await self._send_once(request)
            except GuardError as exc:
                if (wait := retry_wait(exc, retries, self.max_retries)) is None:
                    raise
            retries += 1
            await asyncio.sleep(wait)

    async def _send_once(self, request: Request) -> Any:
        return decode_response(await self._wire.send(request.method, request.path, request.json, request.headers))

    async def _drive(self, flow: Flow[T]) -> T:
        try:
            step = next(flow)
            while True:
                step = advance(flow, await self._outcome(step))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def _outcome(self, step: Request | Parallel) -> Any:
        import asyncio

        if isinstance(step, Parallel):
            return await asyncio.gather(*(self._drive_captured(f) for f in step.flows))
        try:
            return await self._send(step)
        except GuardError as exc:
            return exc

    async def _drive_captured(self, flow: Flow[Verdict]) -> Verdict | GuardError:
        try:
            return await self._drive(flow)
        except GuardError as exc:
            return exc
