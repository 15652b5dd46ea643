"""`guard` / `python -m guard_client`: check text against a Qwen3Guard server, or parse raw output.

    guard check "How can I make a bomb?"
    guard check --response "How can I make a bomb?" "I can't help with that."
    guard check --jsonl requests.jsonl          # or - for stdin; one JSON line out per line in
    guard check --explain "How can I make a bomb?"   # a readable explanation instead of the JSON
    guard check --explain --locate "$(cat essay.txt)"  # ... and where in the text the verdict comes from
    guard check --model acme --policy guard_policy.yaml "Is BrandX any good?"  # a custom policy (an adapter)
    echo 'Safety: Unsafe\nCategories: Violent' | guard parse --mode prompt

Server, key and model come from --url/--api-key/--model or GUARD_URL/GUARD_API_KEY/GUARD_MODEL.
Exit status: 0 when every check was answered, 1 when any failed, 2 for bad usage or input.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from guard_client import _constants as defaults
from guard_client._client import GuardClient
from guard_client._errors import GuardError, GuardInputError, GuardParseError
from guard_client._explain import explain
from guard_client._guard_policy import DEFAULT_POLICY, GuardPolicy, GuardPolicyError
from guard_client._input import CheckItem
from guard_client._labels import GuardMode, Strictness
from guard_client._verdict import FailurePolicy, Verdict, parse_verdict
from guard_client.cli import add_check_flags, check_options
from guard_client.conversation import conversation_view

#: `guard NAME ...` commands of the applications beside the library: (package, the extras it needs, help). The
#: library lists them in `guard --help` and imports the package only when its command runs.
APPLICATIONS: dict[str, tuple[str, str, str]] = {
    "screen": ("guard_screen", "screen", "moderate a whole JSONL/CSV/Parquet dataset, resumably, across replicas"),
    "tune": ("guard_tune", "tune,cpu", "fine-tune a LoRA adapter for a policy from labelled rows, and evaluate it"),
}


def verdict_json(
    verdict: Verdict, strictness: Strictness, explained: bool = False, policy: GuardPolicy = DEFAULT_POLICY
) -> dict[str, Any]:
    out = {"flagged": verdict.flagged(strictness), **verdict.model_dump(mode="json")}
    if explained:
        out["explanation"] = explain(verdict, strictness, policy=policy).model_dump(mode="json")
    return out


def load_policy(path: str | None) -> GuardPolicy:
    """`--policy FILE` (the published policy without one); a bad file raises `GuardPolicyError`."""
    return DEFAULT_POLICY if path is None else GuardPolicy.load(path)


def _emit(obj: dict[str, Any], out: TextIO) -> None:
    out.write(json.dumps(obj, ensure_ascii=False) + "\n")
    out.flush()


def _jsonl_items(stream: TextIO) -> Iterator[tuple[int, CheckItem | GuardInputError]]:
    """Each line: a JSON string (a prompt), {"prompt": ..., "response"?: ...} or {"messages": [...]}."""
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, GuardInputError(f"line {number}: not JSON ({exc.msg})")
            continue
        if isinstance(obj, str):
            yield number, obj
        elif isinstance(obj, dict) and isinstance(obj.get("messages"), list):
            try:  # a conversation is shown to the guard as every surface shows it (docs/conversation-view.md)
                yield number, conversation_view(obj["messages"]).checked()
            except GuardInputError as exc:
                yield number, GuardInputError(f"line {number}: {exc}")
        elif isinstance(obj, dict) and isinstance(obj.get("prompt"), str):
            response = obj.get("response")
            if response is None:
                yield number, obj["prompt"]
            elif isinstance(response, str):
                yield number, (obj["prompt"], response)
            else:
                yield number, GuardInputError(f"line {number}: 'response' must be a string or null")
        else:
            yield (
                number,
                GuardInputError(f"line {number}: expected a string, {{'prompt', 'response'}} or {{'messages'}}"),
            )


def _check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    options = check_options(args)
    strictness = Strictness(args.strictness)
    policy = load_policy(args.policy)
    with GuardClient(
        args.url,
        api_key=args.api_key,
        model=args.model,
        timeout=args.timeout,
        on_error=FailurePolicy(args.on_error),
        strictness=strictness,
        policy=policy,
    ) as client:
        try:
            if client.server_info().is_standin:
                print(f"warning: {defaults.STANDIN_WARNING}", file=err)
        except GuardError as exc:
            print(f"error: {exc}", file=err)
            return 1
        if args.jsonl is None:
            if args.response is not None:
                verdict = client.check_response(args.response[0], args.response[1], **options)
            elif args.text is not None:
                verdict = client.check_prompt(args.text, **options)
            else:
                print("error: give a TEXT, --response PROMPT RESPONSE, or --jsonl FILE", file=err)
                return 2
            if args.explain and not args.json:
                out.write(explain(verdict, strictness, policy=policy).text() + "\n")
            else:
                _emit(verdict_json(verdict, strictness, args.explain, policy), out)
            return 0
        stream = sys.stdin if args.jsonl == "-" else open(args.jsonl, encoding="utf-8")  # noqa: SIM115
        with stream:
            parsed = list(_jsonl_items(stream))
        checkable = [(n, item) for n, item in parsed if not isinstance(item, GuardInputError)]
        results = dict(
            zip(
                (n for n, _ in checkable),
                client.check_many(
                    [item for _, item in checkable],
                    concurrency=args.concurrency,
                    progress=args.progress,
                    **options,
                ),
                strict=True,
            )
        )
        failed = 0
        for number, item in parsed:
            if isinstance(item, GuardInputError):
                result = Verdict.from_error(GuardMode.PROMPT, item, None)
            else:
                result = results[number]
            if result.decided or result.policy is not None:  # a verdict, or one the failure policy made
                _emit({"line": number, **verdict_json(result, strictness, args.explain, policy)}, out)
            else:
                failed += 1
                _emit({"line": number, "error": result.error, "error_type": result.error_type}, out)
        return 1 if failed else 0


def _parse(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    policy = load_policy(args.policy)
    text = sys.stdin.read()
    try:
        verdict = parse_verdict(text, GuardMode(args.mode), policy)
    except GuardParseError as exc:
        print(f"error: cannot parse a verdict: {exc.reason}", file=err)
        return 1
    _emit(verdict_json(verdict, Strictness(args.strictness), policy=policy), out)
    return 0


POLICY_HELP = (
    "a guard_policy.yaml (or a directory holding one) whose categories the prompt lists, usually with --model "
    "the adapter trained on it; default: the model's published policy"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="guard", description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="action", required=True)
    check = sub.add_parser("check", help="check a prompt, a response, or a JSONL batch")
    check.add_argument("text", nargs="?", help="a user prompt to check")
    check.add_argument("--response", nargs=2, metavar=("PROMPT", "RESPONSE"), help="check an assistant response")
    check.add_argument("--jsonl", metavar="FILE", help="batch input, '-' for stdin")
    check.add_argument("--url", help=f"guard server (default ${defaults.ENV_URL}, else {defaults.DEFAULT_BASE_URL})")
    check.add_argument("--api-key", help=f"bearer token (default ${defaults.ENV_API_KEY})")
    check.add_argument(
        "--model", help=f"served model name (default ${defaults.ENV_MODEL}, else {defaults.DEFAULT_MODEL})"
    )
    check.add_argument("--timeout", type=float, default=defaults.DEFAULT_TIMEOUT, help="seconds per request")
    check.add_argument("--policy", metavar="FILE", help=POLICY_HELP)
    add_check_flags(check)
    check.add_argument("--on-error", choices=[p.value for p in FailurePolicy], default=FailurePolicy.RAISE.value)
    check.add_argument("--concurrency", type=int, default=defaults.DEFAULT_CONCURRENCY)
    check.add_argument("--progress", action="store_true", help="progress bar on stderr for --jsonl")
    check.add_argument(
        "--strictness",
        choices=[s.value for s in Strictness],
        default=Strictness.STRICT.value,
        help="how Controversial is read: in `flagged`, and whether --verdict-only fetches its details",
    )
    check.add_argument(
        "--explain",
        action="store_true",
        help="explain the verdict from the published policy: readable text for one check (instead of the JSON), "
        "an 'explanation' object on each line with --jsonl or --json",
    )
    check.add_argument("--json", action="store_true", help="with --explain on one check: JSON, not text")
    check.set_defaults(run=_check)

    parse = sub.add_parser("parse", help="parse raw model output from stdin into a verdict")
    parse.add_argument("--mode", choices=[m.value for m in GuardMode], default=GuardMode.PROMPT.value)
    parse.add_argument("--strictness", choices=[s.value for s in Strictness], default=Strictness.STRICT.value)
    parse.add_argument("--policy", metavar="FILE", help="read the labels against this guard_policy.yaml")
    parse.set_defaults(run=_parse)
    for name, (_, _, help_text) in APPLICATIONS.items():
        sub.add_parser(name, help=help_text, add_help=False)  # parsed by the application itself
    return parser


def run_application(name: str, argv: list[str], out: TextIO, err: TextIO) -> int:
    """`guard NAME ARGV...` for a command an application provides: its `main(argv, out, err)`."""
    package, extras = APPLICATIONS[name][:2]
    try:
        application = importlib.import_module(package)
    except ModuleNotFoundError as exc:
        missing = exc.name or package
        print(
            f"error: `guard {name}` needs {missing}, which is not installed: "
            f"pip install 'qwen3guard-serving[{extras}]'",
            file=err,
        )
        return 2
    return int(application.main(argv, out, err))


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    out, err = out or sys.stdout, err or sys.stderr
    if argv and argv[0] in APPLICATIONS:
        return run_application(argv[0], argv[1:], out, err)
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args, out, err))
    except (GuardInputError, GuardPolicyError) as exc:
        print(f"error: {exc}", file=err)
        return 2
    except GuardError as exc:
        print(f"error: {exc}", file=err)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=err)
        return 2


if __name__ == "__main__":
    sys.exit(main())
