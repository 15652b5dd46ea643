"""`guard screen`: moderate a whole JSONL/CSV/Parquet dataset, resumably, across one or more guard replicas.

An application beside the client library: it talks to the guard through `guard_client`'s public API and keeps
its state with `guard_client.batch.ResumableRun`, the runner `guard_eval` uses too.

    guard screen logs.jsonl --out screened/            # or python -m guard_screen logs.jsonl --out screened/
"""

from guard_screen._cli import DEFAULT_SCREEN_CONCURRENCY, screen_command
from guard_screen._reader import Columns, InputFormat, InputKind, RowProblem, ScreenInput, ScreenInputError, read_input
from guard_screen._screen import ScreenResult, ScreenSetupError, screen

#: The `guard screen` command's entry point: `main(argv, out, err) -> exit status`.
main = screen_command

__all__ = [
    "DEFAULT_SCREEN_CONCURRENCY",
    "Columns",
    "InputFormat",
    "InputKind",
    "RowProblem",
    "ScreenInput",
    "ScreenInputError",
    "ScreenResult",
    "ScreenSetupError",
    "main",
    "read_input",
    "screen",
    "screen_command",
]
