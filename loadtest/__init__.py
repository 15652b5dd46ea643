"""The locust load test of the guard server and the gateway: `python -m loadtest run` (`make loadtest`).

python -m loadtest run          bounded headless locust step ramp; CSV + HTML + summary JSON

The benchmarks live in `bench/` (`python -m bench --help`). See loadtest/README.md (the load test) and
docs/benchmarks.md (the benchmarks).
"""
