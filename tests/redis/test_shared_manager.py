"""Three FailoverManagers sharing one Redis: one breaker, one set of cool-downs, one
failure window, no split brain; and a Redis outage that costs nothing but sharing.

The backend is a scripted in-process fake (the manager's Backend protocol), so the
only sockets are Redis's.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from redis.client import Redis as SyncRedis

from gemini_failover.config import load_settings
from gemini_failover.protocol import (
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    StreamChunk,
    Turn,
)
from gemini_failover.resilience import events as ev
from gemini_failover.resilience.breaker import BreakerSnapshot, BreakerState
from gemini_failover.resilience.errors import Upstream, attach
from gemini_failover.resilience.manager import FailoverManager
from gemini_failover.state import CooldownKind
from gemini_failover.state.redis import RedisStateStore
from tests.redis.helpers import Changes, stored_snapshot
from tests.redis.server import RedisProcess

pytestmark = pytest.mark.redis

PRIMARY, FALLBACK = "primary", "fallback"
REQUEST = GenerationRequest.from_prompt("hello")

SETTINGS: dict[str, Any] = {
    "models": [PRIMARY, FALLBACK],
    "embedding_models": ["embed-a"],
    "attempt_timeout": 2.0,
    "total_timeout": 5.0,
    "retry": {
        "max_attempts_per_model": 3,
        "backoff_initial": 0.001,
        "backoff_max": 0.005,
        "budget_min_per_second": 100.0,
    },
    "breaker": {
        "window_seconds": 10,
        "minimum_throughput": 7,
        "consecutive_failures": 3,
        "break_seconds": 60,
        "max_break_seconds": 120,
    },
}


class ScriptedBackend:
    """Backend protocol fake: ``faults[model]`` is raised on every call to it."""

    def __init__(self) -> None:
        self.faults: dict[str, Callable[[], BaseException | None]] = {}
        self.calls: Counter[str] = Counter()

    async def generate(
        self, model: str, request: GenerationRequest, *, timeout: float
    ) -> GenerationResult:
        self.calls[model] += 1
        await asyncio.sleep(0)
        fault = self.faults.get(model)
        error = fault() if fault is not None else None
        if error is not None:
            raise error
        return GenerationResult(text=f"answer from {model}", finish_reason="STOP")

    async def stream(
        self,
        model: str,
        request: GenerationRequest,
        *,
        timeout: float,
        deadline: float | None = None,
    ) -> AsyncIterator[StreamChunk]:
        raise NotImplementedError
        yield  # pragma: no cover

    async def count_tokens(self, model: str, contents: tuple[Turn, ...], *, timeout: float) -> int:
        return 1

    async def embed(
        self, model: str, texts: tuple[str, ...], *, timeout: float
    ) -> list[list[float]]:
        return [[0.0] for _ in texts]

    async def model_info(self, model: str, *, timeout: float) -> ModelInfo:
        return ModelInfo(model, 1_000_000, 65_536, ("generateContent", "countTokens"))

    async def aclose(self) -> None:
        return None


def sequence(*faults: Callable[[], BaseException] | None) -> Callable[[], BaseException | None]:
    """Per call, in turn: raise what the fault makes, or answer (None); then answer."""
    pending = list(faults)

    def next_fault() -> BaseException | None:
        fault = pending.pop(0) if pending else None
        return fault() if fault is not None else None

    return next_fault


def unavailable() -> BaseException:
    return gexc.ServiceUnavailable("the model is overloaded")


def quota_for_the_day() -> BaseException:
    exc = gexc.TooManyRequests("quota exceeded: GenerateRequestsPerDayPerProjectPerModel")
    attach(exc, Upstream(status="429", retry_after=3600.0, quota_scope="day"))
    return exc


class Instance:
    def __init__(self, manager: FailoverManager, backend: ScriptedBackend) -> None:
        self.manager = manager
        self.backend = backend
        self.events: list[tuple[float, ev.Event]] = []
        self.windows: dict[str, tuple[int, int]] = {}  # the latest apply_window per model

    @property
    def name(self) -> str:
        store = self.manager.store
        assert isinstance(store, RedisStateStore)
        return store.instance_id

    def breaker(self, model: str = PRIMARY) -> BreakerSnapshot:
        return next(s for s in self.manager.chain if s.name == model).breaker.snapshot

    def transitions(self, *, remote: bool) -> list[tuple[float, ev.BreakerTransition]]:
        return [
            (at, e)
            for at, e in self.events
            if isinstance(e, ev.BreakerTransition) and e.remote is remote
        ]

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for _, e in self.events if isinstance(e, kind)]

    async def generate(self) -> str | None:
        result = await self.manager.generate(REQUEST)
        return result.provenance.served_by


Factory = Callable[..., Awaitable[Instance]]


@pytest.fixture
async def instances(redis_url: str, prefix: str, bus: Changes) -> AsyncIterator[Factory]:
    made: list[FailoverManager] = []

    async def make(name: str, *, url: str | None = None, **store_kwargs: Any) -> Instance:
        settings = load_settings(
            api_key="test-key",
            redis_url=url or redis_url,
            redis_prefix=prefix,
            redis_resync_seconds=store_kwargs.pop("resync_seconds", 60.0),
            **SETTINGS,
        )
        options: dict[str, Any] = {
            "instance_id": name,
            "reconnect_min_seconds": 0.02,
            "reconnect_max_seconds": 0.1,
            "connect_timeout": 0.5,
            "socket_timeout": 1.0,
        }
        options.update(store_kwargs)
        store = RedisStateStore.from_settings(settings, **options)
        backend = ScriptedBackend()
        manager = FailoverManager(settings, backend, store=store)
        instance = Instance(manager, backend)

        def record(event: ev.Event) -> None:
            instance.events.append((time.perf_counter(), event))
            bus.poke()

        manager.events.subscribe(record)
        original = manager.apply_window

        def apply_window(model: str, bad: int, total: int) -> None:
            original(model, bad, total)
            instance.windows[model] = (bad, total)
            bus.poke()

        manager.apply_window = apply_window  # type: ignore[method-assign]  # wrapped to poke the bus
        adopt = manager.apply_breaker

        def apply_breaker(model: str, snapshot: BreakerSnapshot) -> None:
            # an adoption that keeps the state (open -> open at a newer epoch) is not
            # a transition event, but waiters must still re-check
            adopt(model, snapshot)
            bus.poke()

        manager.apply_breaker = apply_breaker  # type: ignore[method-assign]  # wrapped to poke the bus
        await manager.start()
        made.append(manager)
        return instance

    yield make
    for manager in made:
        await manager.aclose()


async def test_a_breaker_tripped_on_one_instance_opens_on_all(
    instances: Factory, bus: Changes
) -> None:
    a, b, c = [await instances(name) for name in "ABC"]
    for x in (a, b, c):
        x.backend.faults[PRIMARY] = unavailable  # the model is sick for everyone

    assert await a.generate() == FALLBACK
    assert a.backend.calls[PRIMARY] == 3  # 3 consecutive failures: tripped
    assert a.breaker().state is BreakerState.OPEN
    tripped_at = a.transitions(remote=False)[-1][0]

    await bus.wait_for(
        lambda: b.breaker() == a.breaker() and c.breaker() == a.breaker(),
        what="B and C adopt A's open breaker",
    )
    delays = [x.transitions(remote=True)[-1][0] - tripped_at for x in (b, c)]
    assert max(delays) < 0.1, delays

    # B and C fail over without spending a single call on the sick model
    assert await b.generate() == FALLBACK
    assert await c.generate() == FALLBACK
    assert b.backend.calls[PRIMARY] == 0 and c.backend.calls[PRIMARY] == 0
    assert b.of(ev.ModelSkipped)[0].reason == "breaker_open"


async def test_a_quota_cooldown_on_one_instance_is_honoured_by_all(
    instances: Factory, bus: Changes
) -> None:
    a, b, c = [await instances(name) for name in "ABC"]
    a.backend.faults[PRIMARY] = quota_for_the_day

    assert await a.generate() == FALLBACK
    assert a.backend.calls[PRIMARY] == 1  # quota exhausted: no retry, fail over
    await bus.wait_for(
        lambda: all(x.manager.active_model == FALLBACK for x in (b, c)),
        what="B and C see the primary's quota cool-down",
    )
    assert await b.generate() == FALLBACK
    assert await c.generate() == FALLBACK
    assert b.backend.calls[PRIMARY] == 0 and c.backend.calls[PRIMARY] == 0
    until = b.manager.chain[0].cooldowns[CooldownKind.QUOTA_EXHAUSTED]
    assert until == a.manager.chain[0].cooldowns[CooldownKind.QUOTA_EXHAUSTED]
    assert 3500 < until - time.time() <= 3600
    # rate limits and quotas never touch the breaker
    assert all(x.breaker().state is BreakerState.CLOSED for x in (a, b, c))


async def test_failures_spread_over_instances_trip_the_shared_window(
    instances: Factory, bus: Changes
) -> None:
    # minimum_throughput is 7 and 3 consecutive failures trip: each of B and C sees
    # fail, fail, ok (2 bad of 3 calls), never enough on its own. A knows about them
    # through the shared window, so its own first failure makes 5 bad of 7: tripped.
    a, b, c = [await instances(name, resync_seconds=0.05) for name in "ABC"]
    for x in (b, c):
        x.backend.faults[PRIMARY] = sequence(unavailable, unavailable, None)
        assert await x.generate() == PRIMARY
        assert x.breaker().state is BreakerState.CLOSED
    await bus.wait_for(
        lambda: a.windows.get(PRIMARY) == (4, 6),
        what="A learns of B's and C's 4 failures in 6 calls",
    )
    a.backend.faults[PRIMARY] = unavailable
    assert await a.generate() == FALLBACK
    assert a.backend.calls[PRIMARY] == 1
    _, trip = a.transitions(remote=False)[-1]
    assert trip.to_state == "open" and trip.reason == "failure rate 71% over 7 calls"
    await bus.wait_for(
        lambda: b.breaker() == a.breaker() and c.breaker() == a.breaker(),
        what="B and C adopt the trip",
    )


async def test_concurrent_trips_on_three_instances_converge(
    instances: Factory, bus: Changes, raw: SyncRedis, prefix: str
) -> None:
    trio = [await instances(name) for name in "ABC"]
    for x in trio:
        x.backend.faults[PRIMARY] = unavailable
    # all three hit the sick model at once and trip at about the same moment
    served = await asyncio.gather(*(x.generate() for x in trio for _ in range(3)))
    assert set(served) == {FALLBACK}

    def agree() -> bool:
        first = trio[0].breaker()
        return first.state is BreakerState.OPEN and all(x.breaker() == first for x in trio)

    await bus.wait_for(agree, what="one open breaker everywhere")
    assert stored_snapshot(raw, prefix, PRIMARY) == trio[0].breaker()


async def test_redis_outage_costs_sharing_not_service(
    controlled_redis: RedisProcess, instances: Factory, bus: Changes
) -> None:
    a = await instances("A", url=controlled_redis.url)
    b = await instances("B", url=controlled_redis.url)
    assert a.manager.store_health.healthy

    controlled_redis.kill()
    a.backend.faults[PRIMARY] = unavailable
    # the hot path never notices Redis is gone: A trips locally and fails over
    assert await a.generate() == FALLBACK
    assert a.breaker().state is BreakerState.OPEN
    assert await b.generate() == PRIMARY  # B does not know yet: no sharing meanwhile
    await bus.wait_for(
        lambda: len(a.of(ev.StateBackendHealth)) == 2 and len(b.of(ev.StateBackendHealth)) == 2,
        what="both report the store degraded",
    )
    assert not a.manager.store_health.healthy
    assert "127.0.0.1" in a.manager.store_health.detail

    controlled_redis.start()
    await bus.wait_for(
        lambda: len(a.of(ev.StateBackendHealth)) == 3 and len(b.of(ev.StateBackendHealth)) == 3,
        what="both recover",
    )
    assert [e.healthy for e in a.of(ev.StateBackendHealth)] == [True, False, True]
    assert [e.healthy for e in b.of(ev.StateBackendHealth)] == [True, False, True]
    # reconciled: A's trip during the outage reaches B
    await bus.wait_for(lambda: b.breaker() == a.breaker(), what="B adopts A's open breaker")
    calls = b.backend.calls[PRIMARY]
    assert await b.generate() == FALLBACK
    assert b.backend.calls[PRIMARY] == calls
