"""Client bearer keys. Routes under `protected` need one when keys are configured; /health, /ready
and /metrics are exempt (probes and Prometheus scrape without a key; none of them carries content)."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from guard_gateway.errors import AuthenticationFailed
from guard_gateway.state import gateway_state


def check_key(keys: frozenset[str], header: str | None) -> None:
    if not keys:
        return
    if not header:
        raise AuthenticationFailed(
            "You didn't provide an API key: send it as 'Authorization: Bearer <key>'", code="missing_api_key"
        )
    scheme, _, token = header.partition(" ")
    token = token.strip()
    # Compare with every key in constant time, so the answer's timing says nothing about near misses.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token.encode(), key.encode())
    if scheme.lower() != "bearer" or not matched:
        raise AuthenticationFailed("Incorrect API key provided", code="invalid_api_key")


async def require_key(request: Request) -> None:
    """FastAPI dependency of every protected router."""
    check_key(gateway_state(request).api_keys, request.headers.get("authorization"))
