"""The process-wide runtime: one backend, one failover manager, one metrics registry.

Every transport serves every connection from the same Runtime. It is started once per
process, around the transport (never in the MCP lifespan, which SSE enters once per
connection), and closed when the transport stops.

Start-up is split so that a stdio client gets its ``initialize`` and ``tools/list``
answers about as fast as from a bare MCPServer: constructing a Runtime and building its
server import only the MCP SDK and the tool definitions; ``start()`` imports the
manager, metrics and logging stack in a worker thread and builds them, while the
transport is already serving. Tool calls wait for it (``get_manager()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
import urllib.parse
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from gemini_failover.tracing_switch import exporter_name, tracing_configured

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from gemini_failover.config import Settings
    from gemini_failover.emulator import Emulator, EmulatorServer
    from gemini_failover.observability.metrics import ManagerMetrics
    from gemini_failover.observability.tracing import Tracing
    from gemini_failover.resilience.manager import FailoverManager
    from gemini_failover.server.health import FailoverClock
    from gemini_failover.state import StateStore

log = logging.getLogger("gemini_failover.server")

#: The key sent to the in-process emulator (it only checks that one is present).
EMULATOR_API_KEY = "emulator-mode-no-key"

#: Imported in a worker thread by start(), off the event loop.
_HEAVY_MODULES = (
    "gemini_failover.observability.logging",
    "gemini_failover.observability.metrics",
    "gemini_failover.resilience.manager",
    "gemini_failover.gemini.backend",
    "gemini_failover.gemini.endpoints",
    "gemini_failover.server.health",
)


class StartupError(Exception):
    """The server cannot start as configured; the message says what to change."""


MISSING_KEY = (
    "GEMINI_API_KEY is not set: export GEMINI_API_KEY (or GOOGLE_API_KEY) with a Gemini "
    "API key (in Claude Desktop: the server's env block), or run with --emulator to try "
    "the server offline"
)


def require_api_key(settings: Settings, emulator: bool) -> None:
    """Every endpoint the chains use has credentials (the implicit one: GEMINI_API_KEY)."""
    if emulator:
        return
    from gemini_failover.pairs import IMPLICIT_ENDPOINT

    for name in settings.endpoints_without_credentials():
        if name == IMPLICIT_ENDPOINT and name not in settings.endpoints:
            raise StartupError(MISSING_KEY)
        raise StartupError(
            f"the endpoint {name!r} has no api_key: set "
            f"GEMINI_FAILOVER_ENDPOINTS__{name.upper()}__API_KEY (or api_key in its "
            "[endpoints.NAME] table of the config file)"
        )


def register_secrets(settings: Settings) -> None:
    """Tell the log redactor about every credential in the settings."""
    from gemini_failover.observability.logging import register_secret

    secrets = [settings.api_key, settings.auth_token]
    for endpoint in settings.endpoints.values():
        secrets += [endpoint.api_key, endpoint.access_token]
    for secret in secrets:
        if secret is not None:
            register_secret(secret.get_secret_value())
    if settings.redis_url is not None:
        # Only its password is a secret: the health detail names the URL with the
        # password masked, and must not lose the host and port to the redactor.
        password = urllib.parse.urlsplit(settings.redis_url.get_secret_value()).password
        if password:
            register_secret(password)
            register_secret(urllib.parse.unquote(password))


def _make_store(settings: Settings) -> StateStore | None:
    """The Redis state store when ``redis_url`` is set (shared model state across
    instances), else None: the manager keeps its state in memory."""
    if settings.redis_url is None:
        return None
    from gemini_failover.state.redis import RedisStateStore

    return RedisStateStore.from_settings(settings)


def _import_heavy() -> None:
    for name in _HEAVY_MODULES:
        importlib.import_module(name)


class Runtime:
    """Owns the manager for the life of the process. ``async with Runtime(...)``.

    ``emulator=True`` starts an in-process Gemini emulator on a free loopback port and
    points the backend at it (no API key needed); ``emulator_scenario`` configures it.
    Raises StartupError at construction when there is no API key (and no emulator):
    the one place the key is checked.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        emulator: bool = False,
        emulator_scenario: str | None = None,
        trust_client_roots: bool = False,
    ) -> None:
        require_api_key(settings, emulator)
        self._settings = settings
        self.emulator_mode = emulator
        self._scenario = emulator_scenario
        self.emulator: Emulator | None = None
        self._emulator_server: EmulatorServer | None = None
        self._manager: FailoverManager | None = None
        self._metrics: ManagerMetrics | None = None
        self.failovers: FailoverClock | None = None
        self.started_at: float | None = None
        self._ready = asyncio.Event()
        self._failed: BaseException | None = None
        self._warm_up: asyncio.Task[None] | None = None
        self._on_demand: Callable[[], None] | None = None
        # -- inputs: the sandbox for the files argument, shared by every connection --
        from gemini_failover.tools.files import FileInputs

        self.inputs = FileInputs(
            settings.inputs, settings.allowed_dirs, trust_client_roots=trust_client_roots
        )
        self._tracing: Tracing | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self, *, warm_up: bool = True) -> None:
        """Build and start the manager (once). ``warm_up``: then import google.genai in
        a worker thread, so the first call does not pay for it."""
        if self._manager is not None or self._failed is not None:
            raise RuntimeError("Runtime already started")
        try:
            await self._start(warm_up)
        except BaseException as exc:
            self._failed = exc
            self._ready.set()
            raise

    async def _start(self, warm_up: bool) -> None:
        await asyncio.to_thread(_import_heavy)
        from gemini_failover.gemini.endpoints import build_backend
        from gemini_failover.observability.logging import EventLogger
        from gemini_failover.observability.metrics import ManagerMetrics
        from gemini_failover.resilience.manager import FailoverManager
        from gemini_failover.server.health import FailoverClock

        register_secrets(self.settings)
        if self.emulator_mode:
            self.settings = await self._start_emulator(self.settings)
        settings = self.settings
        # one client per endpoint; large files are re-read through the sandbox
        backend = build_backend(settings, opener=self.inputs.opener)
        manager = FailoverManager(settings, backend, store=_make_store(settings))
        metrics = ManagerMetrics(settings.models, default_endpoint=settings.default_endpoint_name)
        failovers = FailoverClock()
        # what only observes runs after an answer is written (see resilience/bus.py)
        logger = EventLogger()
        manager.events.subscribe(metrics.handle, kinds=metrics.kinds, deferred=True)
        manager.events.subscribe(logger.handle, kinds=logger.kinds, deferred=True)
        manager.events.subscribe(failovers.handle, kinds=FailoverClock.kinds, deferred=True)
        if tracing_configured():  # OpenTelemetry: only when the OTEL_* variables ask
            if self._tracing is None:
                await asyncio.to_thread(self._start_tracing)
            assert self._tracing is not None
            kinds = {name: e.kind for name, e in settings.endpoint_table().items()}
            self._tracing.set_endpoints(kinds, settings.default_endpoint_name)
            manager.events.subscribe(self._tracing.handle)
        await manager.start()
        self._manager, self._metrics, self.failovers = manager, metrics, failovers
        self.started_at = time.time()
        self._ready.set()
        if warm_up:
            self._warm_up = asyncio.create_task(backend.warm_up(), name="gemini-sdk-warm-up")
        log.info(
            "failover manager started (chain: %s; embeddings: %s; state: %s)",
            ", ".join(settings.models),
            ", ".join(settings.embedding_models),
            manager.store_health.backend,
        )

    async def _start_emulator(self, settings: Settings) -> Settings:
        from gemini_failover.emulator import Emulator, EmulatorServer, load_scenario
        from gemini_failover.server.health import EMULATOR_NOTICE

        scenario = load_scenario(self._scenario) if self._scenario else None
        self.emulator = Emulator(scenario)
        self._emulator_server = EmulatorServer(self.emulator, "127.0.0.1", 0)
        await self._emulator_server.start()
        base_url = self._emulator_server.base_url
        log.warning("%s (emulator at %s)", EMULATOR_NOTICE, base_url)
        return settings.pointed_at(base_url, EMULATOR_API_KEY, self.emulator.vertex_token)

    async def aclose(self) -> None:
        if self._warm_up is not None:
            self._warm_up.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._warm_up
            self._warm_up = None
        if self._manager is not None:
            await self._manager.aclose()
            self._manager = None
        if self._emulator_server is not None:
            await self._emulator_server.stop()
            self._emulator_server = None
        if self._tracing is not None:
            from gemini_failover.observability.tracing import shutdown

            await asyncio.to_thread(shutdown, self._tracing)  # flushes the last spans
            self._tracing = None

    # -- what the transports and tools use ----------------------------------------------

    @property
    def settings(self) -> Settings:
        return self._settings

    @settings.setter
    def settings(self, value: Settings) -> None:
        self._settings = value

    def fail(self, exc: BaseException) -> None:
        """Record a start-up failure found outside start(); tool calls then report it."""
        self._failed = exc
        self._ready.set()

    @property
    def start_error(self) -> BaseException | None:
        """Why start() failed, if it did."""
        return self._failed

    @property
    def started(self) -> bool:
        return self._manager is not None

    @property
    def manager(self) -> FailoverManager:
        if self._manager is None:
            raise RuntimeError("Runtime not started")
        return self._manager

    @property
    def metrics(self) -> ManagerMetrics:
        """The Prometheus metrics, counting everything published so far (the events
        still deferred are delivered first)."""
        if self._metrics is None or self._manager is None:
            raise RuntimeError("Runtime not started")
        self._manager.events.flush()
        return self._metrics

    def start_on_demand(self, kick: Callable[[], None]) -> None:
        """``kick()`` (idempotent) gets start() going; get_manager() calls it when the
        runtime is not started yet (the stdio transport starts it lazily)."""
        self._on_demand = kick

    async def get_manager(self) -> FailoverManager:
        """The manager, once started (waits while it is starting)."""
        if not self._ready.is_set() and self._on_demand is not None:
            self._on_demand()
        await self._ready.wait()
        if self._manager is None:
            from mcp.server.mcpserver.exceptions import ToolError

            reason = f": {self._failed}" if self._failed is not None else ""
            raise ToolError(f"the Gemini failover server failed to start{reason}")
        return self._manager

    def health_now(self) -> dict[str, Any]:
        from gemini_failover.server.health import health_document

        document = health_document(
            self.manager,
            emulator=self.emulator_mode,
            started_at=self.started_at,
            failovers=self.failovers,
        )
        document["files"] = self.inputs.health()  # the effective roots
        return document

    async def health(self) -> dict[str, Any]:
        await self.get_manager()
        return self.health_now()

    def _start_tracing(self) -> None:
        """Install the tracer provider (imports the OpenTelemetry SDK: ~50 ms)."""
        exporter = exporter_name()
        if self._tracing is None and exporter is not None:
            from gemini_failover.observability.tracing import start_tracing

            self._tracing = start_tracing(exporter)

    def build_server(self) -> MCPServer:
        """The MCP server over this runtime; usable before start() has finished."""
        from gemini_failover.server.app import assemble_server

        settings = self._settings
        server = assemble_server(
            self.get_manager, self.health, log_level=settings.log_level, inputs=self.inputs
        )
        if tracing_configured():
            from gemini_failover.observability.tracing_mcp import instrument

            # Now, not in start(): stdio answers (and traces) tool calls before that.
            self._start_tracing()
            instrument(
                server,
                settings.models,
                settings.embedding_models,
                record_content=settings.trace_content,
                aliases=settings.model_aliases,
            )
        return server


__all__ = ["Runtime", "StartupError", "register_secrets", "require_api_key"]
