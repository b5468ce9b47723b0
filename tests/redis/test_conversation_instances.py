"""A conversation started on one server instance continues on a second one sharing a
real Redis, after the first instance's primary failed over: two MCP servers (real
clients in-process, the real SDK against one emulator), one thread."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult

from gemini_failover.emulator import Emulator, EmulatorServer
from gemini_failover.gemini.backend import GeminiBackend
from gemini_failover.resilience.manager import FailoverManager
from gemini_failover.server.app import build_server
from tests.e2e.conftest import FALLBACK, PRIMARY, fast_settings, held

pytestmark = pytest.mark.redis


def out(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    return result.structured_content or {}


@pytest.fixture
async def two_instances(
    redis_url: str, prefix: str
) -> AsyncIterator[tuple[Emulator, Client, Client]]:
    emulator = Emulator()
    async with AsyncExitStack() as stack:
        server = await stack.enter_async_context(EmulatorServer(emulator))
        clients = []
        for _ in range(2):
            settings = fast_settings(server.base_url, redis_url=redis_url, redis_prefix=prefix)
            backend = GeminiBackend(api_key="test-key", base_url=server.base_url)
            manager = FailoverManager(settings, backend)
            await manager.start()
            stack.push_async_callback(manager.aclose)
            mcp = build_server(settings, manager)
            clients.append(await stack.enter_async_context(held(Client(mcp))))
        yield emulator, clients[0], clients[1]


async def test_a_thread_started_on_one_instance_continues_on_another(
    two_instances: tuple[Emulator, Client, Client],
) -> None:
    emulator, first, second = two_instances
    emulator.configure(PRIMARY, faults=[{"kind": "status", "code": 503}])
    started = out(
        await first.call_tool("gemini_generate", {"prompt": "Name a river.", "google_search": True})
    )
    assert started["served_by"] == FALLBACK and started["failovers"]
    cid = started["conversation_id"]
    emulator.configure(PRIMARY, faults=[])
    continued = out(
        await second.call_tool(
            "gemini_chat",
            {"turns": [{"role": "user", "text": "How long is it?"}], "conversation_id": cid},
        )
    )
    assert continued["served_by"] == PRIMARY
    assert continued["conversation_id"] == cid
    record = [r for r in emulator.requests if r.action == "generate"][-1]
    assert [p["role"] for p in record.parts] == ["user", "model", "user"]
    # the thread (with the first answer's citations) is readable from either instance
    text = (await first.read_resource(f"conversation://{cid}")).contents[0]
    shown = getattr(text, "text", "")
    assert "How long is it?" in shown and started["citations"][0]["uri"] in shown
