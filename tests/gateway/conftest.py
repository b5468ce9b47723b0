"""Gateway fixtures: the real gateway (uvicorn over loopback) in front of the real
failover manager and google-genai backend, against the Gemini emulator; clients are
the real google-genai SDK pointed at the gateway with ``HttpOptions(base_url=...)``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
import uvicorn
from google import genai
from google.genai import types

from gemini_failover.config import Settings, load_settings
from gemini_failover.emulator import Emulator, EmulatorServer
from gemini_failover.gateway import build_gateway_app, gateway_security
from gemini_failover.server.http import uvicorn_limits
from gemini_failover.server.runtime import Runtime
from gemini_failover.server.serve import bind, url_of
from tests.e2e.conftest import FAST  # the same scaled-down thresholds as the MCP e2e tests

PRIMARY, FALLBACK = "pro", "flash"
EMBEDDING = "embedder"
KEY = "gateway-client-key"
#: The upstream key: must never reach a gateway client.
UPSTREAM_KEY = "upstream-canary-3f9a"


def gateway_settings(base_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        **FAST,
        "models": [PRIMARY, FALLBACK],
        "embedding_models": [EMBEDDING],
        "api_key": UPSTREAM_KEY,
        "base_url": base_url,
        "gateway_keys": [KEY],
    }
    values.update(overrides)
    return load_settings(**values)


@dataclass
class Gateway:
    base_url: str
    runtime: Runtime

    def client(self, key: str | None = KEY) -> genai.Client:
        """A google-genai client pointed at the gateway (no SDK-side retries)."""
        options = types.HttpOptions(
            base_url=self.base_url, retry_options=types.HttpRetryOptions(attempts=1)
        )
        return genai.Client(api_key=key or "unused", http_options=options)

    def http(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(base_url=self.base_url, timeout=10)


@asynccontextmanager
async def run_gateway(
    settings: Settings, *, plain_uvicorn: bool = False, **app_options: Any
) -> AsyncIterator[Gateway]:
    """A started runtime and the gateway app (``app_options``: build_gateway_app's) on a
    free loopback port, served as `gemini-failover gateway` serves it (uvicorn with the
    guarded httptools protocol), or by uvicorn's own protocol (``plain_uvicorn``: no
    disconnect signal, no corked writes, as under another ASGI server)."""
    keys = [k.get_secret_value() for k in settings.gateway_keys]
    runtime = Runtime(settings)
    async with runtime:
        security = gateway_security("127.0.0.1", keys)
        app = build_gateway_app(runtime, security, keys=keys, **app_options)
        sock = bind("127.0.0.1", 0)
        sock.listen(128)  # connections queue from now on: nothing to wait for
        protocol = {} if plain_uvicorn else uvicorn_limits(settings.http, "httptools")
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=2,
            **protocol,
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            yield Gateway(url_of("127.0.0.1", sock.getsockname()[1]), runtime)
        finally:
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await task
            sock.close()


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(Emulator()) as server:
        yield server


@pytest.fixture
async def gateway(emulator: EmulatorServer) -> AsyncIterator[Gateway]:
    async with run_gateway(gateway_settings(emulator.base_url)) as gw:
        yield gw
