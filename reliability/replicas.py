"""Two guard replicas behind the real vllm-router (issue 24): one killed under load, one slow, one restarted.

The replicas are the marked fake guard over HTTP (every checked text carries 'UNSAFE', so Safe is never the
guard's decision); the router is `vllm-router` at its pinned version, started with the command
`python -m deploy serve --replicas N` uses (`deploy.replicas.router_command`); the gateway runs in process,
pointed at the router, as `make serve` points it. What each scenario counts: checks asked, requests each
replica received (its record), the router's own retries (its Prometheus counters) and so the client's.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import NamedTuple

import httpx
from prometheus_client.parser import text_string_to_metric_families

from deploy.replicas import router_command
from reliability.faults import UNSAFE, Run, _serves, _wait
from reliability.report import Outcome, Scenario
from reliability.services import InProcessGateway, Service, fake_guard, free_port

INTERFACE = "gateway POST /v1/moderations via vllm-router"
#: The router probes each replica this often in the suite (make serve uses deploy.replicas' default).
HEALTH_INTERVAL_S = 1


def router(workdir: Path, worker_urls: list[str], policy: str = "round_robin") -> Service:
    port, metrics = free_port(), free_port()
    argv = router_command(worker_urls, host="127.0.0.1", port=port, policy=policy, metrics_port=metrics)
    at = argv.index("--health-check-interval-secs")
    argv[at + 1] = str(HEALTH_INTERVAL_S)
    argv[0] = sys.executable
    service = Service("vllm-router", argv, port, "/health", workdir / f"router-{port}.log")
    service.metrics_url = f"http://127.0.0.1:{metrics}/metrics"  # type: ignore[attr-defined]
    return service


def router_counter(service: Service, fragment: str) -> float:
    """The sum of the router's counters whose name contains `fragment` (e.g. 'retr')."""
    try:
        text = httpx.get(service.metrics_url, timeout=5).text  # type: ignore[attr-defined]
    except httpx.HTTPError:
        return 0.0
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if fragment in sample.name and not sample.name.endswith(("_created", "_bucket", "_sum", "_count"))
    )


def received(record: Path) -> int:
    """Checks a replica received (its record of every request)."""
    if not record.is_file():
        return 0
    return sum(json.loads(line)["path"] == "/v1/chat/completions" for line in record.read_text().splitlines())


class Load:
    """What the batches of one scenario got back: latencies (s) and HTTP statuses."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.first_failure = ""

    def failed(self) -> int:
        return sum(count for status, count in self.statuses.items() if status != 200)

    def summary(self) -> str:
        ordered = sorted(self.latencies) or [0.0]
        statuses = ", ".join(f"{count} x {status}" for status, count in sorted(self.statuses.items()))
        failure = f" (first: {self.first_failure})" if self.first_failure else ""
        return f"answers {statuses}{failure}; p50 {ordered[len(ordered) // 2]:.2f} s, max {ordered[-1]:.2f} s"


def _load(run: Run, s: Scenario, gateway_url: str, batches: int, prefix: str, load: Load) -> None:
    """`batches` moderation batches of 4 marked texts, 6 at a time; each answer recorded in the report and `load`."""

    def one(i: int) -> None:
        body = {"input": [UNSAFE.format(f"{prefix}{i}.{j}") for j in range(4)]}
        started = time.monotonic()
        try:
            response = httpx.post(gateway_url + "/v1/moderations", json=body, timeout=30)
        except httpx.TimeoutException:
            run.report.tally(INTERFACE).add(Outcome.HANG, "moderation batch")
            return
        load.latencies.append(time.monotonic() - started)
        load.statuses[response.status_code] = load.statuses.get(response.status_code, 0) + 1
        if response.status_code != 200 and not load.first_failure:
            load.first_failure = response.text[:200]
        run.record_http(INTERFACE, "/v1/moderations", response, s)
        if response.status_code == 200 and len(response.json()["results"]) != 4:
            s.lost += 4

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(one, range(batches)))
    s.items += batches * 4


def _at_least(record: Path, count: int) -> bool:
    return received(record) >= count


def _when(condition: Callable[[], bool], action: Callable[[], object], timeout: float = 30) -> threading.Thread:
    """Run `action` in a thread as soon as `condition` holds (or after `timeout`)."""

    def later() -> None:
        _wait(condition, timeout)
        action()

    thread = threading.Thread(target=later, daemon=True)
    thread.start()
    return thread


class BehindRouter(NamedTuple):
    replicas: list[Service]
    #: What each replica received (its --record file).
    records: list[Path]
    router: Service
    gateway: InProcessGateway


@contextmanager
def _behind_router(run: Run, delays: tuple[float, float], policy: str = "round_robin") -> Iterator[BehindRouter]:
    """Two fake replicas answering after `delays`, vllm-router (`policy`) in front of them and the gateway in
    front of it, its cache off so that every check reaches a replica; all stopped on leaving."""
    records = [run.workdir / f"replica-{time.monotonic_ns()}-{i}.jsonl" for i in range(2)]
    replicas = [fake_guard(run.workdir, delay=d, slots=4, record=r) for d, r in zip(delays, records, strict=True)]
    started = [replica.start() for replica in replicas]
    front = router(run.workdir, [replica.url for replica in started], policy=policy).start()
    gateway = InProcessGateway(run.workdir, front.url, **{"cache.enabled": "false"}).start()
    with run.services(*started, front, gateway):
        yield BehindRouter(started, records, front, gateway)


def replica_killed_under_load(run: Run) -> None:
    batches = 20 if run.quick else 80
    with (
        run.scenario(
            "one of two replicas killed under load",
            INTERFACE,
            "SIGKILL of replica 1 of 2 behind vllm-router (round_robin) with batches in flight; restarted after",
            "every batch 200 and all flagged (the router's and the client's retries reach replica 2); no 503; "
            "replica 1 takes checks again once back, nothing else restarted",
        ) as s,
        _behind_router(run, (0.05, 0.05)) as ((one, _), records, front, gateway),
    ):
        killer = _when(lambda: received(records[0]) >= 8, one.kill)  # mid-load, checks in flight on it
        load = Load()
        _load(run, s, gateway.url, batches, "kill", load)
        killer.join()
        asked, got = s.items, [received(r) for r in records]
        retries = router_counter(front, "retr")
        one.start()  # the same port: the router's health checks bring it back
        before = received(records[0])
        s.recovered = _wait(lambda: _serves(gateway.url) and received(records[0]) > before, 45)
        s.observed = (
            f"{asked} checks: replica 1 received {got[0]} (killed), replica 2 {got[1]}; router retries "
            f"{retries:.0f}, so {max(sum(got) - asked, 0)} requests beyond one per check; "
            f"{load.summary()}; replica 1 routed to again: {s.recovered}"
        )
        s.ok = s.recovered and load.failed() == 0


def replica_slow(run: Run) -> None:
    batches = 10 if run.quick else 40
    with (
        run.scenario(
            "one of two replicas slow",
            INTERFACE,
            "replica 1 answers in 1.5 s, replica 2 in 0.05 s, behind vllm-router (cache_aware: load-aware)",
            "every batch 200 and all flagged within guard.timeout; the slow replica costs time, never a verdict",
        ) as s,
        _behind_router(run, (1.5, 0.05), policy="cache_aware") as (_, records, _, gateway),
    ):
        load = Load()
        _load(run, s, gateway.url, batches, "slow", load)
        got = [received(r) for r in records]
        s.recovered = True  # nothing failed to recover from
        s.observed = f"{s.items} checks: slow replica received {got[0]}, fast {got[1]}; {load.summary()}"
        s.ok = load.failed() == 0 and len(load.latencies) == batches


def replica_restarted(run: Run) -> None:
    rounds = 3 if run.quick else 6
    with (
        run.scenario(
            "one of two replicas restarted under load",
            INTERFACE,
            "replica 1 stopped (SIGTERM) and started again, twice, while batches keep coming",
            "every batch 200 and all flagged; replica 1 back in rotation after each restart; no 503",
        ) as s,
        _behind_router(run, (0.05, 0.05)) as ((one, _), records, front, gateway),
    ):
        back: list[bool] = []
        load = Load()

        def restart() -> None:
            one.stop()
            time.sleep(1.0)
            one.start()

        for turn in range(2):
            before = received(records[0])
            restarter = _when(partial(_at_least, records[0], before + 4), restart)
            for r in range(rounds):
                _load(run, s, gateway.url, 6, f"restart{turn}.{r}.", load)
            restarter.join()
            before = received(records[0])

            def routed_again(turn: int = turn, before: int = before) -> bool:
                _load(run, s, gateway.url, 2, f"probe{turn}.", load)
                return received(records[0]) > before

            back.append(_wait(routed_again, 45))
        s.recovered = all(back)
        s.observed = (
            f"{s.items} checks; replica 1 received {received(records[0])}, replica 2 {received(records[1])}; "
            f"router retries {router_counter(front, 'retr'):.0f}; back in rotation after each restart: {back}; "
            f"{load.summary()}"
        )
        s.ok = s.recovered and load.failed() == 0


SCENARIOS = [replica_killed_under_load, replica_slow, replica_restarted]


def run_replicas(run: Run) -> None:
    for scenario in SCENARIOS:
        scenario(run)
