"""Base model against adapter on held-out rows, through the real serving path: one vLLM server serving
the base and the adapter (multi-LoRA), the client rendering each check with the policy and parsing the
answer. Scoring reuses `guard_eval`'s confusion counts (precision, recall, F1 and rates in percent)."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import guard_client
from guard_client import GuardClient, Safety, Strictness, Verdict
from guard_eval import Confusion
from guard_tune._data import LabelledRow
from guard_tune._policy import TunePolicy

UNDECIDED = "undecided"
SEVERITIES = (*(s.value for s in Safety), UNDECIDED)
EVAL_CONCURRENCY = 8


def predicted_labels(verdict: Verdict) -> list[str]:
    """Every category name the answer gave: the policy's, and (before the client knows custom policies) the
    names it kept as unmapped."""
    return [str(getattr(c, "value", c)) for c in verdict.categories] + list(verdict.unmapped_labels)


def score(rows: Sequence[LabelledRow], verdicts: Sequence[Verdict], policy: TunePolicy) -> dict[str, Any]:
    """Accuracy of the verdict word and of the whole answer, per-category P/R/F1, the false-positive rate on
    Safe rows and the confusion of severities. An undecided verdict counts as wrong (and as flagged)."""
    pairs = list(zip(rows, verdicts, strict=True))
    n = len(pairs)
    right = sum(v.safety is r.safety for r, v in pairs)
    exact = sum(
        v.safety is r.safety
        and sorted(predicted_labels(v)) == sorted(r.categories)
        and (r.refusal is None or v.refusal == r.refusal)
        for r, v in pairs
    )
    severity: dict[str, dict[str, int]] = {
        gold.value: {p: 0 for p in SEVERITIES} for gold in Safety if any(r.safety is gold for r in rows)
    }
    for r, v in pairs:
        severity[r.safety.value][v.safety.value if v.safety else UNDECIDED] += 1
    safe_rows = Confusion.from_pairs((False, v.flagged(Strictness.STRICT)) for r, v in pairs if r.safety is Safety.SAFE)
    return {
        "rows": n,
        "decided": sum(v.decided for _, v in pairs),
        "accuracy": right / n if n else None,
        "exact_accuracy": exact / n if n else None,
        "flagged": Confusion.from_pairs(
            (r.safety is not Safety.SAFE, v.flagged(Strictness.STRICT)) for r, v in pairs
        ).as_dict(),
        "per_category": {
            name: Confusion.from_pairs((name in r.categories, name in predicted_labels(v)) for r, v in pairs).as_dict()
            for name in policy.categories
        },
        "safe_false_positive_rate": safe_rows.false_positive_rate,
        "severity_confusion": severity,
        "errors": dict(Counter(v.error_type for _, v in pairs if not v.decided)),
    }


def check_rows(
    url: str, model: str, rows: Sequence[LabelledRow], policy: TunePolicy, constrain: bool = True
) -> list[Verdict]:
    """Each row through the client exactly as a user checks it against `model` on `url`: the client renders the
    policy's categories and, constrained, builds the grammar from its names, so the server can only write this
    policy's labels (the random base then answers at chance instead of not at all)."""
    with GuardClient(url, model=model, timeout=300.0, policy=policy.policy) as client:
        return client.check_many([list(r.messages) for r in rows], concurrency=EVAL_CONCURRENCY, constrain=constrain)


def serve_and_compare(
    base: str, adapter_name: str, adapter_dir: Path, rows: Sequence[LabelledRow], policy: TunePolicy
) -> dict[str, Any]:
    """Start vLLM with the base and the adapter, check every row against both, stop it; the report."""
    from deploy.launcher import GuardServer, default_profile_name, free_port
    from deploy.profiles import load_profile

    profile = load_profile(default_profile_name())
    server = GuardServer(
        profile,
        model=base,
        host="127.0.0.1",
        port=free_port(),
        env={"VLLM_CPU_KVCACHE_SPACE": "1"},
        adapter_specs=[f"{adapter_name}={adapter_dir}"],  # the launcher checks it and derives the LoRA flags
    )
    print(f"evaluating on {len(rows)} held-out rows: starting vLLM with the base and the adapter...", file=sys.stderr)
    with server:
        return compare(server.url, profile.served_model_name, adapter_name, rows, policy)


def compare(
    url: str, base_model: str, adapter_model: str, rows: Sequence[LabelledRow], policy: TunePolicy
) -> dict[str, Any]:
    info = GuardClient(url, model=base_model).server_info()
    results: dict[str, Any] = {
        "url": url,
        "standin": info.is_standin,
        "models": {"base": base_model, "adapter": adapter_model},
    }
    verdicts = {side: check_rows(url, name, rows, policy) for side, name in results["models"].items()}
    for side in ("base", "adapter"):
        results[side] = score(rows, verdicts[side], policy)
    results["predictions"] = [
        {
            "row": r.row,
            "safety": r.safety.value,
            "categories": list(r.categories),
            "refusal": r.refusal,
            **{f"{side}_raw": verdicts[side][i].raw or verdicts[side][i].error for side in ("base", "adapter")},
        }
        for i, r in enumerate(rows)
    ]
    if info.is_standin:
        results["warning"] = (
            f"{guard_client.STANDIN_WARNING}: the base's verdicts are random, and the adapter's numbers measure "
            "what it learnt of this data on random weights, not a real guard"
        )
    return results
