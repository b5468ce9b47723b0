"""``gemini-failover gateway``: settings -> logging -> runtime -> the gateway on uvicorn.

The same start-up as the MCP server's HTTP transports (the settings, the runtime with
its manager, metrics, logs and Redis state, the socket and uvicorn come from
:mod:`gemini_failover.server`), with the gateway's own bind rule: a non-loopback
address needs gateway keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from gemini_failover.config import Settings
from gemini_failover.gateway.auth import gateway_security
from gemini_failover.server import gc_pause, stop_signals
from gemini_failover.server.runtime import Runtime, StartupError, require_api_key
from gemini_failover.server.serve import (
    ServeOptions,
    bind,
    check_scenario,
    full_logging,
    load,
    run_uvicorn,
    url_of,
    warn_unknown_variables,
)

__all__ = ["GatewayOptions", "gateway_keys", "run", "serve_gateway"]

log = logging.getLogger("gemini_failover.gateway")


@dataclass(frozen=True, slots=True)
class GatewayOptions:
    host: str | None = None  # None: settings.host
    port: int | None = None  # None: settings.gateway_port
    config_file: str | None = None
    emulator: bool = False
    scenario: str | None = None
    allowed_hosts: tuple[str, ...] = field(default=())
    loop: Literal["auto", "asyncio", "uvloop"] = "auto"


def gateway_keys(settings: Settings) -> list[str]:
    return [k.get_secret_value() for k in settings.gateway_keys if k.get_secret_value()]


def _register_keys(keys: list[str]) -> None:
    from gemini_failover.observability.logging import register_secret

    for key in keys:
        register_secret(key)


async def serve_gateway(runtime: Runtime, options: GatewayOptions) -> None:
    from gemini_failover.gateway.app import build_gateway_app

    settings = runtime.settings
    keys = gateway_keys(settings)
    host = options.host if options.host is not None else settings.host
    security = gateway_security(host, keys, options.allowed_hosts)
    port = options.port if options.port is not None else settings.gateway_port
    sock = bind(host, port)
    async with runtime:
        # the models' limits, in the background: the first requests do not wait for them
        profiles = asyncio.create_task(runtime.manager.fetch_profiles())
        app = build_gateway_app(runtime, security, keys=keys)
        gc_pause.resume()  # what start-up built is frozen out of collections (gc_pause)
        log.info(
            "Gemini-compatible gateway at %s/v1beta (chain: %s; aliases: %s; client keys: %s; "
            "metrics: %s/metrics; event loop: %s)",
            url_of(host, sock.getsockname()[1]),
            ", ".join(runtime.settings.models),
            ", ".join(settings.gateway_aliases),
            f"{len(keys)} configured" if keys else "none (loopback only)",
            url_of(host, sock.getsockname()[1]),
            type(asyncio.get_running_loop()).__module__.split(".")[0],
        )
        try:
            # httptools: the gateway's hot path (see docs/gateway.md, Performance)
            await run_uvicorn(app, sock, settings.http, parser="httptools")
        finally:
            profiles.cancel()
    log.info("gateway stopped (state, connections and traces closed)")


def run(options: GatewayOptions) -> None:
    """Blocking entry point (the CLI). Every start-up problem is a StartupError."""
    settings = load(ServeOptions(config_file=options.config_file))
    require_api_key(settings, options.emulator)
    keys = gateway_keys(settings)
    host = options.host if options.host is not None else settings.host
    gateway_security(host, keys, options.allowed_hosts)
    from gemini_failover.gateway.routing import ChainRouter

    try:
        ChainRouter(
            settings.models,
            settings.embedding_models,
            settings.gateway_aliases,
            settings.default_endpoint_name,
        )
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    if options.scenario is not None:
        check_scenario(options.scenario)
    runtime = Runtime(settings, emulator=options.emulator, emulator_scenario=options.scenario)
    full_logging(settings)
    warn_unknown_variables()
    _register_keys(keys)
    factory = loop_factory(options.loop)
    # a stop signal is raised again once everything is closed (stop_signals)
    with (
        contextlib.suppress(KeyboardInterrupt),
        stop_signals.deferred(),
        asyncio.Runner(loop_factory=factory) as runner,
    ):
        runner.run(serve_gateway(runtime, options))


def loop_factory(
    choice: Literal["auto", "asyncio", "uvloop"],
) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The gateway's event loop: uvloop where installed (``auto``; its loop is C where
    asyncio's is Python: ~12% less CPU per call, see docs/gateway.md#cost), else
    asyncio's (None)."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise StartupError("--loop uvloop: uvloop is not installed") from None
        return None
    return uvloop.new_event_loop
