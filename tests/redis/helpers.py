"""A recording sink and a store wrapper whose conditions tests await (no sleeps)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from redis.client import Redis as SyncRedis

from gemini_failover.resilience.breaker import BreakerSnapshot, BreakerState
from gemini_failover.state import CooldownKind, StoreHealth
from gemini_failover.state.redis import RedisStateStore


class Changes:
    """One event that every sink and store in a test pokes on any change; waiters
    re-check their condition each time it fires."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def poke(self) -> None:
        self._event.set()

    async def wait_for(
        self, condition: Callable[[], bool], timeout: float = 3.0, what: str = ""
    ) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    self._event.clear()
                    await self._event.wait()
        except TimeoutError:
            pytest.fail(f"timed out after {timeout}s waiting for {what or condition}")


@dataclass
class Applied:
    model: str
    snapshot: BreakerSnapshot
    at: float  # time.perf_counter() when the sink got it


@dataclass
class RecordingSink:
    """Implements StateSink like the manager does: a breaker snapshot is adopted only
    when its epoch is higher than the local one (CircuitBreaker.apply)."""

    bus: Changes
    snapshots: dict[str, BreakerSnapshot] = field(default_factory=dict)
    applied: list[Applied] = field(default_factory=list)
    cooldowns: dict[tuple[str, CooldownKind], float] = field(default_factory=dict)
    cooldown_calls: list[tuple[str, CooldownKind, float]] = field(default_factory=list)
    windows: dict[str, tuple[int, int]] = field(default_factory=dict)
    window_calls: int = 0
    health_changes: list[StoreHealth] = field(default_factory=list)
    store: RedisStateStore | None = None

    @property
    def healths(self) -> list[bool]:
        """``healthy`` of every store_health_changed call: start() reports the
        initial state, then one call per transition."""
        return [h.healthy for h in self.health_changes]

    def snapshot(self, model: str) -> BreakerSnapshot:
        return self.snapshots.get(model, BreakerSnapshot())

    # StateSink
    def apply_breaker(self, model: str, snapshot: BreakerSnapshot) -> None:
        if snapshot.epoch > self.snapshot(model).epoch:
            self.snapshots[model] = snapshot
            self.applied.append(Applied(model, snapshot, time.perf_counter()))
        self.bus.poke()

    def apply_cooldown(self, model: str, kind: CooldownKind, until: float) -> None:
        self.cooldown_calls.append((model, kind, until))
        self.cooldowns[(model, kind)] = max(until, self.cooldowns.get((model, kind), 0.0))
        self.bus.poke()

    def apply_window(self, model: str, bad: int, total: int) -> None:
        self.windows[model] = (bad, total)
        self.window_calls += 1
        self.bus.poke()

    def store_health_changed(self, health: StoreHealth) -> None:
        self.health_changes.append(health)
        self.bus.poke()

    # what the manager does on a local transition
    def transition(
        self, model: str, state: BreakerState, reason: str = "test", *, trips: int | None = None
    ) -> BreakerSnapshot:
        old = self.snapshot(model)
        now = time.time()
        new = BreakerSnapshot(
            state=state,
            epoch=old.epoch + 1,
            since=now,
            open_until=now + 15.0 if state is BreakerState.OPEN else 0.0,
            trips=old.trips + 1 if trips is None and state is BreakerState.OPEN else old.trips,
            reason=reason,
        )
        self.snapshots[model] = new
        assert self.store is not None
        self.store.publish_breaker(model, new)
        return new


class _Store(RedisStateStore):
    """The store, poking the change bus on connection events."""

    bus: Changes

    def _connect_failed(self, exc: BaseException) -> None:
        super()._connect_failed(exc)
        self.bus.poke()

    def _lost(self, exc: BaseException) -> None:
        super()._lost(exc)
        self.bus.poke()

    async def _sync(self, client: Any) -> None:
        await super()._sync(client)
        self.bus.poke()

    async def _flush(self, client: Any) -> None:
        await super()._flush(client)
        self.bus.poke()


class ObservedStore:
    def __init__(self, url: str, bus: Changes, **kwargs: Any) -> None:
        self.bus = bus
        self.store = _Store(url, **kwargs)
        self.store.bus = self.bus
        self.sink = RecordingSink(self.bus, store=self.store)

    async def start(self, models: list[str]) -> None:
        await self.store.start(self.sink, models)

    @property
    def stats(self) -> Any:
        return self.store.stats

    async def wait_for(
        self, condition: Callable[[], bool], timeout: float = 3.0, what: str = ""
    ) -> None:
        await self.bus.wait_for(condition, timeout, what)


def stored_snapshot(raw: SyncRedis, prefix: str, model: str) -> BreakerSnapshot | None:
    fields = raw.hgetall(f"{prefix}:breaker:{model}")
    if not fields:
        return None
    return BreakerSnapshot(
        state=BreakerState(int(fields["state"])),
        epoch=int(fields["epoch"]),
        since=float(fields["since"]),
        open_until=float(fields["open_until"]),
        trips=int(fields["trips"]),
        reason=str(fields["reason"]),
    )


def stored_float(raw: SyncRedis, key: str) -> float:
    value = raw.get(key)
    assert value is not None, key
    return float(value)


def seed_breaker(raw: SyncRedis, prefix: str, model: str, snap: BreakerSnapshot) -> None:
    """What another instance would have written."""
    raw.hset(
        f"{prefix}:breaker:{model}",
        mapping={
            "epoch": snap.epoch,
            "state": int(snap.state),
            "since": repr(snap.since),
            "open_until": repr(snap.open_until),
            "trips": snap.trips,
            "reason": snap.reason,
            "owner": "elsewhere",
        },
    )


StoreFactory = Callable[..., Awaitable[ObservedStore]]
