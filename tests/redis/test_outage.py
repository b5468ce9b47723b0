"""Redis going away and coming back: degrade once, recover once, reconcile, never
raise into the hot path, never leak the password, never grow without bound."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.client import Redis as SyncRedis
from structlog.testing import capture_logs

from gemini_failover.resilience.breaker import BreakerSnapshot, BreakerState
from gemini_failover.resilience.clock import FakeClock
from gemini_failover.state import CooldownKind
from gemini_failover.state.redis import redact_url
from tests.redis.helpers import (
    Changes,
    ObservedStore,
    StoreFactory,
    seed_breaker,
    stored_float,
    stored_snapshot,
)
from tests.redis.server import RedisProcess, free_port

pytestmark = pytest.mark.redis

OPEN, HALF_OPEN, CLOSED = BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED


async def test_redis_killed_while_publishing_then_restarted(
    controlled_redis: RedisProcess, make_store: StoreFactory, bus: Changes, prefix: str
) -> None:
    a = await make_store("A", url=controlled_redis.url)
    b = await make_store("B", url=controlled_redis.url)
    snap = a.sink.transition("m", OPEN)
    await b.wait_for(lambda: b.sink.snapshot("m") == snap)

    stop = asyncio.Event()
    published = 0

    async def hot_path() -> None:
        # what the manager does under load: outcomes, cool-downs, transitions
        nonlocal published
        while not stop.is_set():
            for i in range(50):
                a.store.record_outcome("m", i % 3 == 0)
                published += 1
            a.store.publish_cooldown("m", CooldownKind.RATE_LIMITED, time.time() + 30)
            await asyncio.sleep(0.001)  # load generation, not waiting for a condition

    with capture_logs() as logs:
        load = asyncio.create_task(hot_path())
        await a.wait_for(lambda: a.stats.flushes >= 3, what="traffic flowing")
        controlled_redis.kill()
        during = a.sink.transition("m", HALF_OPEN, "break elapsed during the outage")
        await bus.wait_for(
            lambda: a.sink.healths == [True, False] and b.sink.healths == [True, False],
            what="both stores notice the outage",
        )
        failures = a.stats.connect_failures
        await a.wait_for(
            lambda: a.stats.connect_failures >= failures + 4, what="several reconnect attempts"
        )
        stop.set()
        await load  # raised nothing
        health = a.store.health()
        assert not health.healthy and health.backend == "redis"
        assert "127.0.0.1" in health.detail
        assert a.sink.healths == [True, False]  # once, despite the failed attempts
        assert b.sink.healths == [True, False]
        assert len(a.store._pending_outcomes) <= a.store._window_buckets  # bounded

        controlled_redis.start()  # empty: no persistence
        await bus.wait_for(
            lambda: len(a.sink.healths) == 3 and len(b.sink.healths) == 3,
            what="both stores recover",
        )
    assert a.sink.healths == [True, False, True]
    assert b.sink.healths == [True, False, True]
    assert a.store.health().healthy and b.store.health().healthy
    # reconciled: A's transition made while Redis was down reached Redis and B
    await b.wait_for(lambda: b.sink.snapshot("m") == during, what="B gets A's outage transition")
    raw = SyncRedis(port=controlled_redis.port, decode_responses=True)
    assert stored_snapshot(raw, prefix, "m") == during
    raw.close()
    # logged once per transition per store, not per request or per attempt
    degraded = [e for e in logs if "degraded" in e["event"]]
    recovered = [e for e in logs if "recovered" in e["event"]]
    assert len(degraded) == 2 and len(recovered) == 2  # A and B, once each
    assert published > 0


async def test_reconnect_reconciles_newest_epoch_wins_both_ways(
    controlled_redis: RedisProcess, make_store: StoreFactory, prefix: str
) -> None:
    a = await make_store("A", url=controlled_redis.url, models=["m1", "m2"])
    a.sink.transition("m1", OPEN)
    await a.wait_for(lambda: a.stats.breakers_accepted == 1 and not a.store._has_pending())

    controlled_redis.kill()
    await a.wait_for(lambda: a.sink.healths == [True, False], what="A degraded")
    # local transitions while Redis is away: m1 reaches epoch 3 here
    a.sink.transition("m1", HALF_OPEN)
    newer_here = a.sink.transition("m1", OPEN, "probe failed during the outage")
    quota_until = time.time() + 60
    a.store.publish_cooldown("m1", CooldownKind.QUOTA_EXHAUSTED, quota_until)

    # Redis comes back, but behind a password A does not have (yet), so that the
    # state "other instances" wrote meanwhile is in place before A reconnects.
    controlled_redis.start("--requirepass", "pw")
    failures = a.stats.connect_failures
    await a.wait_for(lambda: a.stats.connect_failures >= failures + 2, what="NOAUTH attempts")
    now = time.time()
    older_there = BreakerSnapshot(CLOSED, 2, now - 5, 0.0, 0, "elsewhere: closed")
    newer_there = BreakerSnapshot(OPEN, 5, now - 1, now + 20, 2, "elsewhere: tripped")
    raw = controlled_redis.client("pw")
    seed_breaker(raw, prefix, "m1", older_there)
    seed_breaker(raw, prefix, "m2", newer_there)
    rate_until = now + 30
    raw.set(f"{prefix}:cooldown:m2:rate_limited", repr(rate_until), px=30_000)
    raw.config_set("requirepass", "")
    raw.close()

    await a.wait_for(lambda: len(a.sink.healths) == 3, what="A recovers")
    assert a.sink.healths == [True, False, True]
    # pulled: Redis was newer for m2
    assert a.sink.snapshot("m2") == newer_there
    assert a.sink.cooldowns[("m2", CooldownKind.RATE_LIMITED)] == rate_until
    # pushed: A was newer for m1 (reconcile finishes before health turns green)
    check = SyncRedis(port=controlled_redis.port, decode_responses=True)
    assert stored_snapshot(check, prefix, "m1") == newer_here
    assert a.sink.snapshot("m1") == newer_here
    assert stored_float(check, f"{prefix}:cooldown:m1:quota_exhausted") == quota_until
    assert check.ttl(f"{prefix}:breaker:m1") > 86_000
    check.close()


async def test_password_url_connects_and_is_never_shown(
    controlled_redis: RedisProcess, make_store: StoreFactory
) -> None:
    controlled_redis.kill()
    controlled_redis.start("--requirepass", "s3cr3t/pw")
    url = f"redis://:s3cr3t%2Fpw@127.0.0.1:{controlled_redis.port}/0"
    with capture_logs() as logs:
        a = await make_store("A", url=url)
        b = await make_store("B", url=url)
        snap = a.sink.transition("m", OPEN)
        await b.wait_for(lambda: b.sink.snapshot("m") == snap)
        assert a.store.health().healthy
        controlled_redis.kill()
        await a.wait_for(lambda: a.sink.healths == [True, False])
        failures = a.stats.connect_failures
        await a.wait_for(lambda: a.stats.connect_failures > failures)
    texts = [repr(a.store), a.store.health().detail, str(logs), *map(str, a.sink.health_changes)]
    for text in texts:
        assert "s3cr3t" not in text, text
    assert ":***@127.0.0.1" in a.store.health().detail


async def test_unreachable_at_start_starts_degraded_and_says_so_once(bus: Changes) -> None:
    port = free_port()  # nothing listens here
    url = f"redis://admin:hunter2@127.0.0.1:{port}/0"
    with capture_logs() as logs:
        s = ObservedStore(
            url, bus, instance_id="A", prefix="x", reconnect_min_seconds=0.01,
            reconnect_max_seconds=0.05, connect_timeout=0.2,
        )  # fmt: skip
        await s.start(["m"])  # does not raise
        snap = s.sink.transition("m", OPEN)  # nor does the hot path
        s.store.record_outcome("m", True)
        await s.wait_for(lambda: s.stats.connect_failures >= 4)
        await s.store.aclose()
    assert s.sink.snapshot("m") == snap  # local state keeps serving
    assert s.sink.healths == [False]  # the initial report, and nothing since
    detail = s.store.health().detail
    assert "hunter2" not in detail and "hunter2" not in str(logs) and "hunter2" not in repr(s.store)
    assert len([e for e in logs if "degraded" in e["event"]]) == 1


async def test_aclose_is_bounded_when_redis_hangs(bus: Changes) -> None:
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accept, read nothing, answer nothing

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        s = ObservedStore(
            f"redis://127.0.0.1:{port}/0", bus, instance_id="A", prefix="x",
            socket_timeout=0.2, connect_timeout=0.2, close_timeout=0.5,
        )  # fmt: skip
        started = time.monotonic()
        await s.start(["m"])
        assert time.monotonic() - started < 1.5
        assert not s.store.health().healthy
        s.sink.transition("m", OPEN)
        started = time.monotonic()
        await s.store.aclose()
        assert time.monotonic() - started < 1.0
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_outcome_queue_is_bounded_while_redis_is_down(bus: Changes) -> None:
    clock = FakeClock(start=time.time())
    s = ObservedStore(
        f"redis://127.0.0.1:{free_port()}/0", bus, instance_id="A", prefix="x", clock=clock,
        window_seconds=30, max_pending_buckets=64, reconnect_min_seconds=30,
        reconnect_max_seconds=30, connect_timeout=0.2,
    )  # fmt: skip
    await s.start(["m", "n"])
    try:
        recorded = 0
        for _ in range(2000):  # 2000 seconds of traffic with Redis away
            for model in ("m", "n"):
                for i in range(5):
                    s.store.record_outcome(model, i == 0)
                    recorded += 1
            clock.advance(1)
        pending = s.store._pending_outcomes
        assert len(pending) <= 2 * 30  # only buckets still inside the window
        kept = sum(total for _, total in pending.values())
        assert kept + s.stats.dropped_outcomes == recorded
        for i in range(500):  # many models in one second: the cap holds
            s.store.record_outcome(f"model-{i}", True)
        assert len(pending) <= 64
    finally:
        await s.store.aclose()


def test_redact_url() -> None:
    assert redact_url("redis://user:pass@host:6379/0") == "redis://user:***@host:6379/0"
    assert redact_url("redis://:pass@host/0") == "redis://:***@host/0"
    assert redact_url("rediss://u:p%40ss@h:1/2?ssl_cert_reqs=none") == (
        "rediss://u:***@h:1/2?ssl_cert_reqs=none"
    )
    assert redact_url("redis://host:6379/0") == "redis://host:6379/0"
    assert redact_url("redis://user@host/0") == "redis://user@host/0"
    assert (
        redact_url("unix:///tmp/r.sock?db=0&password=pw") == "unix:///tmp/r.sock?db=0&password=***"
    )
    assert "pw" not in redact_url("redis://a:pw@[::1]:6379/0")
