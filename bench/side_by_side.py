"""`python -m bench side-by-side` (`make bench`): where the throughput comes from, measured side by side in one run.

Same machine, same prompts (prompt moderation: ToxicChat; response moderation: BeaverTails), output
forced to the length the real model writes (9 tokens for a prompt check, 13 for a response check).
The arms, what each needs and what it sends: `ARM_SPECS` below (one table; the report reads it too).

The same run measures the machine's bf16 matrix-product rate and reports, for every arm and mode, the
FLOPs one check costs (from the model's shape and the tokens the server actually computed) and the
achieved FLOP/s as a fraction of that limit (`bench.flops`).

Servers run one at a time and are always stopped. Between runs on one server the prefix cache is
reset and re-warmed with a text outside the sample, so no run profits from an earlier one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.arms import (
    ARM_SPECS,
    ARMS,
    BASELINE,
    MERGED_TARGET,
    POLICY_ADAPTER_RANK,
    POLICY_ADAPTERS,
    POLICY_ARMS,
    Arm,
    ArmSpec,
    Driver,
    Server,
)
from bench.corpus import BEAVERTAILS, PACKAGE_DIR, TOXICCHAT, GuardItem, load_jsonl, sample
from bench.flops import (
    FLOP_FIELDS,
    ModelShape,
    measure_machine_limit,
    run_flops,
)
from bench.loops import CheckOutcome, RunResult, closed_loop
from bench.machine import machine_facts, machine_limit, model_shape
from bench.side_by_side_report import REPORT, bench_markdown, draw_bench
from bench.workload import (
    HTTP_TIMEOUT,
    REAL_OUTPUT_TOKENS,
    InstrumentedTransport,
    RssSampler,
    forced_chat_check,
    forced_completion_check,
    hit_rate,
    instrumented_check,
    prefix_cache_counters,
)
from guard_client import DEFAULT_MODEL

RESULTS_DIR = PACKAGE_DIR / "results"
__all__ = ["ARMS", "ARM_SPECS", "BASELINE", "Arm", "ArmSpec", "Driver", "Server"]
#: The public recipe's only serving flag (docs.vllm.ai recipes, Qwen3Guard-Gen).
RECIPE_MAX_MODEL_LEN = 32768
#: A concurrency-c run checks at least this many items, and 3 per slot in flight.
MIN_RUN_ITEMS = 12
STANDIN_NOTE = (
    "Model: a random-weight stand-in with the exact Qwen3Guard-Gen-0.6B architecture and tokenizer. Throughput, "
    "latency, cache and memory are real; every verdict it produced is random and meaningless."
)


@dataclass
class BenchConfig:
    model: str
    profile: str
    prompt_items: int = 48
    response_items: int = 32
    baseline_items: int = 8
    concurrency: int = 16
    sweep: tuple[int, ...] = (1, 4, 16)
    seed: int = 0
    arms: tuple[Arm, ...] = ARMS
    server_env: dict[str, str] = field(default_factory=dict)
    server_args: list[str] = field(default_factory=list)


@dataclass
class Workload:
    items: dict[str, list[GuardItem]]  # by mode
    warmup: dict[str, list[GuardItem]]  # outside the sample: warms the server and the cached head
    sources: dict[str, str]

    def for_concurrency(self, mode: str, concurrency: int) -> list[GuardItem]:
        items = self.items[mode]
        return items[: min(len(items), max(MIN_RUN_ITEMS, 3 * concurrency))]


def build_workload(config: BenchConfig) -> Workload:
    items, warmup, sources = {}, {}, {}
    for mode, path, count in (
        ("prompt", TOXICCHAT, config.prompt_items),
        ("response", BEAVERTAILS, config.response_items),
    ):
        rows = load_jsonl(path)
        chosen = sample(rows, count + 2, seed=config.seed, max_chars=2000)
        items[mode], warmup[mode] = chosen[:count], chosen[count:]
        sources[mode] = f"../shared/{path.relative_to(path.parents[3])}"
    return Workload(items, warmup, sources)


# -- servers ------------------------------------------------------------------------------------


def recipe_server(profile_name: str, model: str, port: int, env: dict[str, str]) -> Any:
    """vLLM with the public recipe's flags only; the profile lends nothing but its environment on
    the CPU (the KV cache size, which vLLM would otherwise take as most of the machine's memory)."""
    from deploy.launcher import GuardServer
    from deploy.profiles import load_profile

    class RecipeServer(GuardServer):
        def command(self) -> list[str]:
            return self.server_command(
                [
                    "--served-model-name",
                    self.profile.served_model_name,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--max-model-len",
                    str(RECIPE_MAX_MODEL_LEN),
                    "--no-enable-prefix-caching",
                ]
            )

    profile = load_profile(profile_name)
    # GuardServer applies its profile's environment; the recipe keeps only the KV cache size, not
    # the profile's CPU tuning (VLLM_CPU_NUM_OF_RESERVED_CPU).
    kv_only = {k: v for k, v in profile.env.items() if k == "VLLM_CPU_KVCACHE_SPACE"}
    return RecipeServer(profile.model_copy(update={"env": kv_only}), model=model, host="127.0.0.1", port=port, env=env)


def tuned_server(
    profile_name: str, model: str, port: int, env: dict[str, str], args: list[str], adapters: Sequence[str] = ()
) -> Any:
    from deploy.launcher import GuardServer
    from deploy.profiles import load_profile

    return GuardServer(
        load_profile(profile_name),
        model=model,
        host="127.0.0.1",
        port=port,
        env=env,
        extra_args=args,
        adapter_specs=list(adapters),
    )


@dataclass(frozen=True)
class PolicyModels:
    adapters: list[str]  # NAME=DIR
    merged: str


def build_policy_models(model_path: str, work_dir: Path) -> PolicyModels:
    """The custom-policy arms' models: two random adapters for the served model, the first merged too."""
    from deploy.adapters import build_random_adapter, merge_adapter
    from guard_client import STANDIN_MARKER
    from guard_tune.examples import ACME_POLICY

    specs = []
    for seed, name in enumerate(POLICY_ADAPTERS, start=1):
        out = build_random_adapter(model_path, work_dir / name, ACME_POLICY, rank=POLICY_ADAPTER_RANK, seed=seed)
        specs.append(f"{name}={out}")
    # A merged stand-in is a stand-in: its directory name carries the marker the client and launcher look for.
    merged = work_dir / f"{STANDIN_MARKER if STANDIN_MARKER in model_path else 'model'}-{POLICY_ADAPTERS[0]}-merged"
    merge_adapter(work_dir / POLICY_ADAPTERS[0], merged, base_model=model_path)
    return PolicyModels(specs, str(merged))


# -- runs ---------------------------------------------------------------------------------------


class ServerSession:
    """Timed runs against one started server, each from a freshly reset, re-warmed prefix cache."""

    def __init__(self, url: str, workload: Workload, standin: bool) -> None:
        self.url = url
        self.workload = workload
        self.standin = standin  # random weights: constrained answers are narrowed to one category

    async def _reset_and_warm(self, http: httpx.AsyncClient, mode: str) -> None:
        reply = await http.post("/reset_prefix_cache")
        if reply.status_code not in (200, 404):  # 404: caching off or dev routes absent
            reply.raise_for_status()
        for item in self.workload.warmup[mode]:
            await forced_chat_check(http, item, REAL_OUTPUT_TOKENS[mode])

    async def measured(self, http: httpx.AsyncClient, mode: str, runner: Any, fresh: bool = True) -> dict[str, Any]:
        if fresh:
            await self._reset_and_warm(http, mode)
        before = await prefix_cache_counters(http)
        result: RunResult = await runner()
        after = await prefix_cache_counters(http)
        rate = hit_rate(before, after)
        return {"mode": mode, **result.to_json(), "prefix_cache_hit_rate": None if rate is None else round(rate, 4)}

    async def forced_sweep(self, sweep: Sequence[int], models: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Forced-length chat checks at every level of `sweep`; item i asks for models[i % len(models)]."""
        runs = []
        async with httpx.AsyncClient(base_url=self.url, timeout=HTTP_TIMEOUT, limits=_limits()) as http:
            for mode in ("prompt", "response"):
                tokens = REAL_OUTPUT_TOKENS[mode]
                for concurrency in sweep:
                    items = self.workload.for_concurrency(mode, concurrency)
                    served = {item: models[i % len(models)] for i, item in enumerate(items)} if models else {}

                    async def runner(
                        items: list[GuardItem] = items,
                        c: int = concurrency,
                        n: int = tokens,
                        served: dict[GuardItem, str] = served,
                    ) -> RunResult:
                        async def check(checked: GuardItem) -> CheckOutcome:
                            return await forced_chat_check(http, checked, n, served.get(checked, DEFAULT_MODEL))

                        return await closed_loop(items, check, c)

                    run = await self.measured(http, mode, runner)
                    asked = f" to {', '.join(models)} in turn" if models else ""
                    runs.append({**run, "sent": f"chat{asked}, output forced to {tokens} tokens"})
                    _progress(run)
        return runs

    async def decode_share_runs(self, concurrency: int) -> list[dict[str, Any]]:
        """The client's rendered prompts as raw completions: the whole answer, then the verdict token
        alone on a fresh cache, then the verdict token again with those prompts already cached."""
        from guard_client import render_guard_prompt

        runs = []
        async with httpx.AsyncClient(base_url=self.url, timeout=HTTP_TIMEOUT, limits=_limits()) as http:

            def runner(items: list[GuardItem], texts: dict[GuardItem, str], tokens: int) -> Any:
                async def run() -> RunResult:
                    check = lambda item: forced_completion_check(http, texts[item], tokens)  # noqa: E731
                    return await closed_loop(items, check, concurrency)

                return run

            for mode in ("prompt", "response"):
                items = self.workload.for_concurrency(mode, concurrency)
                prompts = {item: render_guard_prompt(item.messages()) for item in items}
                verdict = {item: prompt + "Safety:" for item, prompt in prompts.items()}
                answer = REAL_OUTPUT_TOKENS[mode]
                for variant, texts, tokens, fresh, sent in (
                    ("answer", prompts, answer, True, f"completions, output forced to {answer} tokens"),
                    ("verdict-token", verdict, 1, True, "completions of the prompt + 'Safety:', 1 token"),
                    ("verdict-token-cached", verdict, 1, False, "the same again, the prompts already in the cache"),
                ):
                    run = await self.measured(http, mode, runner(items, texts, tokens), fresh=fresh)
                    runs.append({**run, "variant": variant, "sent": sent})
                    _progress(run)
        return runs

    async def client_runs(self, kind: Arm, sweep: Sequence[int]) -> list[dict[str, Any]]:
        from guard_client import AsyncGuardClient, CheckOptions, Safety

        transport = InstrumentedTransport()
        runs = []
        async with (
            httpx.AsyncClient(base_url=self.url, timeout=HTTP_TIMEOUT, limits=_limits()) as http,
            AsyncGuardClient(
                self.url, transport=transport, min_verdict_mass=0, timeout=HTTP_TIMEOUT, max_retries=0
            ) as client,
        ):
            tokens = (await client.verdict_tokens()).ids
            verdict_first = Arm(kind) is Arm.VERDICT_FIRST
            options = CheckOptions(verdict_only=True) if verdict_first else CheckOptions(constrain=True)
            if self.standin:
                # Random weights pick among the allowed tokens at random and tend to write three long
                # category names (30+ tokens); the real model names one (9-13 tokens): what it costs.
                options["max_categories"] = 1

            async def check(item: GuardItem) -> CheckOutcome:
                pin = None
                if verdict_first:
                    pin = tokens[Safety.UNSAFE] if item.harmful else tokens[Safety.SAFE]
                return await instrumented_check(client, item, pin, **options)

            for mode in ("prompt", "response"):
                for item in self.workload.warmup[mode]:  # also loads the client's server facts and token ids
                    await check(item)
                for concurrency in sweep:
                    items = self.workload.for_concurrency(mode, concurrency)

                    async def runner(items: list[GuardItem] = items, c: int = concurrency) -> RunResult:
                        return await closed_loop(items, check, c)

                    run = await self.measured(http, mode, runner)
                    harmful = sum(item.harmful for item in items)
                    narrowed = " narrowed to one category" if self.standin else ""
                    if verdict_first:
                        sent = (
                            "completions, 1 output token (verdict word); then a completion continuing the prompt "
                            f"after the verdict word, under the client's category grammar{narrowed}, for the "
                            f"{harmful}/{len(items)} items labelled harmful"
                        )
                    else:
                        sent = f"chat via the client, constrain=True: the client's verdict grammar{narrowed}"
                    runs.append({**run, "sent": sent, "followups": harmful if verdict_first else None})
                    _progress(run)
        return runs


def _limits() -> httpx.Limits:
    return httpx.Limits(max_connections=None, max_keepalive_connections=256)


def _progress(run: dict[str, Any]) -> None:
    print(
        f"    {run['mode']:<8} c={run['concurrency']:<3} {run['checks_per_s']:6.2f} checks/s "
        f"p50 {run['latency_p50_s']:.2f} s p95 {run['latency_p95_s']:.2f} s "
        f"hit {run['prefix_cache_hit_rate']} errors {run['errors']}",
        file=sys.stderr,
        flush=True,
    )


# -- arms ---------------------------------------------------------------------------------------


def run_transformers(config: BenchConfig, model_path: str, workload: Workload) -> dict[str, Any]:
    runs = []
    sampler = RssSampler()
    with sampler, tempfile.TemporaryDirectory() as tmp:
        for mode in ("prompt", "response"):
            items = workload.items[mode][: config.baseline_items]
            checks = [{"messages": i.messages(), "output_tokens": REAL_OUTPUT_TOKENS[mode]} for i in items]
            warm = [
                {"messages": i.messages(), "output_tokens": REAL_OUTPUT_TOKENS[mode]} for i in workload.warmup[mode]
            ]
            spec, out = Path(tmp) / f"{mode}.json", Path(tmp) / f"{mode}-out.json"
            # The warm-up items lead and are dropped: the first generate() pays one-off costs.
            spec.write_text(json.dumps({"model": model_path, "checks": warm[:1] + checks, "warmup": 0}))
            subprocess.run([sys.executable, "-m", "bench.baseline", str(spec), str(out)], check=True)
            raw = json.loads(out.read_text())
            timed = raw["checks"][1:]
            wall = sum(c["latency_s"] for c in timed)
            result = RunResult(
                len(timed),
                1,
                wall,
                [CheckOutcome(c["latency_s"], c["prompt_tokens"], c["output_tokens"]) for c in timed],
            )
            run = {
                "mode": mode,
                **result.to_json(),
                "prefix_cache_hit_rate": None,
                "sent": f"generate(), min_new_tokens = max_new_tokens = {REAL_OUTPUT_TOKENS[mode]}",
                "device": raw["device"],
                "torch_threads": raw["torch_threads"],
                "load_s": round(raw["load_s"], 1),
            }
            runs.append(run)
            _progress(run)
    return {"arm": Arm.TRANSFORMERS.value, "runs": runs, "peak_rss_gib": round(sampler.peak_gib, 2), "startup_s": None}


def run_server_arm(
    name: str, server: Any, workload: Workload, jobs: list[tuple[Arm, Sequence[int]]]
) -> list[dict[str, Any]]:
    """Start `server`, run each (arm, sweep) job on it, stop it; one result per arm in jobs."""
    sampler = RssSampler()
    results = []
    with sampler, server:
        print(f"  {name}: server ready in {server.startup_seconds:.0f} s", file=sys.stderr, flush=True)
        session = ServerSession(server.url, workload, server.is_standin)
        for kind, sweep in jobs:
            print(f"  {kind}:", file=sys.stderr, flush=True)
            driver = ARM_SPECS[kind].driver
            if driver is Driver.FORCED_CHAT:
                runs = asyncio.run(session.forced_sweep(sweep, ARM_SPECS[kind].models))
            elif driver is Driver.COMPLETIONS:
                runs = asyncio.run(session.decode_share_runs(max(sweep)))
            elif driver is Driver.CLIENT:
                runs = asyncio.run(session.client_runs(kind, sweep))
            else:
                raise ValueError(f"{kind} does not run on a server")
            results.append({"arm": kind.value, "runs": runs, "startup_s": round(server.startup_seconds, 1)})
    for result in results:
        result["peak_rss_gib"] = round(sampler.peak_gib, 2)  # one server, one peak
    return results


@contextlib.contextmanager
def _stage(name: str, loads: dict[str, list[float]]) -> Iterator[None]:
    """Announce a stage and keep the machine's 1-minute load average at its start and end: on a shared
    machine a load well above what the benchmark itself puts on it means someone else's work skewed it."""
    started = time.monotonic()
    before = os.getloadavg()[0]
    print(f"[bench] {name}...", file=sys.stderr, flush=True)
    yield
    loads[name] = [round(before, 2), round(os.getloadavg()[0], 2)]
    print(f"[bench] {name} done in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)


def run_bench(config: BenchConfig) -> dict[str, Any]:
    from deploy.launcher import free_port
    from deploy.profiles import load_profile
    from deploy.standin import is_standin, resolve_model

    unknown = set(config.arms) - set(ARMS)
    if unknown:
        raise ValueError(f"unknown arms {sorted(unknown)}; choose from {', '.join(ARMS)}")
    started = time.monotonic()
    model_path = resolve_model(config.model)
    shape = model_shape(model_path)
    workload = build_workload(config)
    profile = load_profile(config.profile)
    dev_env = {"VLLM_SERVER_DEV_MODE": "1"}  # exposes POST /reset_prefix_cache between runs
    arms: list[dict[str, Any]] = []
    loads: dict[str, list[float]] = {}
    limits: dict[str, dict[str, Any]] = {}
    with _stage("bf16 matrix-product rate (before)", loads):
        limits["before"] = measure_machine_limit(shape)
    wanted = [arm for arm in ARMS if arm in config.arms]
    policy_dir = Path(tempfile.mkdtemp(prefix="bench-policies-"))
    policy_models: PolicyModels | None = None
    if any(ARM_SPECS[arm].server in (Server.LORA, Server.MERGED) for arm in wanted):
        with _stage("custom-policy adapters (random) and their merge", loads):
            policy_models = build_policy_models(model_path, policy_dir)
    for server_kind, stage in (
        (Server.NONE, "transformers baseline"),
        (Server.RECIPE, "vLLM as the public recipe runs it"),
        (Server.TUNED, f"the {profile.name} profile"),
        (Server.LORA, f"the {profile.name} profile with two adapters (multi-LoRA)"),
        (Server.MERGED, f"the {profile.name} profile serving a merged adapter"),
    ):
        jobs: list[tuple[Arm, Sequence[int]]] = [
            (arm, config.sweep if ARM_SPECS[arm].whole_sweep else (config.concurrency,))
            for arm in wanted
            if ARM_SPECS[arm].server is server_kind
        ]
        if not jobs:
            continue
        with _stage(stage, loads):
            if server_kind is Server.NONE:
                arms.append(run_transformers(config, model_path, workload))
            elif server_kind is Server.RECIPE:
                server = recipe_server(config.profile, model_path, free_port(), dev_env)
                arms += run_server_arm(server_kind, server, workload, jobs)
            else:
                assert policy_models is not None or server_kind is Server.TUNED
                model = policy_models.merged if server_kind is Server.MERGED and policy_models else model_path
                adapters = policy_models.adapters if server_kind is Server.LORA and policy_models else []
                env = {**config.server_env, **dev_env}
                server = tuned_server(config.profile, model, free_port(), env, config.server_args, adapters)
                arms += run_server_arm(server_kind, server, workload, jobs)
    shutil.rmtree(policy_dir, ignore_errors=True)
    with _stage("bf16 matrix-product rate (after)", loads):
        limits["after"] = measure_machine_limit(shape)
    decode_share = next((arm for arm in arms if arm["arm"] == Arm.DECODE_SHARE), None)
    arms = [arm for arm in arms if arm is not decode_share]
    result = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "model": model_path,
        "standin": is_standin(model_path),
        "profile": profile.model_dump(),
        "server_env_overrides": config.server_env,
        "server_arg_overrides": config.server_args,
        "workload": {
            mode: {
                "dataset": workload.sources[mode],
                "items": len(workload.items[mode]),
                "harmful_items": sum(i.harmful for i in workload.items[mode]),
                "baseline_items": config.baseline_items,
                "output_tokens": REAL_OUTPUT_TOKENS[mode],
            }
            for mode in ("prompt", "response")
        },
        "concurrency": config.concurrency,
        "sweep": list(config.sweep),
        "arms": arms,
        "decode_share": decode_share_summary(decode_share["runs"], config.concurrency) if decode_share else None,
        "load_average_1min": loads,
        "model_shape": asdict(shape),
        "machine_limit": machine_limit(limits),
        "wall_s": round(time.monotonic() - started, 1),
    }
    if result["standin"]:
        result["note"] = STANDIN_NOTE
    annotate_flops(result)
    result["headline"] = headline(result)
    return result


def annotate_flops(result: dict[str, Any]) -> None:
    """Add FLOPs per check, achieved FLOP/s and the fraction of the machine's limit to every run."""
    shape = ModelShape(**result["model_shape"])
    limit = result["machine_limit"]["limit_gflop_per_s"] * 1e9
    share = result.get("decode_share") or {}
    for run in [run for arm in result["arms"] for run in arm["runs"]] + share.get("runs", []):
        run.update(run_flops(shape, run, limit))
    for mode, row in share.get("modes", {}).items():
        for run in share["runs"]:
            if run["mode"] == mode:
                row[f"{run['variant'].replace('-', '_')}_fraction_of_limit"] = run["fraction_of_limit"]


def headline(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per arm and mode at the benchmark's concurrency (the baseline at 1), with the ratio
    of its checks/s to the baseline's for the same mode."""
    concurrency = result["concurrency"]
    baseline = {
        run["mode"]: run["checks_per_s"] for arm in result["arms"] if arm["arm"] == BASELINE for run in arm["runs"]
    }
    rows = []
    for arm in result["arms"]:
        for run in arm["runs"]:
            wanted = 1 if arm["arm"] == BASELINE else concurrency
            if run["concurrency"] != wanted:
                continue
            base = baseline.get(run["mode"])
            rows.append(
                {
                    "arm": arm["arm"],
                    "mode": run["mode"],
                    "concurrency": run["concurrency"],
                    "checks_per_s": run["checks_per_s"],
                    "latency_p50_s": run["latency_p50_s"],
                    "latency_p95_s": run["latency_p95_s"],
                    "x_baseline": round(run["checks_per_s"] / base, 2) if base else None,
                    "prefix_cache_hit_rate": run["prefix_cache_hit_rate"],
                    "peak_rss_gib": arm["peak_rss_gib"],
                    "mean_prompt_tokens": run["mean_prompt_tokens"],
                    "mean_output_tokens": run["mean_output_tokens"],
                    "requests_per_check": run["requests_per_check"],
                    "errors": run["errors"],
                    "sent": run["sent"],
                    **{key: run.get(key) for key in FLOP_FIELDS},
                }
            )
    return rows


def verdict_first_vs_full(result: dict[str, Any]) -> dict[str, Any]:
    """Verdict-first against full generation on the same server, at the benchmark's concurrency."""
    rows = {(r["arm"], r["mode"]): r for r in result["headline"]}
    out = {}
    for mode in ("prompt", "response"):
        fast, full = rows.get((Arm.VERDICT_FIRST, mode)), rows.get((Arm.TUNED, mode))
        if fast and full and full["checks_per_s"]:
            out[mode] = {
                "concurrency": result["concurrency"],
                "verdict_first_checks_per_s": fast["checks_per_s"],
                "full_generation_checks_per_s": full["checks_per_s"],
                "speedup": round(fast["checks_per_s"] / full["checks_per_s"], 2),
            }
    return out


def policy_summary(result: dict[str, Any]) -> dict[str, Any]:
    """Per mode, the custom-policy arms against the base model on a plain server (the tuned arm), at the
    benchmark's concurrency, with the merged adapter's ratio against its target."""
    rows = {(r["arm"], r["mode"]): r for r in result["headline"]}
    out: dict[str, Any] = {}
    for mode in ("prompt", "response"):
        plain = rows.get((Arm.TUNED, mode))
        arms = {arm: rows[(arm, mode)] for arm in POLICY_ARMS if (arm, mode) in rows}
        if not plain or not arms or not plain["checks_per_s"]:
            continue
        out[mode] = {
            "concurrency": result["concurrency"],
            "plain_base_checks_per_s": plain["checks_per_s"],
            "plain_base_fraction_of_limit": plain.get("fraction_of_limit"),
            "arms": {
                str(arm): {
                    "checks_per_s": row["checks_per_s"],
                    "x_plain_base": round(row["checks_per_s"] / plain["checks_per_s"], 2),
                    "fraction_of_limit": row.get("fraction_of_limit"),
                }
                for arm, row in arms.items()
            },
        }
        if Arm.MERGED in arms:
            ratio = arms[Arm.MERGED]["checks_per_s"] / plain["checks_per_s"]
            out[mode]["merged_target"] = {
                "x_plain_base": round(ratio, 2),
                "target": MERGED_TARGET,
                "met": ratio >= MERGED_TARGET,
            }
    return out


def decode_share_summary(runs: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    """Per mode, checks/s of each decode-share variant and their ratios to the whole answer.

    `verdict_token_vs_answer` bounds what verdict-first can gain on this server: it is the verdict
    request alone, with no logprobs, no follow-ups and no client."""
    by_mode: dict[str, dict[str, Any]] = {}
    for run in runs:
        by_mode.setdefault(run["mode"], {})[run["variant"]] = run
    summary: dict[str, Any] = {"concurrency": concurrency, "runs": runs, "modes": {}}
    for mode, variants in by_mode.items():
        answer = variants.get("answer", {}).get("checks_per_s")
        row: dict[str, Any] = {v: variants[v]["checks_per_s"] for v in variants}
        for variant in ("verdict-token", "verdict-token-cached"):
            if answer and variant in variants:
                row[f"{variant.replace('-', '_')}_vs_answer"] = round(variants[variant]["checks_per_s"] / answer, 2)
        summary["modes"][mode] = row
    return summary


#: The arms `make bench-policies` runs: the base model on a plain server and the custom-policy arms.
POLICY_RUN = (Arm.TUNED, *POLICY_ARMS)


def write_results(result: dict[str, Any], out_dir: Path) -> list[Path]:
    result["verdict_first_vs_full"] = verdict_first_vs_full(result)
    result["custom_policies"] = policy_summary(result)
    report = replace(REPORT, command=report_command([entry["arm"] for entry in result["arms"]]))
    return report.write(out_dir, result, bench_markdown(result), lambda fig: draw_bench(result, fig))


def report_command(ran: Sequence[str]) -> str:
    """The make command that runs these arms (the workload's sizes are in the report's body)."""
    if set(ran) == set(POLICY_RUN):
        return "make bench-policies"
    if set(ran) == set(ARMS):
        return REPORT.command
    return f'{REPORT.command} BENCH_FLAGS="--arms {" ".join(ran)}"'


def default_out_dir() -> Path:
    return RESULTS_DIR / f"bench-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def add_arguments(bench: argparse.ArgumentParser) -> None:
    bench.add_argument("--model", help="standin:full (default on the CPU), a model directory or a HF id")
    bench.add_argument("--profile", help="serving profile of the tuned arms (default: gpu with a GPU, else cpu)")
    bench.add_argument(
        "--arms",
        nargs="+",
        type=Arm,
        choices=ARMS,
        metavar="ARM",
        help="arms to run (default: all): " + "; ".join(f"{arm}: {spec.label}" for arm, spec in ARM_SPECS.items()),
    )
    bench.add_argument("--prompt-items", type=int, default=48, help="ToxicChat texts (prompt moderation)")
    bench.add_argument("--response-items", type=int, default=32, help="BeaverTails pairs (response moderation)")
    bench.add_argument("--baseline-items", type=int, default=8, help="texts per mode the transformers baseline checks")
    bench.add_argument("--concurrency", type=int, default=16, help="checks in flight for the headline numbers")
    bench.add_argument("--sweep", type=_int_list, default=(1, 4, 16), help="in-flight levels for the plot")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument(
        "--server-env", type=_key_value, action="append", default=[], help="KEY=VALUE for the tuned server (tuning)"
    )
    bench.add_argument("--server-arg", action="append", default=[], help="extra vLLM flag for the tuned server")
    bench.add_argument("--out", type=Path, help="result directory (default: bench/results/bench-<timestamp>)")
    bench.add_argument("--report-dir", type=Path, help="also copy bench.json/.md/.png here (e.g. bench/reports)")


def bench_config(args: argparse.Namespace) -> BenchConfig:
    """The benchmark's configuration; the headline concurrency always joins the sweep."""
    from deploy.launcher import default_profile_name

    profile = args.profile or default_profile_name()
    return BenchConfig(
        model=args.model or ("standin:full" if profile == "cpu" else "Qwen/Qwen3Guard-Gen-0.6B"),
        profile=profile,
        prompt_items=args.prompt_items,
        response_items=args.response_items,
        baseline_items=args.baseline_items,
        concurrency=args.concurrency,
        sweep=tuple(sorted(set(args.sweep) | {args.concurrency})),
        seed=args.seed,
        arms=tuple(args.arms) if args.arms else ARMS,
        server_env=dict(args.server_env),
        server_args=list(args.server_arg),
    )


def run(args: argparse.Namespace) -> int:
    import shutil

    result = run_bench(bench_config(args))
    out = args.out or default_out_dir()
    paths = write_results(result, out)
    if args.report_dir:
        args.report_dir.mkdir(parents=True, exist_ok=True)
        for path in paths:
            shutil.copy(path, args.report_dir / path.name)
        print(f"report copied to {args.report_dir}", file=sys.stderr)
    print(paths[1].read_text())
    print(f"results: {out}", file=sys.stderr)
    return 0
