"""End-to-end fixtures: the real MCP server (in-process, over stdio, over HTTP) in front
of the real failover manager and google-genai SDK, against the Gemini emulator."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import pytest
import uvicorn
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent

from gemini_failover.config import Settings, load_settings
from gemini_failover.emulator import Emulator, EmulatorServer
from gemini_failover.gemini.backend import GeminiBackend
from gemini_failover.resilience.manager import FailoverManager
from gemini_failover.server.app import build_server
from gemini_failover.server.http import HttpTransport, Security, build_http_app
from gemini_failover.server.runtime import Runtime

T = TypeVar("T")

PRIMARY, FALLBACK = "pro", "flash"
EMBEDDING = "embedder"
#: An API key that must never appear in any output (results, errors, health, logs,
#: metrics). Not shaped like a Google key, so only explicit registration redacts it.
CANARY = f"canary-{uuid.uuid4().hex}"

#: Thresholds scaled down so that every scenario plays out in well under a second.
FAST: dict[str, Any] = {
    "attempt_timeout": 2.0,
    "stream_idle_timeout": 2.0,
    "total_timeout": 5.0,
    "retry": {
        "max_attempts_per_model": 2,
        "backoff_initial": 0.002,
        "backoff_max": 0.01,
        "budget_min_per_second": 100.0,
    },
    "breaker": {"consecutive_failures": 3, "break_seconds": 30, "sustained_health_seconds": 0.1},
    "rate_limit": {"default_retry_after": 0.05},
}


def fast_settings(base_url: str, api_key: str = CANARY, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        **FAST,
        "models": [PRIMARY, FALLBACK],
        "embedding_models": [EMBEDDING],
        "api_key": api_key,
        "base_url": base_url,
    }
    values.update(overrides)
    return load_settings(**values)


def fast_env(base_url: str, api_key: str = CANARY) -> dict[str, str]:
    """The same settings as environment variables (for a server subprocess)."""
    return {
        "GEMINI_API_KEY": api_key,
        "GEMINI_FAILOVER_BASE_URL": base_url,
        "GEMINI_FAILOVER_MODELS": f"{PRIMARY},{FALLBACK}",
        "GEMINI_FAILOVER_EMBEDDING_MODELS": EMBEDDING,
        "GEMINI_FAILOVER_ATTEMPT_TIMEOUT": "2",
        "GEMINI_FAILOVER_STREAM_IDLE_TIMEOUT": "2",
        "GEMINI_FAILOVER_TOTAL_TIMEOUT": "5",
        "GEMINI_FAILOVER_RETRY__MAX_ATTEMPTS_PER_MODEL": "2",
        "GEMINI_FAILOVER_RETRY__BACKOFF_INITIAL": "0.002",
        "GEMINI_FAILOVER_RETRY__BACKOFF_MAX": "0.01",
        "GEMINI_FAILOVER_BREAKER__CONSECUTIVE_FAILURES": "3",
        "GEMINI_FAILOVER_LOG_LEVEL": "debug",
        "GEMINI_FAILOVER_LOG_FORMAT": "json",
    }


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read the environment first: a developer's GEMINI_* must not leak in."""
    for name in list(os.environ):
        upper = name.upper()
        if upper.startswith("GEMINI_") or upper in ("GOOGLE_API_KEY", "API_KEY"):
            monkeypatch.delenv(name)


@pytest.fixture
def emulator() -> Emulator:
    return Emulator()


@pytest.fixture
async def emulator_server(emulator: Emulator) -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(emulator) as server:
        yield server


@pytest.fixture
def settings(emulator_server: EmulatorServer) -> Settings:
    return fast_settings(emulator_server.base_url)


@pytest.fixture
async def manager(settings: Settings) -> AsyncIterator[FailoverManager]:
    backend = GeminiBackend(
        api_key=CANARY, base_url=settings.base_url, api_version=settings.api_version
    )
    manager = FailoverManager(settings, backend)
    await manager.start()
    yield manager
    await manager.aclose()


@pytest.fixture
def server(settings: Settings, manager: FailoverManager) -> MCPServer:
    return build_server(settings, manager)


@asynccontextmanager
async def held(cm: AbstractAsyncContextManager[T]) -> AsyncIterator[T]:
    """Enter and exit ``cm`` in one dedicated task.

    MCP clients hold anyio task groups, which must be exited by the task that entered
    them; pytest-asyncio may set up and tear down a fixture in different tasks.
    """
    entered: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    release = asyncio.Event()

    async def hold() -> None:
        try:
            async with cm as value:
                entered.set_result(value)
                await release.wait()
        except BaseException as exc:
            if not entered.done():
                entered.set_exception(exc)
            raise

    task = asyncio.create_task(hold())
    try:
        yield await entered
    finally:
        release.set()
        await task


@pytest.fixture
async def client(server: MCPServer) -> AsyncIterator[Client]:
    async with held(Client(server)) as client:
        yield client


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with Runtime(settings) as runtime:
        yield runtime


# -- helpers --------------------------------------------------------------------------------


def error_text(result: CallToolResult) -> str:
    assert result.is_error, f"expected an error result, got {result.structured_content}"
    content = result.content[0]
    assert isinstance(content, TextContent)
    return content.text


def assert_clear_error(result: CallToolResult, tool: str) -> str:
    """An expected failure: a ToolError with a message, never the SDK's crash text."""
    text = error_text(result)
    # "Error executing tool X" marks a bug (the SDK's crash text); an expected
    # failure is the project's own message alone.
    assert not text.startswith("Error executing tool"), f"a bug escaped as a crash: {text}"
    assert len(text) > 10
    return text


class Progress:
    """A progress callback that records the text deltas."""

    def __init__(self, on_first: Callable[[], None] | None = None) -> None:
        self.deltas: list[str] = []
        self.values: list[float] = []
        self._on_first = on_first

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.values.append(progress)
        self.deltas.append(message or "")
        if self._on_first is not None and len(self.deltas) == 1:
            self._on_first()

    @property
    def text(self) -> str:
        return "".join(self.deltas)


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


class _Uvicorn(uvicorn.Server):
    """uvicorn.Server with an event for "listening" (uvicorn only has a flag)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.listening.set()


@asynccontextmanager
async def serve_http(
    runtime: Runtime, transport: HttpTransport, security: Security | None = None
) -> AsyncIterator[str]:
    """Serve the runtime over HTTP on a free loopback port; yields the base URL."""
    server = runtime.build_server()
    security = security or Security.for_bind("127.0.0.1", None)
    app = build_http_app(runtime, server, transport, security)
    sock = free_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=2
    )
    uv = _Uvicorn(config)
    task = asyncio.create_task(uv.serve(sockets=[sock]))
    listening = asyncio.create_task(uv.listening.wait())
    try:
        await asyncio.wait({task, listening}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
            raise RuntimeError("uvicorn exited during startup")
        yield f"http://127.0.0.1:{port}"
    finally:
        listening.cancel()
        uv.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


Call = Callable[..., Awaitable[CallToolResult]]
