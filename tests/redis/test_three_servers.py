"""Three real `gemini-failover serve` processes sharing one Redis: a primary outage
that one of them sees opens the breaker on all three, and the other two then keep
their traffic off the sick model without ever calling it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
from mcp import Client
from mcp.types import TextResourceContents

from gemini_failover.emulator import Emulator, EmulatorServer
from tests.e2e.conftest import FALLBACK, PRIMARY, fast_env, held
from tests.processes import free_port, listening

pytestmark = pytest.mark.redis


@pytest.fixture
async def servers(redis_url: str) -> AsyncIterator[tuple[Emulator, list[str]]]:
    emulator = Emulator()
    async with EmulatorServer(emulator) as emu, AsyncExitStack() as stack:
        prefix = f"gf-three-{uuid.uuid4().hex[:8]}"
        procs: list[asyncio.subprocess.Process] = []
        urls = []
        for _ in range(3):
            port = free_port()
            env = {
                **os.environ,
                **fast_env(emu.base_url, api_key="three-servers-key"),
                "GEMINI_FAILOVER_REDIS_URL": redis_url,
                "GEMINI_FAILOVER_REDIS_PREFIX": prefix,
                "GEMINI_FAILOVER_BREAKER__BREAK_SECONDS": "60",
                "GEMINI_FAILOVER_LOG_LEVEL": "warning",
            }
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gemini_failover.cli", "serve",
                "--transport", "http", "--port", str(port),
                env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            procs.append(proc)
            urls.append(f"http://127.0.0.1:{port}/mcp")
            await listening(port, proc)
        try:
            yield emulator, urls
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                await proc.wait()
            await stack.aclose()


async def primary_breaker(client: Client) -> str:
    result = await client.read_resource("health://status")
    status = result.contents[0]
    assert isinstance(status, TextResourceContents)
    doc = json.loads(status.text)
    state = next(m for m in doc["models"] if m["model"] == PRIMARY)["breaker"]["state"]
    assert isinstance(state, str)
    return state


async def test_an_outage_seen_by_one_server_opens_the_breaker_on_all(
    servers: tuple[Emulator, list[str]],
) -> None:
    emulator, urls = servers
    emulator.configure(PRIMARY, faults=[{"kind": "status", "code": 503, "actions": ["generate"]}])
    async with AsyncExitStack() as stack:
        a, b, c = [await stack.enter_async_context(held(Client(url))) for url in urls]
        for client in (b, c):
            assert await primary_breaker(client) == "closed"

        # server A meets the outage: 2 attempts per request, the third failure trips it
        for _ in range(2):
            result = await a.call_tool("gemini_generate", {"prompt": "outage?"})
            assert result.structured_content["served_by"] == FALLBACK
        assert await primary_breaker(a) == "open"
        tripped_at = time.monotonic()

        # B and C learn it through Redis, without calling the primary themselves
        for client in (b, c):
            while await primary_breaker(client) != "open":
                assert time.monotonic() - tripped_at < 1.0, "breaker state did not propagate"
        primary_calls = emulator.count(model=PRIMARY, action="generate")
        for client in (b, c):
            result = await client.call_tool("gemini_generate", {"prompt": "still down?"})
            data = result.structured_content
            assert data["served_by"] == FALLBACK
            assert {"model": PRIMARY, "reason": "breaker_open"} in data["skipped"]
        assert emulator.count(model=PRIMARY, action="generate") == primary_calls
