"""The side-by-side benchmark's markdown body and its plot (throughput against checks in flight), written
under the common header by `bench.report.Report`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.arms import BASELINE, arm_label
from bench.report import Report

REPORT = Report("bench", "Guard benchmark: where the throughput comes from", "make bench", (15, 4.6))


def _fmt(value: Any, spec: str = ".2f", none: str = "–") -> str:
    if value is None:
        return none
    if isinstance(value, float) and value != value:  # NaN
        return none
    return format(value, spec)


def _pct(value: float | None, spec: str = ".0%") -> str:
    return "–" if value is None else format(value, spec)


def _limit_text(result: dict[str, Any]) -> str | None:
    limit = result.get("machine_limit")
    if not limit:
        return None
    where = "the GPU" if str(limit.get("device", "cpu")).startswith("cuda") else f"{limit['threads']} CPU threads"
    kernel = f"`{limit['kernel']}`, " if limit.get("kernel") else ""
    return f"{limit['limit_gflop_per_s']:.0f} GFLOP/s (bf16 matrix products, {kernel}{where})"


def bench_markdown(result: dict[str, Any]) -> str:
    """The report's body (the writer adds the title, the command and the machine)."""
    lines = [f"Run {result['created']}, {result['wall_s'] / 60:.0f} min.", ""]
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
        "| arm | mode | in flight | checks/s | × baseline | of the bf16 limit | GFLOP/check | achieved GFLOP/s "
        "| p50 s | p95 s | prefix-cache hits | peak RSS GiB | prompt tokens/check | uncached tokens/check "
        "| output tokens/check | requests/check | errors |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in result["headline"]:
        lines.append(
            f"| {arm_label(row['arm'])} | {row['mode']} | {row['concurrency']} "
            f"| {_fmt(row['checks_per_s'])} | {_fmt(row['x_baseline'], '.1f')}× "
            f"| {_pct(row.get('fraction_of_limit'), '.1%')} | {_fmt(row.get('gflop_per_check'), '.1f')} "
            f"| {_fmt(row.get('achieved_gflop_per_s'), '.1f')} | {_fmt(row['latency_p50_s'])} "
            f"| {_fmt(row['latency_p95_s'])} | {_pct(row['prefix_cache_hit_rate'])} "
            f"| {_fmt(row['peak_rss_gib'], '.1f')} | {_fmt(row.get('mean_prompt_tokens'), '.0f')} "
            f"| {_fmt(row.get('uncached_tokens_per_check'), '.0f')} "
            f"| {_fmt(row['mean_output_tokens'], '.1f')} | {_fmt(row['requests_per_check'], '.2f')} | {row['errors']} |"
        )
    limit_text = _limit_text(result)
    if limit_text:
        limit = result["machine_limit"]
        measured = "; ".join(
            f"{when}: "
            + ", ".join(
                f"{s.get('kernel', 'torch.matmul')} {'×'.join(map(str, s['shape']))} {s['best_gflop_per_s']:.0f}"
                for s in m["shapes"]
            )
            for when, m in limit["measurements"].items()
        )
        lines += [
            "",
            f"The machine's limit, measured in this run: **{limit_text}**, the best one-second window of "
            "`torch.matmul` and of vLLM's oneDNN kernel (what the CPU server uses, where installed) on bf16 "
            "matrices shaped like the model's layers (a 512-token batch) and a large square one, before and after "
            f"the arms (GFLOP/s by kernel and shape, rows×inner×columns: {measured}). "
            '"Of the bf16 limit" is FLOPs per check × checks/s over that limit. FLOPs per check count the matrix '
            "products of the tokens the server computed: prompt tokens not served from the prefix cache, plus output "
            "tokens, through every layer, attention over the whole context included (`bench/flops.py`). "
            "Absolute checks/s move with the machine and with what else runs on it (twofold between machines "
            "of one kind); the ratios to the baseline and these fractions, measured in one run, are what carries "
            "over. On a shared machine the arms and the limit's measurements all compete with other work (the "
            "load averages below); the limit is the best of its measurements, so other work lowers a fraction "
            "more often than it raises one.",
        ]
    lines += ["", "What each arm sent:", ""]
    seen = set()
    for row in result["headline"]:
        if (row["arm"], row["mode"]) not in seen:
            seen.add((row["arm"], row["mode"]))
            lines.append(f"- {arm_label(row['arm'])}, {row['mode']}: {row['sent']}")
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
    policies = result.get("custom_policies") or {}
    if policies:
        lines += [
            "",
            "## Custom policies: multi-LoRA and a merged adapter against the base model on a plain server",
            "",
            "Same texts, same forced output length; the adapters are random, rank 16 on all seven projections. "
            "FLOPs per check count the base model's matrix products only (a rank-16 LoRA on all projections adds "
            "about 2% to the full model's), so a LoRA arm's fraction of the limit is the base model's work done.",
            "",
            "| mode | arm | in flight | checks/s | × plain base | of the bf16 limit |",
            "|---|---|--:|--:|--:|--:|",
        ]
        for mode, row in policies.items():
            plain = _pct(row["plain_base_fraction_of_limit"], ".1%")
            lines.append(
                f"| {mode} | {arm_label('tuned')} (plain base) | {row['concurrency']} "
                f"| {_fmt(row['plain_base_checks_per_s'])} | 1.00× | {plain} |"
            )
            for arm, cells in row["arms"].items():
                lines.append(
                    f"| {mode} | {arm_label(arm)} | {row['concurrency']} | {_fmt(cells['checks_per_s'])} "
                    f"| {_fmt(cells['x_plain_base'])}× | {_pct(cells['fraction_of_limit'], '.1%')} |"
                )
        targets = [
            f"{mode} {row['merged_target']['x_plain_base']:.2f}× ({'met' if row['merged_target']['met'] else 'missed'})"
            for mode, row in policies.items()
            if "merged_target" in row
        ]
        if targets:
            lines += ["", f"Target: a merged adapter serves at least 0.95× the plain base: {'; '.join(targets)}."]
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
            "| mode | whole answer checks/s | of the bf16 limit | verdict token checks/s | × whole answer "
            "| of the bf16 limit | verdict token, prompts cached, checks/s | × whole answer | of the bf16 limit |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for mode, row in share["modes"].items():
            lines.append(
                f"| {mode} | {_fmt(row.get('answer'))} | {_pct(row.get('answer_fraction_of_limit'), '.1%')} "
                f"| {_fmt(row.get('verdict-token'))} | {_fmt(row.get('verdict_token_vs_answer'), '.2f')}× "
                f"| {_pct(row.get('verdict_token_fraction_of_limit'), '.1%')} "
                f"| {_fmt(row.get('verdict-token-cached'))} "
                f"| {_fmt(row.get('verdict_token_cached_vs_answer'), '.2f')}× "
                f"| {_pct(row.get('verdict_token_cached_fraction_of_limit'), '.1%')} |"
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
        "## Throughput against checks in flight (plot at the end)",
        "",
        "| arm | mode | in flight | checks | checks/s | of the bf16 limit | p50 s | p95 s | prefix-cache hits |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for arm in result["arms"]:
        for run in arm["runs"]:
            lines.append(
                f"| {arm['arm']} | {run['mode']} | {run['concurrency']} | {run['items']} "
                f"| {_fmt(run['checks_per_s'])} | {_pct(run.get('fraction_of_limit'), '.1%')} "
                f"| {_fmt(run['latency_p50_s'])} | {_fmt(run['latency_p95_s'])} "
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


def draw_bench(result: dict[str, Any], figure: Any) -> None:
    modes = ("prompt", "response")
    share = result.get("decode_share")
    limited = any(row.get("fraction_of_limit") is not None for row in result["headline"])
    panels = 2 + bool(share) + limited
    figure.set_size_inches(*((13, 8.4) if panels > 2 else (11, 4.2)))
    axes = list(figure.subplots(2, 2).flat) if panels > 2 else list(figure.subplots(1, 2).flat)
    for axis in axes[panels:]:
        axis.set_visible(False)
    for axis, mode in zip(axes, modes, strict=False):
        for arm in result["arms"]:
            runs = sorted((r for r in arm["runs"] if r["mode"] == mode), key=lambda r: r["concurrency"])
            if not runs:
                continue
            label = arm_label(arm["arm"])
            if arm["arm"] == BASELINE:
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
    if limited:
        _limit_bars(axes[2 + bool(share)], result)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    if result.get("standin"):
        figure.text(0.5, 0.005, "random-weight stand-in: verdicts meaningless", ha="center", fontsize=8)


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


def _limit_bars(axis: Any, result: dict[str, Any]) -> None:
    """Achieved FLOP/s of each arm and mode at the headline concurrency as a share of the measured limit."""
    rows = [row for row in result["headline"] if row.get("fraction_of_limit") is not None]
    arms = list(dict.fromkeys(row["arm"] for row in rows))
    modes = list(dict.fromkeys(row["mode"] for row in rows))
    width = 0.8 / max(len(modes), 1)
    for index, mode in enumerate(modes):
        values = {row["arm"]: 100 * row["fraction_of_limit"] for row in rows if row["mode"] == mode}
        positions = [a + index * width for a, arm in enumerate(arms) if arm in values]
        bars = axis.barh(positions, [values[arm] for arm in arms if arm in values], width, label=mode)
        axis.bar_label(bars, fmt="%.1f%%", fontsize=7, padding=2)
    axis.set_yticks([a + width * (len(modes) - 1) / 2 for a in range(len(arms))], arms, fontsize=8)
    axis.invert_yaxis()
    axis.set_xlabel("achieved FLOP/s, % of the measured bf16 matrix-product limit")
    limit = result["machine_limit"]
    axis.set_title(
        f"how close to the machine's limit ({limit['limit_gflop_per_s']:.0f} GFLOP/s bf16, "
        f"{result['concurrency']} in flight; baseline 1)",
        fontsize=9,
    )
    axis.legend(fontsize=7, frameon=False)
    axis.grid(True, axis="x", alpha=0.3)
