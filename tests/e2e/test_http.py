"""Streamable HTTP and SSE on loopback (uvicorn on a free port): tools, progress,
cancellation, the bearer token, Host/Origin checks, probes and /metrics."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import TextResourceContents

from gemini_failover.emulator import Emulator, expected_text
from gemini_failover.server.http import Security, is_loopback
from gemini_failover.server.runtime import Runtime, StartupError
from tests.e2e.conftest import FALLBACK, PRIMARY, Progress, held, serve_http

TOKEN = f"token-{uuid.uuid4().hex}"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


@pytest.fixture
async def http_url(runtime: Runtime) -> AsyncIterator[str]:
    async with serve_http(runtime, "http") as base:
        yield base


@pytest.fixture
async def secured_url(runtime: Runtime) -> AsyncIterator[str]:
    async with serve_http(runtime, "http", Security.for_bind("127.0.0.1", TOKEN)) as base:
        yield base


def authed(url: str, token: str = TOKEN) -> Client:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    return Client(streamable_http_client(url, http_client=http))


async def test_streamable_http_tools_progress_failover_and_resource(
    http_url: str, emulator: Emulator
) -> None:
    async with held(Client(f"{http_url}/mcp")) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert "gemini_generate" in names and len(names) == 7

        progress = Progress()
        result = await client.call_tool(
            "gemini_generate", {"prompt": "over http"}, progress_callback=progress
        )
        assert not result.is_error
        assert progress.text == result.structured_content["text"] == expected_text("over http")
        assert len(progress.deltas) > 1

        emulator.configure(PRIMARY, faults=[{"kind": "status", "code": 503}])
        result = await client.call_tool("gemini_chat", {"turns": [{"role": "user", "text": "x"}]})
        out = result.structured_content
        assert out is not None and out["served_by"] == FALLBACK
        assert out["failovers"][0] == {"from": PRIMARY, "to": FALLBACK, "reason": "transient"}

        status = (await client.read_resource("health://status")).contents[0]
        assert isinstance(status, TextResourceContents)
        health = json.loads(status.text)
        assert health["last_failover"]["to"] == FALLBACK
        assert health["last_failover"]["at"] is not None
        assert health["uptime_s"] is not None


async def test_sse_transport(runtime: Runtime) -> None:
    async with serve_http(runtime, "sse") as base:
        async with held(Client(sse_client(f"{base}/sse"))) as client:
            assert len((await client.list_tools()).tools) == 7
            progress = Progress()
            result = await client.call_tool(
                "gemini_generate", {"prompt": "over sse"}, progress_callback=progress
            )
            assert not result.is_error
            assert progress.text == result.structured_content["text"]
            health = await client.call_tool("gemini_health", {})
            assert health.structured_content["status"] == "ok"
        # A second SSE connection shares the same manager (the lifespan is per
        # connection; the manager is per process).
        async with held(Client(sse_client(f"{base}/sse"))) as client:
            result = await client.call_tool("gemini_count_tokens", {"text": "again"})
            assert not result.is_error
    assert runtime.started


async def test_cancellation_over_http_closes_the_upstream_stream(
    http_url: str, emulator: Emulator
) -> None:
    emulator.configure(PRIMARY, faults=[{"kind": "hang", "after": 2, "actions": ["stream"]}])
    first = asyncio.Event()
    async with held(Client(f"{http_url}/mcp")) as client:
        call = asyncio.create_task(
            client.call_tool(
                "gemini_generate", {"prompt": "cancel"}, progress_callback=Progress(first.set)
            )
        )
        await asyncio.wait_for(first.wait(), 5)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        records = await emulator.wait_for(
            lambda log: any(r.outcome == "client_disconnected" for r in log), timeout=5
        )
    assert [r.model for r in records if r.outcome == "client_disconnected"] == [PRIMARY]
    # (start-up fetches every model's limits: models.get is not a call of the request)
    assert [r for r in emulator.requests if r.model == FALLBACK and r.action != "get"] == []


# -- the bearer token -----------------------------------------------------------------------


async def test_mcp_endpoint_requires_the_token(secured_url: str) -> None:
    async with httpx2.AsyncClient() as http:
        missing = await http.post(f"{secured_url}/mcp", json=INITIALIZE, headers=MCP_HEADERS)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert TOKEN not in missing.text

        wrong = await http.post(
            f"{secured_url}/mcp",
            json=INITIALIZE,
            headers={**MCP_HEADERS, "authorization": "Bearer not-the-token"},
        )
        assert wrong.status_code == 401
        assert 'error="invalid_token"' in wrong.headers["www-authenticate"]

        basic = await http.post(
            f"{secured_url}/mcp",
            json=INITIALIZE,
            headers={**MCP_HEADERS, "authorization": f"Basic {TOKEN}"},
        )
        assert basic.status_code == 401

        good = await http.post(
            f"{secured_url}/mcp",
            json=INITIALIZE,
            headers={**MCP_HEADERS, "authorization": f"Bearer {TOKEN}"},
        )
        assert good.status_code == 200

    async with held(authed(f"{secured_url}/mcp")) as client:
        result = await client.call_tool("gemini_generate", {"prompt": "with a token"})
        assert not result.is_error


async def test_metrics_follow_the_token_and_probes_are_open(secured_url: str) -> None:
    async with held(authed(f"{secured_url}/mcp")) as client:
        await client.call_tool("gemini_generate", {"prompt": "count me"})
    async with httpx2.AsyncClient() as http:
        assert (await http.get(f"{secured_url}/metrics")).status_code == 401
        bad = await http.get(f"{secured_url}/metrics", headers={"authorization": "Bearer nope"})
        assert bad.status_code == 401
        metrics = await http.get(
            f"{secured_url}/metrics", headers={"authorization": f"Bearer {TOKEN}"}
        )
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        active = f'endpoint="gemini",model="{PRIMARY}",role="primary"'
        assert f"dualmodelmanager_active_model{{{active}}} 1.0" in metrics.text
        assert "dualmodelmanager_requests_total" in metrics.text

        healthz = await http.get(f"{secured_url}/healthz")
        assert healthz.status_code == 200 and healthz.json() == {"status": "alive"}
        readyz = await http.get(f"{secured_url}/readyz")
        assert readyz.status_code == 200
        assert readyz.json() == {"ready": True, "status": "ok", "emulator_mode": False}


async def test_sse_endpoints_require_the_token(runtime: Runtime) -> None:
    async with serve_http(runtime, "sse", Security.for_bind("127.0.0.1", TOKEN)) as base:
        async with httpx2.AsyncClient() as http:
            assert (await http.get(f"{base}/sse")).status_code == 401
            posted = await http.post(f"{base}/messages/?session_id=x", json=INITIALIZE)
            assert posted.status_code == 401
        client = Client(sse_client(f"{base}/sse", headers={"Authorization": f"Bearer {TOKEN}"}))
        async with held(client) as connected:
            assert len((await connected.list_tools()).tools) == 7


# -- DNS rebinding guard ----------------------------------------------------------------------


async def test_bad_host_and_origin_are_rejected(http_url: str) -> None:
    port = http_url.rsplit(":", 1)[1]
    async with httpx2.AsyncClient() as http:
        evil_host = await http.post(
            f"{http_url}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, "host": "evil.example"}
        )
        assert evil_host.status_code == 421
        evil_port_host = await http.post(
            f"{http_url}/mcp",
            json=INITIALIZE,
            headers={**MCP_HEADERS, "host": "127.0.0.1.evil.example:80"},
        )
        assert evil_port_host.status_code == 421
        evil_origin = await http.post(
            f"{http_url}/mcp",
            json=INITIALIZE,
            headers={**MCP_HEADERS, "origin": "http://evil.example"},
        )
        assert evil_origin.status_code == 403
        metrics = await http.get(f"{http_url}/metrics", headers={"host": "evil.example"})
        assert metrics.status_code == 421
        ok = await http.post(
            f"{http_url}/mcp",
            json=INITIALIZE,
            headers={
                **MCP_HEADERS,
                "host": f"localhost:{port}",
                "origin": f"http://localhost:{port}",
            },
        )
        assert ok.status_code == 200
        # The probes answer whatever the Host (load balancers use the pod IP).
        assert (await http.get(f"{http_url}/healthz", headers={"host": "10.0.0.7"})).is_success


def test_non_loopback_bind_needs_a_token() -> None:
    with pytest.raises(StartupError, match="GEMINI_FAILOVER_AUTH_TOKEN"):
        Security.for_bind("0.0.0.0", None)
    open_bind = Security.for_bind("0.0.0.0", TOKEN)
    assert open_bind.token == TOKEN and open_bind.allowed_hosts == ()
    listed = Security.for_bind("0.0.0.0", TOKEN, ["mcp.internal"])
    assert "mcp.internal:*" in listed.allowed_hosts
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")
