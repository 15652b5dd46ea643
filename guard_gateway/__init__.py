"""guard_gateway: the guard as an OpenAI-compatible moderation service.

A layer above `guard_client` (as vLLM's entrypoints are above its engine client): it speaks
OpenAI's `/v1/moderations`, a native `/v1/guard/checks` and LiteLLM's generic guardrail contract,
and reaches the guard only through `guard_client`'s public API.
"""

from guard_gateway.app import create_app
from guard_gateway.config import GatewayConfig, load_config

__all__ = ["GatewayConfig", "create_app", "load_config"]
