"""The runtime wires the Redis state store when GEMINI_FAILOVER_REDIS_URL is set, and
the health document reports it (healthy or not) without leaking the URL's password."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mcp import Client

from gemini_failover.emulator import EmulatorServer
from gemini_failover.server.runtime import Runtime
from tests.e2e.conftest import PRIMARY, fast_settings, held
from tests.redis.server import RedisProcess, free_port

pytestmark = pytest.mark.redis

PASSWORD = "redis-canary-password-8f2d1c"


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisProcess]:
    server = RedisProcess()
    server.start()
    try:
        yield server
    finally:
        server.close()


async def test_health_reports_the_redis_state_backend(
    emulator_server: EmulatorServer, redis_server: RedisProcess
) -> None:
    settings = fast_settings(emulator_server.base_url, redis_url=redis_server.url)
    async with Runtime(settings) as runtime, held(Client(runtime.build_server())) as client:
        result = await client.call_tool("gemini_generate", {"prompt": "shared"})
        assert result.structured_content["served_by"] == PRIMARY
        health = (await client.call_tool("gemini_health", {})).structured_content
    assert health is not None
    assert health["state_backend"]["backend"] == "redis"
    assert health["state_backend"]["healthy"] is True
    assert health["status"] == "ok"


async def test_an_unreachable_redis_degrades_health_without_leaking_the_url(
    emulator_server: EmulatorServer,
) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"  # nothing listens there
    settings = fast_settings(emulator_server.base_url, redis_url=url)
    async with Runtime(settings) as runtime, held(Client(runtime.build_server())) as client:
        result = await client.call_tool("gemini_generate", {"prompt": "local state"})
        assert not result.is_error  # serves on local state
        health = (await client.call_tool("gemini_health", {})).structured_content
        resource = await client.read_resource("health://status")
    assert health is not None
    assert health["state_backend"]["backend"] == "redis"
    assert health["state_backend"]["healthy"] is False
    assert health["status"] == "degraded"
    assert PASSWORD not in str(health)
    assert PASSWORD not in resource.model_dump_json()
