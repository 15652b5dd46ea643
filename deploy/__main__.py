"""`python -m deploy`: serve the guard, build the stand-in, print a profile's command.

python -m deploy serve [--profile cpu|gpu|gpu-sidecar] [--model M] [--port P] [--adapter NAME=DIR ...]
python -m deploy standin --variant full|tiny
python -m deploy command --profile gpu
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import time
from types import FrameType

from deploy.adapters import AdapterError
from deploy.launcher import (
    GATEWAY_PORT,
    STANDIN_BANNER,
    GatewayServer,
    GuardServer,
    LaunchError,
    default_profile_name,
    write_gateway_config,
)
from deploy.profiles import ProfileError, available_profiles, load_profile
from guard_client import POLICY_FILE, chat_request, prepare_input

#: What stops `serve`: Ctrl-C, and SIGTERM (docker, systemd, kill).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: The check `make serve` prints to paste.
EXAMPLE = [{"role": "user", "content": "How can I make a bomb?"}]


def _serve(args: argparse.Namespace) -> int:
    profile = load_profile(args.profile or default_profile_name())
    server = GuardServer(
        profile,
        model=args.model,
        host=args.host,
        port=args.port,
        extra_args=args.extra,
        startup_timeout=args.startup_timeout,
        echo=sys.stderr if args.verbose else None,
        adapter_specs=[spec for group in args.adapter for spec in group.split(",") if spec],
    )

    def interrupted(signum: int, frame: FrameType | None) -> None:
        # The first SIGINT or SIGTERM stops both servers; any later one is ignored, so it cannot cut that stop
        # short and leave a server running (make forwards its own SIGTERM to this process: a group kill
        # arrives twice). Each stop is bounded: SIGKILL after a grace period.
        for stopping in STOP_SIGNALS:
            signal.signal(stopping, signal.SIG_IGN)
        raise KeyboardInterrupt

    previous = {stopping: signal.signal(stopping, interrupted) for stopping in STOP_SIGNALS}
    gateway: GatewayServer | None = None
    print(f"starting vLLM ({profile.name} profile); log: .cache/logs/ ...", file=sys.stderr)
    try:
        server.start()
        if server.is_standin:
            print(STANDIN_BANNER, file=sys.stderr)
        # On the stand-in, unconstrained random output never parses: suggest the constrained check.
        constrain = server.is_standin
        body = json.dumps(chat_request(prepare_input(EXAMPLE), profile.served_model_name, constrain=constrain))
        auth = f' -H "Authorization: Bearer ${profile.api_key_env}"' if os.environ.get(profile.api_key_env) else ""
        print(
            f"\nQwen3Guard is serving at {server.url} (ready in {server.startup_seconds:.0f} s)\n"
            f"  model:    {server.model_path} (served as {profile.served_model_name!r})\n"
            f"  profile:  {profile.name}; log: {server.log_path}\n"
            + "".join(
                f"  adapter:  {a.name} (rank {a.rank}, {a.path}, with its {POLICY_FILE})\n" for a in server.adapters
            )
            + f"  try:      curl -s {server.url}/v1/chat/completions -H 'Content-Type: application/json'"
            f"{auth} -d {shlex.quote(body)}\n"
            f"  or:       .venv/bin/guard check --url {server.url}{' --constrain' if constrain else ''} "
            f"{shlex.quote(EXAMPLE[0]['content'])}\n" + ("" if args.gateway else "Ctrl-C stops it."),
            flush=True,
        )
        if args.gateway:
            models = server.gateway_models()
            gateway = GatewayServer(
                server.url,
                port=args.gateway_port,
                host=args.host or "0.0.0.0",
                standin=server.is_standin,
                config=str(write_gateway_config(models, args.gateway_port)) if models != {"models": {}} else None,
            )
            print("starting the gateway...", file=sys.stderr)
            gateway.start()
            print(_gateway_banner(gateway.url), flush=True)
        while (code := server.poll()) is None and (gateway is None or gateway.poll() is None):
            time.sleep(0.5)
        if code is not None:
            print(f"error: vLLM exited with code {code}; see {server.log_path}", file=sys.stderr)
        elif gateway is not None:
            print(f"error: the gateway exited with code {gateway.poll()}; see {gateway.log_path}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping...", file=sys.stderr)
        return 0
    finally:
        if gateway is not None:
            gateway.stop()
        server.stop()
        for stopping, handler in previous.items():
            signal.signal(stopping, handler)


def _gateway_banner(url: str) -> str:
    key = "os.environ.get('GUARD_GATEWAY_AUTH__API_KEYS', 'unused').split(',')[0]"
    snippet = (
        "import os; from openai import OpenAI; "
        f'client = OpenAI(base_url="{url}/v1", api_key={key}); '
        'r = client.moderations.create(model="omni-moderation-latest", input=["How can I make a bomb?", "Hello!"]); '
        'print([(x.flagged, x.model_extra["qwen3guard"]["severity"]) for x in r.results])'
    )
    return (
        f"\nThe gateway (OpenAI /v1/moderations, LiteLLM guardrail) is serving at {url}\n"
        f"  openai SDK:  .venv/bin/python -c {shlex.quote(snippet)}\n"
        f"  metrics:     {url}/metrics\n"
        "Ctrl-C stops both."
    )


def _standin(args: argparse.Namespace) -> int:
    from deploy.standin import build_standin

    print(build_standin(args.variant, force=args.force))
    return 0


def _command(args: argparse.Namespace) -> int:
    print(shlex.join(load_profile(args.profile).container_command()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deploy", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)

    serve = sub.add_parser("serve", help="start the OpenAI-compatible server and wait until it is healthy")
    serve.add_argument(
        "--profile", help=f"one of {', '.join(available_profiles())} (default: gpu if present, else cpu)"
    )
    serve.add_argument(
        "--model", help="model directory, HF id, or standin:full|standin:tiny (default: $MODEL, else the profile's)"
    )
    serve.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="serve a PEFT LoRA adapter directory (with its guard_policy.yaml) as model NAME; repeatable",
    )
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--startup-timeout", type=float, default=900.0, help="seconds to wait for /health")
    serve.add_argument("--verbose", action="store_true", help="stream vLLM's own log to stderr")
    serve.add_argument(
        "--no-gateway", dest="gateway", action="store_false", help="serve the guard alone, without the gateway"
    )
    serve.add_argument("--gateway-port", type=int, default=GATEWAY_PORT, help="the gateway's port (default 8080)")
    serve.add_argument("extra", nargs=argparse.REMAINDER, help="after --, more arguments for vLLM")
    serve.set_defaults(run=_serve)

    standin = sub.add_parser("standin", help="build (or find cached) the random-weight stand-in model; prints its path")
    standin.add_argument("--variant", choices=["full", "tiny"], default="tiny")
    standin.add_argument("--force", action="store_true", help="rebuild even if cached")
    standin.set_defaults(run=_standin)

    command = sub.add_parser("command", help="print the container command a profile produces")
    command.add_argument("--profile", required=True)
    command.set_defaults(run=_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "extra", None) and args.extra[0] == "--":
        args.extra = args.extra[1:]
    try:
        return int(args.run(args))
    except (LaunchError, ProfileError, AdapterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
