"""A custom policy against the real CPU server with the tiny stand-in (random weights, so its verdicts are
random): whatever it answers under constrained decoding names only the policy's labels of the mode."""

from __future__ import annotations

import asyncio

import httpx

from guard_client import AsyncGuardClient, GuardClient, GuardMode, GuardPolicy, PolicyCategory, Safety, Verdict

POLICY = GuardPolicy(
    name="acme",
    categories=(
        PolicyCategory(name="Competitor Mention", definition="Names or praises a competitor's product."),
        PolicyCategory(name="Investment Advice", modes=(GuardMode.PROMPT,), openai=("illicit",)),
    ),
)
TEXTS = [f"Tell me about product number {i}, and whether to buy shares of it." for i in range(12)]
PAIRS = [(text, f"Answer {i}: it is fine, buy BrandX.") for i, text in enumerate(TEXTS)]


class Recording(httpx.BaseTransport):
    """A real connection that records which endpoints were called."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.paths: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return self.inner.handle_request(request)


def assert_only_the_policys_labels(verdicts: list[Verdict], mode: GuardMode) -> None:
    allowed = set(POLICY.labels(mode))
    for verdict in verdicts:
        assert verdict.decided and verdict.mode is mode, verdict
        assert set(verdict.categories) <= allowed and not verdict.unmapped_labels, verdict.raw
        if verdict.safety is Safety.SAFE:
            assert verdict.categories == []


def test_constrained_custom_policy_checks_name_only_its_labels(guard_url: str) -> None:
    transport = Recording()
    with GuardClient(guard_url, policy=POLICY, transport=transport) as guard:
        assert guard.server_info().is_standin
        prompts = guard.check_many(TEXTS, constrain=True, scores=True)
        responses = guard.check_many(PAIRS, constrain=True)
        detailed = guard.check_many(TEXTS, verdict_only=True)
    assert_only_the_policys_labels(prompts, GuardMode.PROMPT)
    assert_only_the_policys_labels(responses, GuardMode.RESPONSE)
    assert all(v.scores is not None and 0 < v.scores.verdict_mass <= 1.0001 for v in prompts)
    # The server's chat template states the model's own policy: a custom one never goes through it.
    assert "/v1/chat/completions" not in transport.paths and "/v1/completions" in transport.paths
    # The random stand-in does name categories; each one it names is the policy's.
    named = {label for v in prompts + responses for label in v.categories}
    assert named and named <= set(POLICY.labels(GuardMode.PROMPT))
    for verdict in detailed:  # verdict-first: undecided when the random model puts little mass on a verdict
        assert set(verdict.categories) <= set(POLICY.labels(GuardMode.PROMPT)) and not verdict.unmapped_labels


def test_the_async_client_states_the_policy_per_call(guard_url: str) -> None:
    async def run() -> tuple[list[Verdict], list[Verdict]]:
        async with AsyncGuardClient(guard_url) as guard:
            custom = await guard.check_many(TEXTS[:6], constrain=True, policy=POLICY)
            default = await guard.check_many(TEXTS[:6], constrain=True)
        return custom, default

    custom, default = asyncio.run(run())
    assert_only_the_policys_labels(custom, GuardMode.PROMPT)
    assert all(v.decided and not v.unmapped_labels for v in default)
