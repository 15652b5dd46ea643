"""Every benchmark of the project, on one harness: `python -m bench <name>` (`make bench-<name>`).

The harness: `bench.loops` (closed and open load loops, what a run measured), `bench.machine` (the machine's
facts and compute limit; `bench.flops` is the FLOP model), `bench.report` (the one writer of JSON, markdown and
PNG), `bench.corpus` and `bench.workload` (the checked texts, instrumented checks and server probes).
One module per benchmark, listed in `bench.__main__.BENCHMARKS`.
"""
