"""`guard tune` / `python -m guard_tune`: fine-tune a LoRA adapter for your own policy from labelled examples,
measure it against the base model through vLLM, and print how to serve it.

    guard tune --data examples.jsonl --policy guard_policy.yaml --out adapters/acme
    accelerate launch -m guard_tune --data ... --out ...      # the same run on several GPUs
    guard tune --eval-only --data new.jsonl --out adapters/acme

Exit status: 0 done, 1 the run failed or was interrupted (rerun the same command to resume), 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from guard_client.cli import config_from
from guard_tune._run import DEFAULT_BASE, TuneConfig, TuneError, TuneInterrupted, summary, tune


def build_parser(prog: str = "guard tune") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, required=True, help="labelled rows: JSONL, CSV or Parquet")
    parser.add_argument("--policy", type=Path, help="the guard_policy.yaml to train for (--eval-only: the adapter's)")
    parser.add_argument("--out", type=Path, required=True, help="the adapter directory (one run per directory)")
    parser.add_argument("--base", default=DEFAULT_BASE, help="base model, as `deploy serve --model` takes it")
    parser.add_argument("--eval-split", type=float, default=0.2, help="share of each label held out (default 0.2)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=float, help="passes over the training rows (default 3)")
    length.add_argument("--steps", type=int, help="optimizer steps instead of epochs")
    parser.add_argument("--rank", type=int, default=16, help="LoRA rank (default 16)")
    parser.add_argument("--lr", type=float, default=2e-3, help="learning rate (default 2e-3)")
    parser.add_argument("--batch", type=int, default=8, help="examples per step and device (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="split, initialisation and order (default 0)")
    parser.add_argument("--save-every", type=int, default=25, help="steps between checkpoints (default 25)")
    parser.add_argument("--name", help="the adapter's served name (default: the --out directory's name)")
    parser.add_argument("--merge", action="store_true", help="also write DIR/merged: the adapter folded into the base")
    parser.add_argument("--eval-only", action="store_true", help="measure the adapter in --out on --data, no training")
    parser.add_argument(
        "--no-eval", dest="evaluate", action="store_false", help="skip the base-vs-adapter evaluation through vLLM"
    )
    return parser


def main(argv: list[str] | None = None, prog: str = "guard tune") -> int:
    args = build_parser(prog).parse_args(argv)
    config = config_from(TuneConfig, args)
    try:
        result = tune(config)
    except TuneInterrupted as exc:
        print(f"guard tune: {exc}", file=sys.stderr)
        return 1
    except TuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if config.eval_only:
        print(f"evaluation written to {result['written_to']}/eval.md")
        print(f"accuracy: base {result['base']['accuracy']:.2f}, adapter {result['adapter']['accuracy']:.2f}")
    else:
        print(summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m guard_tune"))
