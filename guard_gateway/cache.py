"""An in-process LRU of verdicts, bounded in size and age.

Greedy decoding makes a verdict a function of the rendered guard prompt, so the key is the served
model, the mode, the rendered prompt (`prepare_input(messages).prompt`) and the check options.
Only decided verdicts are stored: a guard failure is retried by the next request.
"""

from __future__ import annotations

from dataclasses import dataclass

from cachetools import TLRUCache

from guard_client import GuardMode, Verdict


@dataclass(frozen=True)
class CacheKey:
    model: str
    mode: GuardMode
    prompt: str
    options: tuple[tuple[str, bool], ...]


class VerdictCache:
    def __init__(self, max_entries: int, ttl_seconds: float) -> None:
        # TLRU: least-recently-used eviction when full, and each entry expires ttl_seconds after it was stored.
        self._entries: TLRUCache[CacheKey, Verdict] = TLRUCache(
            maxsize=max_entries, ttu=lambda _key, _value, now: now + ttl_seconds
        )

    def get(self, key: CacheKey) -> Verdict | None:
        return self._entries.get(key)

    def put(self, key: CacheKey, verdict: Verdict) -> None:
        if verdict.decided:
            self._entries[key] = verdict

    def __len__(self) -> int:
        return len(self._entries)
