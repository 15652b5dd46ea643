"""Load tests and benchmarks for the guard server.

python -m loadtest run          bounded headless locust step ramp; CSV + HTML + summary JSON
python -m loadtest bench        side-by-side throughput: transformers, vLLM as the recipe runs it, this project
python -m loadtest bench-serve  start-up time and checks/s of 32 guard prompts, 16 in flight
python -m bench.client  the client's own cost per check (make bench-client)

See loadtest/README.md.
"""
