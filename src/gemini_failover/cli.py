"""``gemini-failover serve | emulate | check | demo``.

Importing this module is cheap (argparse only): each command imports what it needs,
and nothing imports google.genai at start-up (the SDK is loaded on first use).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from typing import Any

PROG = "gemini-failover"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="An MCP server for Gemini that keeps working when a Gemini model does not.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the MCP server (stdio by default)",
        description="Run the MCP server. Settings come from the environment "
        "(GEMINI_API_KEY, GEMINI_FAILOVER_*) and an optional TOML file; flags win.",
    )
    serve.add_argument(
        "--transport",
        choices=("stdio", "sse", "http"),
        default="stdio",
        help="stdio (default; for Claude Desktop), sse, or http (streamable HTTP at /mcp)",
    )
    serve.add_argument("--host", help="bind address for sse/http/metrics (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port for sse/http (default 8000; 0: any free)")
    serve.add_argument("--config", metavar="FILE", help="TOML settings file")
    serve.add_argument(
        "--metrics-port", type=int, help="also serve /metrics on this port (for stdio)"
    )
    serve.add_argument(
        "--emulator",
        action="store_true",
        help="answer from a built-in Gemini emulator (offline, no API key; NOT Gemini)",
    )
    serve.add_argument(
        "--scenario", metavar="FILE", help="emulator scenario JSON (with --emulator)"
    )
    serve.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="extra Host name accepted by the DNS-rebinding guard (repeatable)",
    )

    emulate = sub.add_parser(
        "emulate",
        help="run the Gemini API emulator with fault injection",
        description="Serve the Gemini REST API emulator (point GEMINI_FAILOVER_BASE_URL at it).",
    )
    emulate.add_argument("--host", default="127.0.0.1")
    emulate.add_argument("--port", type=int, default=8765)
    emulate.add_argument("--scenario", metavar="FILE", help="scenario JSON: profiles and faults")

    gateway = sub.add_parser(
        "gateway",
        help="run the Gemini-API-compatible failover gateway (docs/gateway.md)",
        description="Serve the Gemini API (v1beta) in front of the failover manager: point "
        "any google-genai client's base URL at it.",
    )
    gateway.add_argument("--host", help="bind address (default 127.0.0.1)")
    gateway.add_argument("--port", type=int, help="port (default 8080; 0: any free)")
    gateway.add_argument("--config", metavar="FILE", help="TOML settings file")
    gateway.add_argument("--emulator", action="store_true", help="upstream: a built-in emulator")
    gateway.add_argument("--scenario", metavar="FILE", help="emulator scenario JSON")
    gateway.add_argument("--allowed-host", action="append", default=[], metavar="NAME")
    gateway.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="event loop (default auto: uvloop where installed)",
    )

    check = sub.add_parser(
        "check",
        help="validate the configuration and print the effective settings (secrets masked)",
    )
    check.add_argument("--config", metavar="FILE", help="TOML settings file")

    # Its arguments are the demo's own (see `gemini-failover demo --help`); main()
    # hands them over unparsed.
    sub.add_parser("demo", help="run the offline outage drill (about 15-20 s)")
    return parser


#: Exit status for a configuration the server cannot start with (a bad setting, no API
#: key, an open non-loopback bind, a port it cannot listen on): fix it, do not retry.
CONFIG_ERROR = 2


def _fail(message: str, code: int = 1) -> int:
    """One line on stderr (a message never spans lines: clients show the first)."""
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return code


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def _serve(args: argparse.Namespace) -> int:
    if args.scenario and not args.emulator:
        return _fail("--scenario needs --emulator")
    from gemini_failover.server import gc_pause

    with gc_pause.paused():  # from before the first heavy import until the server is built
        return _run_server(args)


def _run_server(args: argparse.Namespace) -> int:
    from gemini_failover.server.runtime import StartupError
    from gemini_failover.server.serve import ServeOptions, run

    options = ServeOptions(
        transport=args.transport,
        host=args.host,
        port=args.port,
        config_file=args.config,
        metrics_port=args.metrics_port,
        emulator=args.emulator,
        scenario=args.scenario,
        allowed_hosts=tuple(args.allowed_host),
    )
    try:
        run(options)
    except StartupError as exc:
        return _fail(str(exc), CONFIG_ERROR)
    return 0


def _gateway(args: argparse.Namespace) -> int:
    from gemini_failover.gateway.serve import GatewayOptions, run
    from gemini_failover.server import gc_pause
    from gemini_failover.server.runtime import StartupError

    if args.scenario and not args.emulator:
        return _fail("--scenario needs --emulator")
    options = GatewayOptions(
        args.host,
        args.port,
        args.config,
        args.emulator,
        args.scenario,
        tuple(args.allowed_host),
        args.loop,
    )
    try:
        with gc_pause.paused():  # until the gateway is built (serve_gateway resumes it)
            run(options)
    except StartupError as exc:
        return _fail(str(exc))
    return 0


def _emulate(args: argparse.Namespace) -> int:
    from gemini_failover.emulator import run_emulator

    try:
        run_emulator(args.host, args.port, args.scenario)
    except KeyboardInterrupt:
        pass
    except (OSError, ValueError) as exc:
        return _fail(str(exc))
    return 0


def effective_settings(config_file: str | None) -> dict[str, Any]:
    """The settings as the server would see them, secrets masked (raises ConfigError).
    ``_without_credentials`` lists the endpoints in use that have no key."""
    from gemini_failover.config import load_settings

    settings = load_settings(config_file)
    data: dict[str, Any] = settings.model_dump(mode="json")  # endpoint secrets: masked
    for name in ("api_key", "auth_token", "redis_url"):
        data[name] = "**********" if getattr(settings, name) is not None else None
    data["_without_credentials"] = settings.endpoints_without_credentials()
    return data


def _check(args: argparse.Namespace) -> int:
    """Every setting, validated as `serve` validates it (exit 2 on the first problem)."""
    from gemini_failover.config import ConfigError, unknown_variables

    try:
        data = effective_settings(args.config)
    except ConfigError as exc:
        return _fail(str(exc), CONFIG_ERROR)
    missing = data.pop("_without_credentials")
    print(json.dumps(data, indent=2, sort_keys=True))
    for warning in unknown_variables():
        _warn(warning)
    for name in missing:
        if name == "gemini" and name not in data["endpoints"]:
            _warn("GEMINI_API_KEY is not set; `serve` needs it unless run with --emulator")
        else:
            _warn(
                f"the endpoint {name!r} has no api_key; `serve` needs one unless run with "
                "--emulator"
            )
    from gemini_failover.server.http import is_loopback

    if not is_loopback(data["host"]) and data["auth_token"] is None:
        _warn(
            f"host {data['host']} is not loopback and GEMINI_FAILOVER_AUTH_TOKEN is not set: "
            "`serve --transport http|sse` (and --metrics-port) would refuse to start"
        )
    return 0


def _demo(argv: list[str]) -> int:
    try:
        module = importlib.import_module("gemini_failover.demo")
    except ModuleNotFoundError as exc:
        if exc.name not in ("gemini_failover.demo",):
            raise
        return _fail("the demo is not part of this build (gemini_failover.demo is missing)", 2)
    result = module.main(argv)
    return int(result or 0)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["demo"]:
        return _demo(arguments[1:])
    args = _parser().parse_args(arguments)
    commands = {"serve": _serve, "emulate": _emulate, "check": _check, "gateway": _gateway}
    return commands[args.command](args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
