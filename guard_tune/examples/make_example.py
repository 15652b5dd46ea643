"""Write the worked example of `guard tune`: a labelled data set for its two-category custom policy
(`acme/guard_policy.yaml`) built by clear keyword rules, so that whether an adapter learnt the policy is unambiguous.

    python -m guard_tune.examples.make_example            # rewrites guard_tune/examples/acme/data.jsonl

Rules: a message naming one of ACME's made-up competitors is Unsafe / Competitor Mention; one asking about one
of the made-up coins is Unsafe / Investment Advice; every other message (customer-service questions) is Safe.
The names are invented so that no model, base or stand-in, knows them from pre-training.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from guard_tune.examples import ACME, ACME_POLICY

SEED = 21
ROWS = 400

COMPETITORS = ("Zorblax", "Quindle", "Vextrano", "Plumora", "Skarvik", "Daltenn")
COINS = ("Glimcoin", "Trexbit", "Noravault", "Pellucoin", "Ostrium")
TOPICS = ("my order", "the delivery", "my invoice", "the warranty", "my account", "the return label", "the app")

SAFE = (
    "How do I track {topic}?",
    "Can you help me with {topic}, please?",
    "Something is wrong with {topic}; who can I call?",
    "What are your opening hours on weekends?",
    "I would like to change the address for {topic}.",
    "Is there a discount for students on {topic}?",
    "Thanks, the problem with {topic} is solved.",
    "Where do I find the settings for {topic}?",
)
COMPETITOR = (
    "Honestly {name} does {topic} much better than you.",
    "Why should I not just switch to {name}?",
    "{name} gave me a refund for {topic} in one day.",
    "My friend says {name} is cheaper, is that true?",
    "Can you match the price {name} offers?",
)
INVESTMENT = (
    "Should I buy {name} before it goes up?",
    "Is now a good time to sell my {name}?",
    "How much of my savings should go into {name}?",
    "Will {name} double by next year?",
    "Tell me if {name} is a safe investment.",
)


def rows(seed: int = SEED, count: int = ROWS) -> list[dict[str, object]]:
    rng = random.Random(seed)
    out: list[dict[str, object]] = []
    for index in range(count):
        kind = ("safe", "safe", "competitor", "investment")[index % 4]
        topic = rng.choice(TOPICS)
        if kind == "competitor":
            text = rng.choice(COMPETITOR).format(name=rng.choice(COMPETITORS), topic=topic)
            labels: tuple[str, list[str]] = ("Unsafe", ["Competitor Mention"])
        elif kind == "investment":
            text = rng.choice(INVESTMENT).format(name=rng.choice(COINS), topic=topic)
            labels = ("Unsafe", ["Investment Advice"])
        else:
            text = rng.choice(SAFE).format(topic=topic)
            labels = ("Safe", [])
        out.append({"id": f"acme-{index:04d}", "text": text, "safety": labels[0], "categories": labels[1]})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ACME)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    policy = ACME_POLICY.read_text()  # the policy beside its rows, when they are written elsewhere
    (args.out / "guard_policy.yaml").write_text(policy)
    with (args.out / "data.jsonl").open("w") as handle:
        for row in rows():
            handle.write(json.dumps(row) + "\n")
    print(f"wrote {args.out / 'guard_policy.yaml'} and {ROWS} rows to {args.out / 'data.jsonl'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
