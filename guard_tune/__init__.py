"""Fine-tune a LoRA adapter for a custom guard policy (`guard tune`): labelled conversations in, a PEFT
adapter with its policy, a training card and a base-vs-adapter evaluation through vLLM out."""

from typing import TextIO

from guard_tune._data import LabelledData, LabelledRow, TuneDataError, read_labelled, split
from guard_tune._policy import POLICY_FILE, PolicyFileError, TunePolicy, load_policy
from guard_tune._run import TuneConfig, TuneError, TuneInterrupted, fingerprint, tune

__all__ = [
    "POLICY_FILE",
    "LabelledData",
    "LabelledRow",
    "PolicyFileError",
    "TuneConfig",
    "TuneDataError",
    "TuneError",
    "TuneInterrupted",
    "TunePolicy",
    "fingerprint",
    "load_policy",
    "main",
    "read_labelled",
    "split",
    "tune",
]


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """`guard tune ARGV...`, the guard command's entry point (it prints to the process's own streams)."""
    from guard_tune.__main__ import main as tune_main

    return tune_main(argv)
