"""The client's defaults and small shared facts, each spelled once (openai-python's `_constants.py` idea).

The retry policy's numbers live beside the policy itself, in `_retry.py`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

DEFAULT_BASE_URL = "http://localhost:8000"
#: The name every serving profile serves the guard under (`deploy/profiles` takes it from here).
DEFAULT_MODEL = "qwen3guard"
#: Seconds per HTTP request.
DEFAULT_TIMEOUT = 30.0
DEFAULT_CONCURRENCY = 16
#: Every valid output fits in 32 tokens (about 9 in prompt mode, 13 in response mode).
MAX_TOKENS = 32
#: vLLM's default cap on returned top logprobs.
TOP_LOGPROBS = 20
#: Below this share of probability on a verdict word the model is not answering the guard question.
DEFAULT_MIN_VERDICT_MASS = 0.5
#: Fraction of a window repeated in the next one when long inputs are chunked.
CHUNK_OVERLAP = 0.125
ENV_URL, ENV_API_KEY, ENV_MODEL = "GUARD_URL", "GUARD_API_KEY", "GUARD_MODEL"
try:
    USER_AGENT = f"qwen3guard-client/{version('qwen3guard-serving')}"
except PackageNotFoundError:  # run from a source tree that was never installed
    USER_AGENT = "qwen3guard-client"

#: Every stand-in model directory (random weights) carries this in its name, so a client can tell
#: from the server's model list that verdicts are meaningless.
STANDIN_MARKER = "qwen3guard-gen-standin-random"
#: What everything that shows a stand-in's verdicts prints beside them.
STANDIN_WARNING = "the server runs the random-weight stand-in model; these verdicts are RANDOM and mean nothing"


def is_standin_model(root: str) -> bool:
    """Whether a served model's root (its path, from `/v1/models`) is the random-weight stand-in."""
    return STANDIN_MARKER in root
