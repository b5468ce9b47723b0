"""Two gateways on one real Redis: a breaker opened through one is obeyed by the other,
which then keeps its traffic off the sick model without calling it once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx2
import pytest

from gemini_failover.emulator import EmulatorServer
from gemini_failover.resilience import events as ev
from tests.gateway.conftest import FALLBACK, KEY, PRIMARY, gateway_settings, run_gateway
from tests.redis.server import shared_or_private_redis

pytestmark = pytest.mark.redis

BODY = {"contents": [{"parts": [{"text": "fleet"}]}]}
GENERATE = "/v1beta/models/auto:generateContent"


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """``$REDIS_URL`` (CI), else a private redis-server (as tests/redis does)."""
    with shared_or_private_redis() as url:
        yield url


async def _post(base_url: str) -> httpx2.Response:
    async with httpx2.AsyncClient(base_url=base_url, timeout=10) as http:
        return await http.post(GENERATE, json=BODY, headers={"x-goog-api-key": KEY})


async def test_a_breaker_opened_through_one_gateway_is_obeyed_by_the_other(
    emulator: EmulatorServer, redis_url: str
) -> None:
    emulator.emulator.configure(PRIMARY, faults=[{"kind": "status", "code": 503}])
    shared = {
        "redis_url": redis_url,
        "redis_prefix": f"gf-gateway-{uuid.uuid4().hex[:8]}",
        "breaker": {"consecutive_failures": 3, "break_seconds": 60},
    }
    async with (
        run_gateway(gateway_settings(emulator.base_url, **shared)) as first,
        run_gateway(gateway_settings(emulator.base_url, **shared)) as second,
    ):
        opened = asyncio.Event()

        def on_event(event: ev.Event) -> None:
            if (
                isinstance(event, ev.BreakerTransition)
                and event.model == PRIMARY
                and event.to_state == "open"
                and event.remote
            ):
                opened.set()

        second.runtime.manager.events.subscribe(on_event)
        for _ in range(2):  # two attempts each on the primary: the third failure opens it
            response = await _post(first.base_url)
            assert response.status_code == 200
            assert response.headers["x-gemini-failover-served-by"] == FALLBACK
        async with asyncio.timeout(5):
            await opened.wait()
        primary_calls = emulator.emulator.count(model=PRIMARY)
        response = await _post(second.base_url)
        assert response.status_code == 200
        assert response.headers["x-gemini-failover-served-by"] == FALLBACK
        assert response.json()["modelVersion"] == FALLBACK
        assert emulator.emulator.count(model=PRIMARY) == primary_calls  # never called
