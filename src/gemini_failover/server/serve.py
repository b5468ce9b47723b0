"""``gemini-failover serve``: settings -> logging -> runtime -> one transport.

Every transport validates first, before anything is served: the settings (one line
naming the setting and its variable), the API key, the bind policy, the ports. Unknown
GEMINI_FAILOVER_* variables are warned about. Then:

stdio (default) speaks MCP on stdin/stdout, so every log line goes to stderr. To answer
``initialize`` and ``tools/list`` about as fast as a bare MCPServer, the logging stack
and the failover manager are built by ``Runtime.start()`` while stdio is already
answering. The HTTP transports (streamable HTTP at /mcp, SSE at /sse) build everything
first and run uvicorn on a socket bound here.

Right after the runtime has started, ``warm_up`` imports the request path and fetches
the models' limits in the background, so the first tool calls do not wait for them.

The CLI pauses the cyclic garbage collector while the server is built; each transport
resumes it before it serves (gc_pause.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import logging
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import anyio

from gemini_failover.server import gc_pause, stop_signals
from gemini_failover.server.runtime import Runtime, StartupError

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from gemini_failover.config import HttpSettings, Settings

log = logging.getLogger("gemini_failover.server")

Transport = Literal["stdio", "sse", "http"]

#: Longest wait before the stdio runtime starts without being asked (see serve_stdio).
STDIO_START_DELAY = 1.0


@dataclass(frozen=True, slots=True)
class ServeOptions:
    transport: Transport = "stdio"
    host: str | None = None  # None: settings.host
    port: int | None = None  # None: settings.port
    config_file: str | None = None
    metrics_port: int | None = None  # None: settings.metrics_port
    emulator: bool = False
    scenario: str | None = None
    allowed_hosts: tuple[str, ...] = field(default=())


def load(options: ServeOptions) -> Settings:
    """The settings, with every problem as a StartupError (the message says the fix)."""
    from gemini_failover.config import ConfigError, load_settings

    try:
        return load_settings(options.config_file)
    except ConfigError as exc:
        raise StartupError(str(exc)) from None


def check(options: ServeOptions, settings: Settings) -> None:
    """What would stop the server from serving besides the API key (which Runtime
    checks): an open non-loopback bind."""
    if options.transport != "stdio" or _metrics_port(options, settings) is not None:
        from gemini_failover.server.http import Security

        Security.for_bind(_host(options, settings), _token(settings), options.allowed_hosts)


def check_scenario(path: str) -> None:
    """An emulator scenario that cannot be read or is invalid: one line, before serving."""
    from pydantic import ValidationError

    from gemini_failover.emulator import load_scenario

    try:
        load_scenario(path)
    except OSError as exc:
        raise StartupError(f"--scenario {path}: {exc.strerror}") from None
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise StartupError(f"--scenario {path}: {where}: {first['msg']}") from None
    except ValueError as exc:
        raise StartupError(f"--scenario {path}: not valid JSON ({exc})") from None


def warn_unknown_variables() -> None:
    from gemini_failover.config import unknown_variables

    for warning in unknown_variables():
        log.warning("%s", warning)


def _host(options: ServeOptions, settings: Settings) -> str:
    return options.host if options.host is not None else settings.host


def _metrics_port(options: ServeOptions, settings: Settings) -> int | None:
    return options.metrics_port if options.metrics_port is not None else settings.metrics_port


def _token(settings: Settings) -> str | None:
    return settings.auth_token.get_secret_value() if settings.auth_token else None


# -- logging ------------------------------------------------------------------------------


class _EarlyHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Warnings to stderr until structlog is configured (and so that the MCP SDK's
    logging.basicConfig does not install a handler of its own)."""


def early_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = _EarlyHandler(sys.stderr)
        handler.setLevel(logging.WARNING)
        root.addHandler(handler)
        root.setLevel(logging.WARNING)


def full_logging(settings: Settings) -> None:
    """structlog to stderr, redacted (Runtime.start registers the secrets)."""
    from gemini_failover.observability.logging import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _EarlyHandler)]:
        root.removeHandler(handler)


# -- sockets and uvicorn ------------------------------------------------------------------


def bind(host: str, port: int) -> socket.socket:
    bare = host.strip("[]")
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((bare, port))
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def url_of(host: str, port: int) -> str:
    bare = host.strip("[]")
    return f"http://[{bare}]:{port}" if ":" in bare else f"http://{bare}:{port}"


async def run_uvicorn(
    app: ASGIApp,
    sock: socket.socket,
    limits: HttpSettings,
    *,
    lifespan: Literal["on", "off"] = "on",
    parser: Literal["h11", "httptools"] = "h11",
    defer_signals: bool = True,
) -> None:
    """``defer_signals`` False: a stop signal ends the process at once, as uvicorn does
    (the stdio transport's metrics listener: stdio is what the process serves)."""
    import uvicorn

    from gemini_failover.server.http import uvicorn_limits

    config = uvicorn.Config(
        app,
        lifespan=lifespan,
        log_config=None,  # our structlog handler (stderr, redacted) takes uvicorn's records
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=5,
        **uvicorn_limits(limits, parser),
    )
    server = stop_signals.server(config, defer_signals=defer_signals)
    try:
        await server.serve(sockets=[sock])
    finally:
        sock.close()


# -- transports -----------------------------------------------------------------------------


async def warm_up(runtime: Runtime) -> None:
    """After start-up, in the background: import the request path (in a worker thread)
    and fetch the models' limits, so the first tool calls wait for neither."""
    from gemini_failover.tools.handlers import warm_up as import_request_path

    await asyncio.to_thread(import_request_path)
    await runtime.manager.fetch_profiles()


async def _start_in_background(
    runtime: Runtime,
    options: ServeOptions,
    tg: anyio.abc.TaskGroup,
    metrics: socket.socket | None,
    exit_on_failure: bool,
) -> None:
    """Start the runtime while stdio already answers; on a start-up error, stop (the
    CLI prints the error, once)."""
    settings = runtime.settings
    # structlog is imported off the event loop: it is still writing the handshake.
    await asyncio.to_thread(importlib.import_module, "gemini_failover.observability.logging")
    full_logging(settings)
    if metrics is not None:
        from gemini_failover.server.http import Security, metrics_app

        host = _host(options, settings)
        security = Security.for_bind(host, _token(settings), options.allowed_hosts)
        log.info("metrics at %s/metrics", url_of(host, metrics.getsockname()[1]))
        app = metrics_app(runtime, security)
        listener = functools.partial(run_uvicorn, lifespan="off", defer_signals=False)
        tg.start_soon(listener, app, metrics, settings.http)
    try:
        await runtime.start()
    except Exception as exc:  # any start-up failure ends the server, said once
        if not isinstance(exc, StartupError | OSError):
            # not one we foresaw: keep its traceback for whoever debugs it (stderr)
            log.error("start-up failed", exc_info=exc)
        if exit_on_failure:
            _exit_now(str(exc) or type(exc).__name__)
        runtime.fail(StartupError(str(exc)))
        tg.cancel_scope.cancel()
        return
    tg.start_soon(warm_up, runtime)


def _exit_now(message: str) -> NoReturn:
    """The CLI's one-line error, then exit. The stdio transport reads stdin in a worker
    thread blocked in read(2), which no cancellation reaches: a normal shutdown would
    wait for the client's next line. Nothing needs cleaning up: the runtime failed to
    start, and an emulator or a metrics socket goes with the process."""
    sys.stderr.write(f"gemini-failover: error: {message}\n")
    sys.stderr.flush()
    os._exit(2)


class _StartAfterListing:
    """MCP middleware: once the client has listed the tools, start the runtime."""

    def __init__(self, kick: Callable[[], None]) -> None:
        self.kick = kick

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        result = await call_next(ctx)
        if ctx.method == "tools/list":
            self.kick()
        return result


async def _kick_later(kick: Callable[[], None]) -> None:
    await anyio.sleep(STDIO_START_DELAY)
    kick()


async def serve_stdio(
    runtime: Runtime,
    options: ServeOptions,
    metrics: socket.socket | None = None,
    *,
    exit_on_failure: bool = False,
) -> None:
    """Serve stdio. The runtime starts after the client's first tools/list, on the
    first tool call, or STDIO_START_DELAY seconds after start, whichever comes first:
    its imports then do not slow down the handshake. ``metrics``: a bound socket for
    /metrics. ``exit_on_failure`` (the CLI): a start-up failure ends the process at
    once (see _exit_now)."""
    server = runtime.build_server()
    try:
        async with anyio.create_task_group() as tg:
            kicked = False

            def kick() -> None:
                nonlocal kicked
                if not kicked:
                    kicked = True
                    tg.start_soon(
                        _start_in_background, runtime, options, tg, metrics, exit_on_failure
                    )

            runtime.start_on_demand(kick)
            server.middleware.append(_StartAfterListing(kick))
            tg.start_soon(_kick_later, kick)
            gc_pause.resume()  # the server is built (see gc_pause)
            await server.run_stdio_async()
            tg.cancel_scope.cancel()
    finally:
        await runtime.aclose()
        if metrics is not None:
            metrics.close()  # (already closed if /metrics was served: harmless)
    failed = runtime.start_error
    if isinstance(failed, StartupError):
        raise failed


async def serve_http(runtime: Runtime, options: ServeOptions) -> None:
    from gemini_failover.server.http import MCP_PATH, SSE_PATH, Security, build_http_app

    settings = runtime.settings
    token = _token(settings)
    host = _host(options, settings)
    security = Security.for_bind(host, token, options.allowed_hosts)
    port = options.port if options.port is not None else settings.port
    sock = bind(host, port)
    async with runtime, anyio.create_task_group() as tg:
        tg.start_soon(warm_up, runtime)
        server = runtime.build_server()
        base = url_of(host, sock.getsockname()[1])
        transport = options.transport
        log.info(
            "serving MCP over %s at %s%s (auth: %s; metrics: %s/metrics)",
            "streamable HTTP" if transport == "http" else "SSE",
            base,
            MCP_PATH if transport == "http" else SSE_PATH,
            "bearer token" if token else "none (loopback only)",
            base,
        )
        app = build_http_app(runtime, server, "http" if transport == "http" else "sse", security)
        gc_pause.resume()  # the server is built (see gc_pause)
        await run_uvicorn(app, sock, settings.http)
        tg.cancel_scope.cancel()
    log.info("server stopped (state, connections and traces closed)")


def run(options: ServeOptions) -> None:
    """Blocking entry point (the CLI). Every start-up problem is a StartupError, raised
    before anything is served."""
    settings = load(options)
    check(options, settings)
    if options.scenario is not None:
        check_scenario(options.scenario)
    runtime = Runtime(
        settings,
        emulator=options.emulator,
        emulator_scenario=options.scenario,
        # a stdio client runs on this machine: its roots are folders here; an HTTP
        # client's are not (see FileInputs.trust_client_roots)
        trust_client_roots=options.transport == "stdio",
    )
    if options.transport == "stdio":
        early_logging()
        warn_unknown_variables()
        port = _metrics_port(options, settings)
        metrics = None
        if port is not None:
            metrics = bind(_host(options, settings), port)
            metrics.listen(128)
        main = serve_stdio(runtime, options, metrics, exit_on_failure=True)
    else:
        full_logging(settings)
        warn_unknown_variables()
        main = serve_http(runtime, options)
    # a stop signal is raised again once everything is closed (stop_signals)
    with contextlib.suppress(KeyboardInterrupt), stop_signals.deferred():
        asyncio.run(main)
