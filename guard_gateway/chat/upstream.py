"""The main LLM behind the chat proxy: one pooled HTTP client and the credentials it is sent, for the guarded
chat completions and the plain proxying of `GET /v1/models` and configured passthrough routes.

Credentials: the client's `Authorization` header is forwarded when `upstream.pass_client_key` is on and
the gateway checks no keys of its own (with `auth.api_keys` set, that header holds the gateway's key, which
never goes upstream); otherwise `upstream.api_key` is sent. The upstream key is sent to the upstream
only: never to the guard, never logged (headers are not logged at all).
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from guard_gateway.config import UpstreamSettings
from guard_gateway.errors import GatewayError

#: Request headers forwarded upstream besides the credentials; the rest (host, cookies, ...) stay here.
FORWARDED = ("accept", "content-type", "user-agent", "openai-organization", "openai-project")
#: Response headers of the upstream passed back (hop-by-hop and length headers are the server's own).
RETURNED = ("content-type", "x-request-id", "openai-processing-ms", "retry-after")


class UpstreamError(GatewayError):
    """The main LLM could not be reached or answered nothing usable: a gateway-to-upstream problem,
    never a guard decision."""

    status_code = 502
    type = "upstream_error"


class UpstreamTimeout(UpstreamError):
    status_code = 504


class UpstreamNotConfigured(GatewayError):
    status_code = 404

    def __init__(self) -> None:
        super().__init__(
            "This gateway has no upstream LLM configured (upstream.url); it serves moderation only",
            code="upstream_not_configured",
        )


class Upstream:
    def __init__(
        self,
        settings: UpstreamSettings,
        timeout: float,
        gateway_keys: bool,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self._forward_client_key = settings.pass_client_key and not gateway_keys
        if transport is None:
            # aiohttp's pool behind httpx's API, as the guard client uses: it answers a forwarded request a
            # millisecond or more sooner than httpcore's asyncio pool (`make bench-gateway`, streams with an
            # instant guard). No cap on connections (a stream holds one for minutes); proxies from the
            # environment (HTTPS_PROXY, NO_PROXY) are honoured, as httpx's own pool honours them.
            transport = AiohttpTransport(
                client=lambda: aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), trust_env=True)
            )
        # Requests go straight to the transport, as the guard client's do: httpx's Client layer (URL merging,
        # cookie jar, redirects) was a third of the gateway's CPU per proxied chat request, for nothing used.
        self._transport = transport
        self._base = settings.url.rstrip("/") if settings.url else None
        self._extensions = {"timeout": httpx.Timeout(timeout, connect=min(timeout, 10.0)).as_dict()}
        self._urls: dict[str, httpx.URL] = {}

    async def aclose(self) -> None:
        await self._transport.aclose()

    def _url(self, path: str, query: str) -> httpx.URL:
        if self._base is None:
            raise UpstreamNotConfigured()
        if query:
            return httpx.URL(f"{self._base}{path}?{query}")
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = httpx.URL(self._base + path)
        return url

    def headers(self, incoming: Mapping[str, str]) -> dict[str, str]:
        headers = {name: incoming[name] for name in FORWARDED if name in incoming}
        client_key = incoming.get("authorization")
        if self._forward_client_key and client_key:
            headers["authorization"] = client_key
        elif self.settings.api_key is not None:
            headers["authorization"] = "Bearer " + self.settings.api_key.get_secret_value()
        return headers

    async def open(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes | None = None, query: str = ""
    ) -> httpx.Response:
        """Send a request and return the response with its body unread (the caller closes it)."""
        request = httpx.Request(
            method, self._url(path, query), headers=headers, content=body, extensions=self._extensions
        )
        try:
            return await self._transport.handle_async_request(request)
        except httpx.TimeoutException as exc:
            if _refused(exc):
                cause = exc.__cause__
                raise UpstreamError(
                    f"The upstream LLM is unreachable: {cause!r}", code="upstream_unavailable"
                ) from None
            raise UpstreamTimeout(
                f"The upstream LLM did not answer in time: {exc!r}", code="upstream_timeout"
            ) from None
        except httpx.HTTPError as exc:
            raise UpstreamError(f"The upstream LLM is unreachable: {exc!r}", code="upstream_unavailable") from None


def _refused(exc: httpx.HTTPError) -> bool:
    """httpx-aiohttp reports every connection failure (refused, or closed by the server before it answered)
    as ConnectTimeout; its cause tells the truth: only a TimeoutError is one."""
    cause = exc.__cause__
    return cause is not None and not isinstance(cause, TimeoutError)


def returned_headers(response: httpx.Response) -> dict[str, str]:
    return {name: response.headers[name] for name in RETURNED if name in response.headers}


async def read_body(response: httpx.Response) -> bytes:
    """The upstream's whole answer as it sent it, the response closed; a read that broke off is an UpstreamError."""
    try:
        return await response.aread()
    except httpx.HTTPError as exc:
        raise UpstreamError(f"The upstream LLM's answer broke off: {exc!r}", code="upstream_disconnected") from None
    finally:
        await response.aclose()
