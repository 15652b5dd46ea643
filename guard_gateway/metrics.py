"""The gateway's Prometheus metrics, on a registry per app (tests build many apps in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Guard round trips take ~10 ms on a GPU and up to seconds on a CPU stand-in.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.checks = Counter(
            "guard_gateway_checks",
            "Verdicts returned, by endpoint, mode and verdict (safe, unsafe, controversial, undecided)",
            ["endpoint", "mode", "verdict"],
            registry=r,
        )
        self.categories = Counter(
            "guard_gateway_check_categories",
            "Categories named in verdicts, by endpoint, mode and category",
            ["endpoint", "mode", "category"],
            registry=r,
        )
        self.guard_latency = Histogram(
            "guard_gateway_guard_latency_seconds",
            "Time the guard took for the checks of one request that missed the cache",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.guard_errors = Counter(
            "guard_gateway_guard_errors", "Checks the guard could not decide, by error kind", ["kind"], registry=r
        )
        self.fail_open = Counter(
            "guard_gateway_fail_open", "Undecided checks let through (fail_open)", ["endpoint"], registry=r
        )
        self.fail_closed = Counter(
            "guard_gateway_fail_closed", "Undecided checks refused with 503 (fail_closed)", ["endpoint"], registry=r
        )
        self.cache_hits = Counter("guard_gateway_cache_hits", "Verdicts served from the cache", registry=r)
        self.cache_misses = Counter("guard_gateway_cache_misses", "Verdicts the cache did not hold", registry=r)
        self.overloaded = Counter(
            "guard_gateway_overloaded", "Requests refused with 429 past limits.max_in_flight", registry=r
        )
        self.in_flight = Gauge("guard_gateway_requests_in_flight", "HTTP requests being served", registry=r)
        self.requests = Counter(
            "guard_gateway_requests", "HTTP requests answered, by route and status", ["route", "status"], registry=r
        )
