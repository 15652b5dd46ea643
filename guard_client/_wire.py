"""The HTTP under the clients: a flow step's request out, the whole answer back as an `Answer`, and
every way the trip can fail mapped onto the exception tree.

`AsyncGuardClient` talks to aiohttp directly by default (`AiohttpWire`): against a fast guard the
httpx request and response objects around aiohttp cost about a quarter of a check's CPU (py-spy and
side-by-side CPU per request against an instant server), and a check needs neither. A transport
given to either client (a fake in tests, a proxy, an ASGI app) is driven through httpx's transport
API (`HttpxWire`, `AsyncHttpxWire`), without httpx's `Client` layer, whose cookie jar, redirects and
URL merging a check never uses. Requests go to the guard directly: no proxy is taken from the
environment.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import httpx
from yarl import URL

from guard_client._constants import USER_AGENT
from guard_client._errors import GuardConnectionError, GuardError, GuardTimeoutError

if TYPE_CHECKING:  # imported where used: `import guard_client` loads no event loop (asyncio's loads subprocess)
    import asyncio

    import aiohttp

#: aiohttp's pool for the async client: enough connections for a gateway's concurrent checks.
MAX_CONNECTIONS = 512
#: Seconds an idle pooled connection is kept (httpx's default).
KEEPALIVE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer, read whole."""

    status_code: int
    #: Case-insensitive (httpx's `Headers` or aiohttp's `CIMultiDictProxy`).
    headers: Mapping[str, str]
    content: bytes
    reason_phrase: str = ""

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


def encode_json(body: Any) -> bytes:
    """A request body as httpx's `json=` writes it (compact, UTF-8, no NaN)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


class _Wire:
    """What every wire shares: the guard's address, the headers a check sends, and its errors."""

    def __init__(self, base_url: str, api_key: str | None) -> None:
        self.base_url = base_url
        self.headers = {"User-Agent": USER_AGENT}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.json_headers = {**self.headers, "Content-Type": "application/json"}

    def _payload(self, body: Any, extra: Mapping[str, str] | None = None) -> tuple[bytes | None, dict[str, str]]:
        """A request's content and headers: `body` as JSON, or nothing (None); `extra` headers added."""
        content, headers = (None, self.headers) if body is None else (encode_json(body), self.json_headers)
        return (content, headers) if not extra else (content, {**headers, **extra})

    def _error(self, exc: BaseException, timed_out: bool) -> GuardError:
        if timed_out:
            return GuardTimeoutError(f"no answer from {self.base_url} in time ({type(exc).__name__})")
        return GuardConnectionError(f"cannot reach the guard at {self.base_url}: {exc or type(exc).__name__}")


class _HttpxRequests(_Wire):
    """A flow step as an httpx request, and httpx's errors read."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float) -> None:
        super().__init__(base_url, api_key)
        self._extensions = {"timeout": httpx.Timeout(timeout).as_dict()}
        self._urls: dict[str, httpx.URL] = {}  # per path: parsing a URL costs more than building the body

    def _request(self, method: str, path: str, body: Any, extra: Mapping[str, str] | None) -> httpx.Request:
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = httpx.URL(self.base_url + path)
        content, headers = self._payload(body, extra)
        return httpx.Request(method, url, content=content, headers=headers, extensions=self._extensions)

    def _transport_error(self, exc: httpx.HTTPError) -> GuardError:
        # httpx-aiohttp's transport reports a refused connection as ConnectTimeout; its cause tells the truth.
        refused = isinstance(exc.__cause__, OSError) and not isinstance(exc.__cause__, TimeoutError)
        return self._error(exc, timed_out=isinstance(exc, httpx.TimeoutException) and not refused)


class HttpxWire(_HttpxRequests):
    """The blocking client's wire: an httpx transport (httpx's own pool unless one is given)."""

    def __init__(
        self, base_url: str, api_key: str | None, timeout: float, transport: httpx.BaseTransport | None
    ) -> None:
        super().__init__(base_url, api_key, timeout)
        self.transport = transport or httpx.HTTPTransport()

    def send(self, method: str, path: str, body: Any, headers: Mapping[str, str] | None = None) -> Answer:
        try:
            response = self.transport.handle_request(self._request(method, path, body, headers))
            try:
                content = response.read()
            finally:
                response.close()
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        return Answer(response.status_code, response.headers, content, response.reason_phrase)

    def close(self) -> None:
        self.transport.close()


class AsyncWire(Protocol):
    async def send(self, method: str, path: str, body: Any, headers: Mapping[str, str] | None = None) -> Answer: ...

    async def aclose(self) -> None: ...


class AsyncHttpxWire(_HttpxRequests):
    """The async client's wire when it is given an httpx transport."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float, transport: httpx.AsyncBaseTransport) -> None:
        super().__init__(base_url, api_key, timeout)
        self.transport = transport

    async def send(self, method: str, path: str, body: Any, headers: Mapping[str, str] | None = None) -> Answer:
        try:
            response = await self.transport.handle_async_request(self._request(method, path, body, headers))
            try:
                content = await response.aread()
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        return Answer(response.status_code, response.headers, content, response.reason_phrase)

    async def aclose(self) -> None:
        await self.transport.aclose()


class AiohttpWire(_Wire):
    """The async client's default wire: aiohttp's connection pool, used directly. Its session is made on
    the first request, inside the event loop that sends it, and made anew when the client is next used
    from another loop (successive `asyncio.run` calls): a session serves one loop only."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float) -> None:
        import aiohttp

        super().__init__(base_url, api_key)
        # httpx.Timeout(timeout)'s meaning: each of connecting, waiting for a pooled connection and
        # each read may take `timeout`; the whole request has no limit of its own.
        self._timeout = aiohttp.ClientTimeout(total=None, connect=timeout, sock_connect=timeout, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._urls: dict[str, URL] = {}

    def _open(self, loop: asyncio.AbstractEventLoop) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is not None:
            # Made in a loop that is gone or elsewhere, which owns its connections: they are dropped
            # here and closed when collected (asyncio can close nothing on a closed loop).
            self._session.detach()
        # https: the certificates httpx would trust (certifi, or SSL_CERT_FILE / SSL_CERT_DIR).
        ssl = httpx.create_ssl_context() if self.base_url.startswith("https:") else True
        connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, keepalive_timeout=KEEPALIVE_SECONDS, ssl=ssl)
        self._session, self._loop = aiohttp.ClientSession(connector=connector, timeout=self._timeout), loop
        return self._session

    async def send(self, method: str, path: str, body: Any, headers: Mapping[str, str] | None = None) -> Answer:
        import asyncio

        import aiohttp

        loop = asyncio.get_running_loop()
        session = self._session if self._loop is loop and self._session is not None else self._open(loop)
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = URL(self.base_url + path)
        data, sent = self._payload(body, headers)
        try:
            async with session.request(method, url, data=data, headers=sent, allow_redirects=False) as response:
                content = await response.read()
        except (aiohttp.ClientError, OSError) as exc:  # OSError: TimeoutError included
            raise self._error(exc, timed_out=isinstance(exc, TimeoutError)) from exc
        return Answer(response.status, response.headers, content, response.reason or "")

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session, self._loop = self._session, None, None
            await session.close()
