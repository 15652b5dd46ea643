"""`python -m guard_gateway serve` (also the `guard-gateway` console script).

python -m guard_gateway serve [--config FILE] [--guard-url URL] [--upstream-url URL] [--host H] [--port P]
                              [--set section.field=value ...]

Every configuration field can also be set by `GUARD_GATEWAY_<SECTION>__<FIELD>` (see README).
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys

import uvicorn

from guard_gateway.app import create_app
from guard_gateway.config import ConfigError, GatewayConfig, example_yaml, load_config

#: The named flags and the configuration field each one sets.
SHORTCUTS = {
    "guard_url": "guard.url",
    "upstream_url": "upstream.url",
    "host": "host",
    "port": "port",
}


def config_from_args(args: argparse.Namespace) -> GatewayConfig:
    overrides: dict[str, str] = {}
    for item in args.set or []:
        dotted, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected section.field=value")
        overrides[dotted.strip()] = value
    for flag, dotted in SHORTCUTS.items():
        value = getattr(args, flag)
        if value is not None:
            overrides[dotted] = str(value)
    return load_config(args.config, overrides)


#: Objects allocated (net) between young collections while serving: collections then take about 1% of a
#: request's CPU instead of 11% (gc.callbacks over 8,000 requests, 64 in flight, instant guard).
YOUNG_GENERATION_THRESHOLD = 10_000


def _serve(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    logging.basicConfig(level=config.logging.level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every upstream request at INFO: a second, costlier access log (py-spy: 6% of a request's CPU).
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    app = create_app(config)
    constrain = {True: "on", False: "off", None: "on if the guard serves the random-weight stand-in"}
    logging.getLogger("guard_gateway").info(
        "serving on %s:%d in front of the guard at %s; constrained decoding: %s",
        config.host,
        config.port,
        config.guard.url,
        constrain[config.guard.constrain],
    )
    # What exists now (modules, the app, its models and schemas) lives as long as the process: keep it out
    # of every later collection, which would otherwise walk it all each time the young generations
    # overflow into the old one: a quarter of a request's CPU against an instant guard (775 -> 580 us).
    gc.collect()
    gc.freeze()
    # With dozens of requests in flight, Python's default young generation (700 objects) fills while their
    # objects are still alive, so they are walked again and again on their way to the old one.
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *gc.get_threshold()[1:])
    # uvicorn's own access log is off: the gateway's (middleware.py) counts and times every request.
    uvicorn.run(app, host=config.host, port=config.port, log_level=config.logging.level, access_log=False)
    return 0


def _config(args: argparse.Namespace) -> int:
    print(example_yaml(), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m guard_gateway", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    serve = sub.add_parser("serve", help="serve the gateway (OpenAI moderations, LiteLLM guardrail, native checks)")
    serve.add_argument("--config", help="YAML configuration file")
    serve.add_argument("--guard-url", help="the guard's vLLM server (guard.url)")
    serve.add_argument("--upstream-url", help="the main LLM behind the chat proxy (upstream.url)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--set", action="append", metavar="FIELD=VALUE", help="any field, e.g. cache.enabled=false")
    serve.set_defaults(run=_serve)
    config = sub.add_parser("config", help="print every configuration field with its default, as YAML")
    config.set_defaults(run=_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
