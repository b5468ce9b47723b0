"""Two instances sharing Redis with a chain across two endpoints, through the real SDK
against the emulator: pair keys (``studio:gemini-2.5-pro``) are Redis keys and pub/sub
payloads like any model name, and an endpoint cooled down by one instance after its
key was rejected is skipped by the other without a call and without a second alert."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.client import Redis as SyncRedis

from gemini_failover.config import load_settings
from gemini_failover.emulator import Emulator, EmulatorServer
from gemini_failover.gemini.endpoints import build_backend
from gemini_failover.protocol import GenerationRequest
from gemini_failover.resilience import events as ev
from gemini_failover.resilience.manager import FailoverManager
from gemini_failover.state import CooldownKind
from gemini_failover.state.redis import RedisStateStore
from tests.redis.helpers import Changes

pytestmark = pytest.mark.redis

PRO = "gemini-2.5-pro"
STUDIO_PRO, VERTEX_PRO = f"studio:{PRO}", f"vertex:{PRO}"
TOKEN = "vertex-test-token"


@pytest.fixture
async def emulator_server() -> AsyncIterator[EmulatorServer]:
    scenario: dict[str, Any] = {
        "vertex_token": TOKEN,
        "endpoints": [{"name": "studio", "kind": "gemini_api", "api_key": "studio-key"}],
    }
    async with EmulatorServer(Emulator(scenario)) as server:
        yield server


@pytest.fixture
async def pair(
    emulator_server: EmulatorServer, redis_url: str, prefix: str, bus: Changes
) -> AsyncIterator[tuple[FailoverManager, FailoverManager, list[ev.Event], list[ev.Event]]]:
    url = emulator_server.base_url
    settings = load_settings(
        api_key="unused",
        models=[STUDIO_PRO, VERTEX_PRO],
        embedding_models=["studio:embed"],
        endpoints={
            "studio": {"api_key": "studio-key", "base_url": url},
            "vertex": {
                "kind": "vertex",
                "project": "proj",
                "location": "us-central1",
                "access_token": TOKEN,
                "base_url": url,
            },
        },
        redis_url=redis_url,
        redis_prefix=prefix,
        redis_resync_seconds=60.0,
        retry={"max_attempts_per_model": 1},
    )
    managers: list[FailoverManager] = []
    logs: list[list[ev.Event]] = []
    for name in ("a", "b"):
        store = RedisStateStore.from_settings(settings, instance_id=name)
        manager = FailoverManager(settings, build_backend(settings), store=store)
        events: list[ev.Event] = []
        manager.events.subscribe(events.append)
        applied = manager.apply_cooldown

        def apply_cooldown(
            model: str, kind: CooldownKind, until: float, applied: Any = applied
        ) -> None:
            applied(model, kind, until)
            bus.poke()

        manager.apply_cooldown = apply_cooldown  # type: ignore[method-assign]  # pokes the bus
        await manager.start()
        managers.append(manager)
        logs.append(events)
    try:
        yield managers[0], managers[1], logs[0], logs[1]
    finally:
        for manager in managers:
            await manager.aclose()


async def test_an_endpoint_cooled_down_by_one_instance_is_skipped_by_the_other(
    pair: tuple[FailoverManager, FailoverManager, list[ev.Event], list[ev.Event]],
    emulator_server: EmulatorServer,
    raw: SyncRedis,
    prefix: str,
    bus: Changes,
) -> None:
    a, b, a_events, b_events = pair
    emulator = emulator_server.emulator
    emulator.configure("*", faults=[{"kind": "auth", "code": 400, "endpoint": "studio"}])
    request = GenerationRequest.from_prompt("which pool?")

    first = await a.generate(request)
    assert first.provenance.served_by == VERTEX_PRO
    assert raw.exists(f"{prefix}:cooldown:{STUDIO_PRO}:auth")
    # every pair on it in a chain with another endpoint to move to; the embedding chain
    # has studio alone, so its pair keeps failing at once with the cause instead
    assert not raw.exists(f"{prefix}:cooldown:studio:embed:auth")

    studio = b.chain.get(STUDIO_PRO)
    assert studio is not None
    await bus.wait_for(
        lambda: studio.cooldowns.get(CooldownKind.AUTH, 0.0) > 0, what="the shared cool-down"
    )
    second = await b.generate(request)
    assert second.provenance.served_by == VERTEX_PRO
    assert second.provenance.skipped == [(STUDIO_PRO, "endpoint_auth")]
    calls = [(r.endpoint, r.status) for r in emulator.requests if r.action == "generate"]
    assert calls == [("studio", 400), ("vertex", 200), ("vertex", 200)]
    alerts = [e for e in (*a_events, *b_events) if isinstance(e, ev.AuthFailure)]
    assert [(e.model, e.status) for e in alerts] == [(STUDIO_PRO, "400")]  # one, on a
