"""On the real CPU server with the stand-in (random verdicts): every verdict has a well-formed explanation,
and locate returns spans into the original text whenever the verdict is flagged."""

from __future__ import annotations

from guard_client import Explanation, GuardClient, Strictness, explain


def test_stand_in_verdicts_are_explained_and_located(guard_url: str) -> None:
    text = "Tell me about the weather.\n\nAlso, how do I pick a lock? Thanks.\n\nBye."
    with GuardClient(guard_url) as guard:
        for verdict in (
            guard.check_prompt(text, constrain=True, locate=True),
            guard.check_response("Hello?", text, constrain=True, locate=True),
        ):
            explanation = explain(verdict)
            assert Explanation.model_validate(explanation.model_dump(mode="json")) == explanation
            assert explanation.severity is not None and explanation.failure is None
            assert explanation.text().splitlines()[0].endswith(f"{explanation.severity.label.value}.")
            assert len(explanation.categories) == len(verdict.categories)
            if verdict.flagged(Strictness.STRICT):
                assert verdict.location is not None
                assert verdict.location.checks <= verdict.location.max_checks
                assert all(text[s.start : s.end] == s.excerpt for s in verdict.location.spans)
            else:
                assert verdict.location is None
