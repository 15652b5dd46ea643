"""guard_gateway: the guard as an OpenAI-compatible moderation service.

A layer above `guard_client` (as vLLM's entrypoints are above its engine client): it speaks
OpenAI's `/v1/moderations`, a native `/v1/guard/checks` and LiteLLM's generic guardrail contract,
and reaches the guard only through `guard_client`'s public API.
"""

from typing import TYPE_CHECKING, Any

from guard_gateway.config import GatewayConfig, load_config

if TYPE_CHECKING:
    from guard_gateway.app import create_app

__all__ = ["GatewayConfig", "create_app", "load_config"]


def __getattr__(name: str) -> Any:
    # The web stack is imported when an app is made: the settings (the chart generator's only need) take none of it.
    if name == "create_app":
        from guard_gateway.app import create_app

        return create_app
    raise AttributeError(f"module 'guard_gateway' has no attribute {name!r}")
