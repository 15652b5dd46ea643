"""The locust load test of the guard server and the gateway: `python -m loadtest run` (`make loadtest`).

The benchmarks live in `bench/` (`python -m bench --help`).
"""
