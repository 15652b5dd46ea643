"""`guard tune`'s worked example: `acme/` holds its policy, its labelled rows (`make_example.py` writes them) and
the measured result."""

from pathlib import Path

#: The worked example's directory.
ACME = Path(__file__).resolve().parent / "acme"
#: Its two-category policy (Competitor Mention; Investment Advice, prompts only): the one copy of this text.
ACME_POLICY = ACME / "guard_policy.yaml"
