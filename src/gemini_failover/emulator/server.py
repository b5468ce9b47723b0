"""Running the emulator: in the current event loop, in a thread, or as a blocking CLI."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
import threading
from collections.abc import Generator
from types import FrameType, TracebackType
from typing import Any, Self

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from .app import Emulator
from .calls import ABORT_SCOPE_KEY
from .spec import Scenario, load_scenario

__all__ = ["EmulatorServer", "EmulatorThread", "run_emulator"]

logger = logging.getLogger("gemini_failover.emulator")


class _Server(uvicorn.Server):
    """uvicorn.Server that exits promptly and hands the emulator an abort hook.

    - ``main_loop`` wakes on an event instead of polling every 0.1 s;
    - ``shutdown`` releases hung requests first, then waits for in-flight requests
      without polling and cancels whatever is left after ``timeout_graceful_shutdown``;
    - signals are only captured when asked (the CLI), never when embedded in a test.
    """

    def __init__(self, config: uvicorn.Config, emulator: Emulator, handle_signals: bool) -> None:
        super().__init__(config)
        self.emulator = emulator
        self.handle_signals = handle_signals
        self.started_event = asyncio.Event()
        self._exit_event = asyncio.Event()

    def request_exit(self) -> None:
        self.should_exit = True
        self._exit_event.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """SIGINT/SIGTERM stop the server gracefully (CLI only); unlike uvicorn's own
        handler, the signal is not re-raised afterwards, so run_emulator returns."""
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            yield
            return
        loop = asyncio.get_running_loop()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            if self.should_exit:
                self.force_exit = True
            loop.call_soon_threadsafe(self.request_exit)

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.started_event.set()

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864_000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit_event.wait(), 0.1)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        self.emulator.release_hung_requests()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        tasks = set(self.server_state.tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.config.timeout_graceful_shutdown)
            for task in pending:
                task.cancel()
            if pending:
                logger.warning("cancelled %d emulator request(s) at shutdown", len(pending))
                await asyncio.wait(pending, timeout=1.0)
        for connection in list(self.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.close()
        for server in self.servers:
            await server.wait_closed()

    def abort(self, scope: Scope) -> bool:
        """Close the TCP connection the request in scope arrived on (the ABORT hook)."""
        client = scope.get("client")
        for connection in self.server_state.connections:
            if getattr(connection, "client", None) == client:
                transport = getattr(connection, "transport", None)
                if transport is None:
                    return False
                transport.close()
                return True
        return False


class _QuietH11Protocol(H11Protocol):
    """uvicorn's h11 protocol without the access log.

    ``Config(access_log=False)`` would do the same by emptying the process-wide
    ``uvicorn.access`` logger, which would also silence any other uvicorn app in the
    process; this switches it off for the emulator's connections only.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.access_log = False


class _WithAbortHook:
    """ASGI wrapper that puts the server's abort hook into every HTTP scope."""

    def __init__(self, app: ASGIApp, server: _Server) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[ABORT_SCOPE_KEY] = self.server.abort
        await self.app(scope, receive, send)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP (not 0): asyncio only sets TCP_NODELAY on accepted sockets
    # whose proto says TCP, and without it every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _make_server(
    emulator: Emulator,
    *,
    log_level: str | None,
    embedded: bool,
    shutdown_timeout: float,
) -> _Server:
    config = uvicorn.Config(
        emulator.app,
        http=_QuietH11Protocol,
        ws="none",
        lifespan="off",
        log_level=log_level,
        access_log=True,  # see _QuietH11Protocol
        server_header=False,
        # An embedded server must not reconfigure the host process's logging.
        log_config=None if embedded else uvicorn.config.LOGGING_CONFIG,
    )
    # Config types it as int, but it is only ever used as an asyncio timeout.
    config.timeout_graceful_shutdown = max(0.0, shutdown_timeout)  # type: ignore[assignment]
    server = _Server(config, emulator, handle_signals=not embedded)
    config.app = _WithAbortHook(emulator.app, server)
    return server


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class EmulatorServer:
    """Serve an emulator over real HTTP in the current event loop.

    ``async with EmulatorServer(emulator, port=0) as srv: ... srv.base_url``. Port 0 picks a
    free port (the socket is bound before uvicorn starts). On exit, hung requests are
    released, in-flight requests get ``shutdown_timeout`` seconds, then are cancelled.

    Logging is left alone: uvicorn logs to its ``uvicorn.error`` logger (no access log)
    and the host's configuration decides what shows. ``log_level`` sets uvicorn's loggers
    to that level, which is process-wide.
    """

    def __init__(
        self,
        emulator: Emulator | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        shutdown_timeout: float = 2.0,
        log_level: str | None = None,
    ) -> None:
        self.emulator = emulator if emulator is not None else Emulator()
        self.host = host
        self.port = port
        self.shutdown_timeout = shutdown_timeout
        self.log_level = log_level
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    @property
    def base_url(self) -> str:
        if self._socket is None:
            raise RuntimeError("EmulatorServer is not running")
        return _url(self.host, self.port)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("EmulatorServer already started")
        sock = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        server = _make_server(
            self.emulator,
            log_level=self.log_level,
            embedded=True,
            shutdown_timeout=self.shutdown_timeout,
        )
        self._server, self._socket = server, sock
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="gemini-emulator")
        started = asyncio.ensure_future(server.started_event.wait())
        await asyncio.wait((started, self._task), return_when=asyncio.FIRST_COMPLETED)
        if not started.done():
            started.cancel()
            await self._task  # re-raises why the server did not start
            raise RuntimeError("emulator server exited during startup")

    async def stop(self) -> None:
        server, task = self._server, self._task
        if server is None or task is None:
            return
        server.request_exit()
        try:
            await asyncio.wait_for(asyncio.shield(task), self.shutdown_timeout + 5.0)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            if self._socket is not None:
                self._socket.close()
            self._server = self._task = None


class EmulatorThread:
    """Serve an emulator from a background thread with its own event loop (sync callers).

    ``with EmulatorThread(emulator) as srv: ... srv.base_url``.
    """

    def __init__(
        self,
        emulator: Emulator | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        shutdown_timeout: float = 2.0,
        startup_timeout: float = 10.0,
    ) -> None:
        self.emulator = emulator if emulator is not None else Emulator()
        self.host = host
        self.port = port
        self.shutdown_timeout = shutdown_timeout
        self.startup_timeout = startup_timeout
        self.base_url = ""
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name="gemini-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.startup_timeout):
            raise TimeoutError("emulator thread did not start in time")
        if self._error is not None:
            raise RuntimeError("emulator thread failed to start") from self._error

    def stop(self) -> None:
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if thread is not None:
            thread.join(self.shutdown_timeout + 10.0)
        self._thread = None

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = EmulatorServer(
            self.emulator, self.host, self.port, shutdown_timeout=self.shutdown_timeout
        )
        async with server:
            self.port = server.port
            self.base_url = server.base_url
            self._ready.set()
            await self._stop.wait()


def run_emulator(host: str, port: int, scenario: str | None) -> None:
    """Serve the emulator until SIGINT/SIGTERM (``gemini-failover emulate``). Blocking."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            stream=sys.stderr,
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    loaded: Scenario | None = load_scenario(scenario) if scenario else None
    emulator = Emulator(loaded)
    server = _make_server(emulator, log_level="info", embedded=False, shutdown_timeout=2.0)
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    models: dict[str, Any] = emulator.settings()["models"]
    logger.info(
        "Gemini emulator on %s (scenario: %s; models: %s; control API under /_emulator)",
        _url(host, bound_port),
        scenario or "none",
        ", ".join(models) or "any",
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
