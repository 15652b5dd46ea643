"""The benchmark's markdown table and its plot (throughput against checks in flight)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ARM_LABELS = {
    "transformers": "transformers `generate`, one at a time (baseline)",
    "vllm-recipe": "vLLM as the public recipe runs it",
    "tuned": "this project's serving profile",
    "tuned-client": "profile + client, constrained decoding",
    "verdict-first": "profile + client, verdict-first",
}


def _fmt(value: Any, spec: str = ".2f", none: str = "–") -> str:
    if value is None:
        return none
    if isinstance(value, float) and value != value:  # NaN
        return none
    return format(value, spec)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def bench_markdown(result: dict[str, Any], plot_name: str = "bench.png") -> str:
    machine = result["machine"]
    hardware = f"{machine.get('cpus')} CPU cores, {machine.get('memory_gib', '?')} GiB"
    if machine.get("gpu"):
        hardware += f", GPU: {machine.get('gpu_name') or 'yes'}"
    else:
        hardware += ", no GPU"
    lines = [
        "# Guard benchmark: where the throughput comes from",
        "",
        f"Measured {result['created']} on one machine ({hardware}; vLLM {machine.get('vllm')}, "
        f"transformers {machine.get('transformers')}) by `make bench` in {result['wall_s'] / 60:.0f} min.",
        "",
    ]
    if result.get("note"):
        lines += [f"> **{result['note']}**", ""]
    lines += [
        f"Model: `{Path(result['model']).name}`. Serving profile: `{result['profile']['name']}`"
        + (f", with overrides {result['server_env_overrides']}" if result["server_env_overrides"] else "")
        + (f" {result['server_arg_overrides']}" if result["server_arg_overrides"] else "")
        + ".",
        "",
        "Workload (the same texts for every arm):",
        "",
    ]
    for mode, work in result["workload"].items():
        lines.append(
            f"- {mode} moderation: {work['items']} texts from `{work['dataset']}` ({work['harmful_items']} labelled "
            f"harmful), output forced to {work['output_tokens']} tokens; the baseline checks the first "
            f"{work['baseline_items']} of them."
        )
    lines += [
        "",
        f"## {result['concurrency']} checks in flight (the baseline: one at a time)",
        "",
        "| arm | mode | in flight | checks/s | × baseline | p50 s | p95 s | prefix-cache hits | peak RSS GiB "
        "| prompt tokens/check | output tokens/check | requests/check | errors |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in result["headline"]:
        lines.append(
            f"| {ARM_LABELS.get(row['arm'], row['arm'])} | {row['mode']} | {row['concurrency']} "
            f"| {_fmt(row['checks_per_s'])} | {_fmt(row['x_baseline'], '.1f')}× | {_fmt(row['latency_p50_s'])} "
            f"| {_fmt(row['latency_p95_s'])} | {_pct(row['prefix_cache_hit_rate'])} "
            f"| {_fmt(row['peak_rss_gib'], '.1f')} | {_fmt(row.get('mean_prompt_tokens'), '.0f')} "
            f"| {_fmt(row['mean_output_tokens'], '.1f')} | {_fmt(row['requests_per_check'], '.2f')} | {row['errors']} |"
        )
    lines += ["", "What each arm sent:", ""]
    seen = set()
    for row in result["headline"]:
        if (row["arm"], row["mode"]) not in seen:
            seen.add((row["arm"], row["mode"]))
            lines.append(f"- {ARM_LABELS.get(row['arm'], row['arm'])}, {row['mode']}: {row['sent']}")
    vf = result.get("verdict_first_vs_full") or {}
    if vf:
        lines += [
            "",
            "## Verdict-first against full generation (same server, same texts)",
            "",
            "| mode | in flight | verdict-first checks/s | full generation checks/s | speed-up |",
            "|---|--:|--:|--:|--:|",
        ]
        for mode, row in vf.items():
            lines.append(
                f"| {mode} | {row['concurrency']} | {_fmt(row['verdict_first_checks_per_s'])} "
                f"| {_fmt(row['full_generation_checks_per_s'])} | {_fmt(row['speedup'], '.1f')}× |"
            )
    share = result.get("decode_share")
    if share:
        lines += [
            "",
            "## What verdict-first can gain on this machine",
            "",
            f"The client's rendered prompts as raw `/v1/completions`, {share['concurrency']} in flight, same server "
            "and texts: the whole answer (output forced to the real length); the verdict token alone (the "
            "verdict-first request without logprobs, client or follow-ups: the most any verdict-first client can "
            "reach on this server); and the verdict token again with those prompts already in the prefix cache "
            "(only what repeat traffic sees).",
            "",
            "| mode | whole answer checks/s | verdict token checks/s | × whole answer "
            "| verdict token, prompts cached, checks/s | × whole answer |",
            "|---|--:|--:|--:|--:|--:|",
        ]
        for mode, row in share["modes"].items():
            lines.append(
                f"| {mode} | {_fmt(row.get('answer'))} | {_fmt(row.get('verdict-token'))} "
                f"| {_fmt(row.get('verdict_token_vs_answer'), '.2f')}× | {_fmt(row.get('verdict-token-cached'))} "
                f"| {_fmt(row.get('verdict_token_cached_vs_answer'), '.2f')}× |"
            )
        lines += [
            "",
            "A check costs the prefill of every prompt token after the cached policy head (the checked text and the "
            "fixed instructions after it) plus one decode step per output token. Verdict-first removes only the "
            "decode steps after the first: where prefill dominates (a CPU) the verdict token alone is barely faster "
            "than the whole answer; where a decode step is dear next to a prefill (a GPU at small batches) it is "
            "several times faster. The cached column is what a server gains when it need not prefill at all, "
            "which only repeated texts allow.",
        ]
    lines += [
        "",
        "## Throughput against checks in flight",
        "",
        f"![checks/s against checks in flight]({plot_name})",
        "",
        "| arm | mode | in flight | checks | checks/s | p50 s | p95 s | prefix-cache hits |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for arm in result["arms"]:
        for run in arm["runs"]:
            lines.append(
                f"| {arm['arm']} | {run['mode']} | {run['concurrency']} | {run['items']} "
                f"| {_fmt(run['checks_per_s'])} | {_fmt(run['latency_p50_s'])} | {_fmt(run['latency_p95_s'])} "
                f"| {_pct(run['prefix_cache_hit_rate'])} |"
            )
    lines += [
        "",
        "## How to read it",
        "",
        "- checks/s: texts checked over the wall time of the run, with the stated number kept in flight (closed "
        "loop). Latency: per check, send to last byte; for verdict-first it includes the follow-up request.",
        "- Prompt tokens/check: as the server (or tokenizer) counted them, summed over a check's requests. The "
        "baseline checks only the first texts of the sample; where they are longer than the sample's mean, "
        "the ratio to the baseline is that much in vLLM's favour.",
        "- The vLLM arms run one server at a time; before each run the prefix cache is reset and warmed with a "
        "text outside the sample, so a run sees the steady state of a long-running server (the policy head "
        "cached) and nothing of the texts an earlier run sent.",
        "- Prefix-cache hits: `vllm:prefix_cache_hits_total` over `vllm:prefix_cache_queries_total` from "
        "`/metrics` across the run. Hits land on whole KV blocks, so the shared policy head (about 200 tokens in "
        "prompt mode, 270 in response mode) bounds a single request's hit rate at head / prompt length.",
        "- Machine load (1-minute load average at the start and end of each stage): "
        + ", ".join(f"{stage} {a:g} → {b:g}" for stage, (a, b) in result.get("load_average_1min", {}).items())
        + ". The benchmark alone keeps it near the number of cores; much more means other work shared the "
        "machine.",
        "- Peak RSS: the largest sum of resident memory over the process tree of the server (or of the "
        "transformers process) during its arm, sampled 4 times a second; it includes the KV cache the server "
        "allocates up front. Shared pages are counted once per process.",
        "- vLLM as the recipe runs it: `--max-model-len 32768 --no-enable-prefix-caching` and nothing else; on the "
        "CPU it gets the same `VLLM_CPU_KVCACHE_SPACE` as the profile (vLLM would otherwise size its cache from "
        "the whole machine's memory).",
        "- Verdict-first: the client renders the guard prompt, asks `/v1/completions` for one token (the "
        "verdict word, restricted to the verdict words) and, when flagged, continues the same prompt after the "
        "verdict word for the categories (its prompt is cached; the grammar keeps them valid). A random-weight "
        "model flags at random, so the benchmark pins the verdict word to the "
        "dataset label (one allowed token instead of three: the same server work) and the follow-up runs "
        "exactly for the items labelled harmful.",
        "- Constrained requests on a stand-in (the client's `constrain=True` arm and the verdict-first follow-up): "
        "random weights choose among the grammar's tokens at random and tend to name three long categories "
        "(30+ tokens); the benchmark narrows the grammar to one category, the answer the real model gives, so "
        "these requests cost what they would with real weights. The output tokens column shows what was written.",
    ]
    return "\n".join(lines) + "\n"


def bench_plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = ("prompt", "response")
    share = result.get("decode_share")
    figure, axes = plt.subplots(1, 3 if share else 2, figsize=(16 if share else 11, 4.2), sharey=False)
    for axis, mode in zip(axes, modes, strict=False):
        for arm in result["arms"]:
            runs = sorted((r for r in arm["runs"] if r["mode"] == mode), key=lambda r: r["concurrency"])
            if not runs:
                continue
            label = ARM_LABELS.get(arm["arm"], arm["arm"])
            if arm["arm"] == "transformers":
                axis.axhline(runs[0]["checks_per_s"], linestyle="--", color="grey", label=label)
                continue
            axis.plot([r["concurrency"] for r in runs], [r["checks_per_s"] for r in runs], marker="o", label=label)
        axis.set_xscale("log", base=2)
        levels = sorted({r["concurrency"] for arm in result["arms"] for r in arm["runs"] if r["mode"] == mode})
        axis.set_xticks(levels, [str(level) for level in levels])
        axis.minorticks_off()
        axis.set_xlabel("checks in flight")
        axis.set_ylabel("checks/s")
        axis.set_title(f"{mode} moderation")
        axis.grid(True, alpha=0.3)
        axis.set_ylim(bottom=0)
    if share:
        _decode_share_bars(axes[2], share)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    title = "Guard checks/s against checks in flight"
    if result.get("standin"):
        title += " (random-weight stand-in: verdicts meaningless)"
    figure.suptitle(title, fontsize=10)
    figure.tight_layout(rect=(0, 0.1, 1, 0.95))
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _decode_share_bars(axis: Any, share: dict[str, Any]) -> None:
    variants = (("answer", "whole answer"), ("verdict-token", "verdict token"), ("verdict-token-cached", "cached"))
    modes = list(share["modes"])
    width = 0.8 / len(variants)
    for index, (key, label) in enumerate(variants):
        values = [share["modes"][mode].get(key) or 0.0 for mode in modes]
        bars = axis.bar([m + index * width for m in range(len(modes))], values, width, label=label)
        axis.bar_label(bars, fmt="%.2f", fontsize=7)
    axis.set_xticks([m + width for m in range(len(modes))], modes)
    axis.set_ylabel("checks/s")
    axis.set_title(f"raw completions, {share['concurrency']} in flight", fontsize=9)
    axis.legend(fontsize=7, frameon=False)
    axis.grid(True, axis="y", alpha=0.3)
