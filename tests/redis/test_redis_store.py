"""RedisStateStore against a real Redis: propagation, arbitration, sharing, TTLs."""

from __future__ import annotations

import json
import statistics
import time
from functools import partial

import pytest
from redis.client import Redis as SyncRedis
from structlog.testing import capture_logs

from gemini_failover.resilience.breaker import BreakerSnapshot, BreakerState
from gemini_failover.state import CooldownKind, StoreHealth
from gemini_failover.state.redis import RedisStateStore
from tests.redis.helpers import (
    Changes,
    ObservedStore,
    StoreFactory,
    stored_float,
    stored_snapshot,
)

pytestmark = pytest.mark.redis

OPEN, HALF_OPEN, CLOSED = BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED


async def test_transition_reaches_other_instances_within_100ms(make_store: StoreFactory) -> None:
    a, b, c = [await make_store(name) for name in "ABC"]
    started = time.perf_counter()
    snap = a.sink.transition("m", OPEN, "5 consecutive failures")
    await a.wait_for(
        lambda: b.sink.snapshot("m") == snap and c.sink.snapshot("m") == snap,
        what="B and C adopt A's transition",
    )
    delays = [b.sink.applied[-1].at - started, c.sink.applied[-1].at - started]
    assert max(delays) < 0.1, delays
    await a.wait_for(lambda: a.stats.breakers_accepted == 1)
    assert a.sink.applied == []  # its own transition never comes back to it


async def test_propagation_delay_over_200_transitions(make_store: StoreFactory) -> None:
    a, b = await make_store("A"), await make_store("B")
    delays: list[float] = []
    states = [OPEN, HALF_OPEN, CLOSED]
    for i in range(200):
        started = time.perf_counter()
        snap = a.sink.transition("m", states[i % 3], f"t{i}")
        await a.wait_for(partial(lambda s: b.sink.snapshot("m") == s, snap), what=f"step {i}")
        delays.append(b.sink.applied[-1].at - started)
    delays.sort()
    median = statistics.median(delays)
    p99 = delays[int(len(delays) * 0.99) - 1]
    print(
        f"\nredis propagation A->B over {len(delays)} transitions: "
        f"median {median * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms, max {delays[-1] * 1000:.2f} ms"
    )
    assert p99 < 0.1


async def test_start_loads_the_shared_state(make_store: StoreFactory) -> None:
    a, b = await make_store("A"), await make_store("B")
    snap = a.sink.transition("m", OPEN)
    until = time.time() + 30
    a.store.publish_cooldown("m", CooldownKind.QUOTA_EXHAUSTED, until)
    await a.wait_for(
        lambda: (
            b.sink.snapshot("m") == snap and ("m", CooldownKind.QUOTA_EXHAUSTED) in b.sink.cooldowns
        )
    )
    late = await make_store("LATE", models=["m", "other"])
    # applied during start(), before it returned
    assert late.sink.snapshot("m") == snap
    assert late.sink.cooldowns[("m", CooldownKind.QUOTA_EXHAUSTED)] == until
    assert late.sink.windows == {"m": (0, 0), "other": (0, 0)}
    assert late.store.health().healthy
    assert late.sink.healths == [True]  # start() reports the initial state once


async def test_stale_epoch_is_rejected_and_the_loser_adopts_the_winner(
    make_store: StoreFactory, raw: SyncRedis, prefix: str
) -> None:
    a = await make_store("A")
    # B does not follow "m" (not in its models): it stays behind, a stale instance.
    b = await make_store("B", models=["other"])
    a.sink.transition("m", OPEN)
    a.sink.transition("m", HALF_OPEN)
    winner = a.sink.transition("m", OPEN, "probe failed")
    # queued in one loop iteration: coalesced into one write of the newest (epoch 3)
    await a.wait_for(lambda: a.stats.breakers_accepted == 1 and not a.store._has_pending())

    stale = b.sink.transition("m", OPEN, "stale view")  # epoch 1, Redis has 3
    await b.wait_for(
        lambda: b.sink.snapshot("m") == winner and b.stats.flushes >= 1,
        what="B's write is rejected and B adopts A's epoch 3",
    )
    assert stale.epoch == 1
    assert stored_snapshot(raw, prefix, "m") == winner
    assert raw.hget(f"{prefix}:breaker:m", "owner") == "A"
    assert b.stats.breakers_adopted == 1
    assert b.stats.breakers_accepted == 0
    assert a.sink.applied == []  # nothing was published by the rejected write

    # B is now current: its next transition (epoch 4) wins normally and reaches A.
    newer = b.sink.transition("m", HALF_OPEN, "break elapsed")
    await a.wait_for(lambda: a.sink.snapshot("m") == newer)
    assert newer.epoch == winner.epoch + 1


async def test_equal_epochs_tie_first_writer_wins_and_everyone_adopts(
    make_store: StoreFactory, raw: SyncRedis, prefix: str
) -> None:
    a, b = await make_store("A"), await make_store("B")
    base = a.sink.transition("m", OPEN)
    await a.wait_for(lambda: b.sink.snapshot("m") == base)

    # Both go from epoch 1 to 2 in the same loop iteration, with different content.
    mine = a.sink.transition("m", HALF_OPEN, "A: break elapsed")
    theirs = b.sink.transition("m", OPEN, "B: probe failed")
    assert mine.epoch == theirs.epoch == 2

    def converged() -> bool:
        sa, sb = a.sink.snapshot("m"), b.sink.snapshot("m")
        return sa == sb and sa.epoch == 3

    await a.wait_for(converged, what="A and B agree at epoch 3")
    final = a.sink.snapshot("m")
    assert stored_snapshot(raw, prefix, "m") == final
    # the content is one of the two contenders', verbatim (epoch aside)
    assert final.reason in {mine.reason, theirs.reason}
    loser = b if final.reason == mine.reason else a
    assert loser.stats.breakers_adopted == 1


async def test_concurrent_transitions_from_three_stores_converge(
    make_store: StoreFactory, raw: SyncRedis, prefix: str, bus: Changes
) -> None:
    stores = [await make_store(name) for name in "ABC"]
    sequence = [OPEN, HALF_OPEN, OPEN, HALF_OPEN, CLOSED]
    for round_no in range(25):
        # every store makes 1..3 local transitions "at once" (no await in between)
        for i, s in enumerate(stores):
            for step in range((round_no + i) % 3 + 1):
                state = sequence[(round_no + step + i) % len(sequence)]
                s.sink.transition("m", state, f"r{round_no}-{s.store.instance_id}-{step}")

        def agree() -> bool:
            first = stores[0].sink.snapshot("m")
            return all(s.sink.snapshot("m") == first for s in stores[1:])

        await bus.wait_for(agree, what=f"round {round_no}: all three agree")
        in_redis = stored_snapshot(raw, prefix, "m")
        await bus.wait_for(
            partial(lambda r: all(s.sink.snapshot("m") == r for s in stores), in_redis),
            what=f"round {round_no}: everyone holds Redis's snapshot",
        )
    final = stores[0].sink.snapshot("m")
    assert final.epoch >= 25
    assert all(s.sink.snapshot("m") == final for s in stores)
    assert stored_snapshot(raw, prefix, "m") == final


async def test_cooldowns_are_shared_and_the_later_one_wins(
    make_store: StoreFactory, raw: SyncRedis, prefix: str
) -> None:
    a, b, c = [await make_store(name) for name in "ABC"]
    kind = CooldownKind.RATE_LIMITED
    until = time.time() + 5
    a.store.publish_cooldown("m", kind, until)
    await a.wait_for(
        lambda: (
            b.sink.cooldowns.get(("m", kind)) == until
            and c.sink.cooldowns.get(("m", kind)) == until
        )
    )
    key = f"{prefix}:cooldown:m:rate_limited"
    assert stored_float(raw, key) == until
    assert 4000 < raw.pttl(key) <= 5000

    # an earlier cool-down does not shorten the shared one ...
    b.store.publish_cooldown("m", kind, until - 3)
    # ... a later one extends it everywhere
    later = until + 10
    c.store.publish_cooldown("m", kind, later)
    await a.wait_for(
        lambda: (
            a.sink.cooldowns.get(("m", kind)) == later
            and b.sink.cooldowns.get(("m", kind)) == later
        )
    )
    assert stored_float(raw, key) == later
    assert all(u != until - 3 for _, _, u in a.sink.cooldown_calls)
    # a cool-down of another kind is a separate key
    a.store.publish_cooldown("m", CooldownKind.UNAVAILABLE, until)
    await a.wait_for(lambda: ("m", CooldownKind.UNAVAILABLE) in b.sink.cooldowns)
    # an expired cool-down is not published at all
    a.store.publish_cooldown("m", CooldownKind.QUOTA_EXHAUSTED, time.time() - 1)
    assert not raw.exists(f"{prefix}:cooldown:m:quota_exhausted")


async def test_window_counts_are_shared_without_counting_your_own(
    make_store: StoreFactory,
) -> None:
    a = await make_store("A", resync_seconds=0.05)
    b = await make_store("B", resync_seconds=0.05)
    for bad in (True, False, True, False, True, False, False):
        a.store.record_outcome("m", bad)
    await a.wait_for(lambda: b.sink.windows.get("m") == (3, 7), what="B sees A's 3/7")
    calls = a.sink.window_calls
    await a.wait_for(lambda: a.sink.window_calls > calls + 1)
    assert a.sink.windows["m"] == (0, 0)  # A's own outcomes are already in its window
    assert a.stats.flushes <= 3  # batched: not one round trip per outcome

    b.store.record_outcome("m", True)
    b.store.record_outcome("m", True)
    await a.wait_for(lambda: a.sink.windows.get("m") == (2, 2), what="A sees B's 2/2")
    calls = b.sink.window_calls
    await b.wait_for(lambda: b.sink.window_calls > calls + 1)
    assert b.sink.windows["m"] == (3, 7)


async def test_window_only_counts_the_last_window_seconds(
    redis_url: str, prefix: str, raw: SyncRedis, bus: Changes
) -> None:
    now = int(time.time())
    # buckets written by some other instance: one inside the window, one outside
    raw.hset(f"{prefix}:window:m:{now - 2}", mapping={"bad": 4, "total": 5})
    raw.hset(f"{prefix}:window:m:{now - 12}", mapping={"bad": 50, "total": 50})
    b = ObservedStore(redis_url, bus, instance_id="B", prefix=prefix, window_seconds=10)
    try:
        await b.start(["m"])
        assert b.sink.windows["m"] == (4, 5)
    finally:
        await b.store.aclose()


async def test_window_forgets_failures_from_before_the_breaker_closed(
    redis_url: str, prefix: str, raw: SyncRedis, bus: Changes
) -> None:
    now = int(time.time())
    raw.hset(f"{prefix}:window:m:{now - 3}", mapping={"bad": 9, "total": 9})  # while open
    raw.hset(f"{prefix}:window:m:{now}", mapping={"bad": 1, "total": 4})  # since it closed
    a = ObservedStore(redis_url, bus, instance_id="A", prefix=prefix, resync_seconds=0.05)
    try:
        await a.start(["m"])
        assert a.sink.windows["m"] == (10, 13)
        a.sink.transition("m", OPEN)
        closed = a.sink.transition("m", CLOSED, "sustained health")
        assert int(closed.since) == now or int(closed.since) == now + 1
        calls = a.sink.window_calls
        await a.wait_for(lambda: a.sink.window_calls > calls + 1)
        assert a.sink.windows["m"] in {(1, 4), (0, 0)}  # (0, 0) if the second ticked over
    finally:
        await a.store.aclose()


async def test_every_key_has_a_ttl(make_store: StoreFactory, raw: SyncRedis, prefix: str) -> None:
    a, b = await make_store("A"), await make_store("B")
    snap = a.sink.transition("m", OPEN)
    a.store.publish_cooldown("m", CooldownKind.QUOTA_EXHAUSTED, time.time() + 60)
    a.store.record_outcome("m", True)
    await a.wait_for(
        lambda: (
            b.sink.snapshot("m") == snap
            and ("m", CooldownKind.QUOTA_EXHAUSTED) in b.sink.cooldowns
            and a.stats.flushes >= 1  # counted once the whole pipeline is done
            and not a.store._has_pending()
        )
    )
    keys = sorted(raw.scan_iter(match=f"{prefix}:*"))
    assert {k.split(":")[1] for k in keys} == {"breaker", "cooldown", "window"}
    for key in keys:
        ttl = raw.ttl(key)
        assert ttl > 0, (key, ttl)
        if ":breaker:" in key:
            assert 86_000 < ttl <= 86_400
        elif ":cooldown:" in key:
            assert ttl <= 60
        else:
            assert ttl <= 30 + 30  # window + slack


async def test_malformed_events_and_foreign_keys_are_ignored(
    make_store: StoreFactory, raw: SyncRedis, prefix: str
) -> None:
    a, b = await make_store("A"), await make_store("B")
    channel = f"{prefix}:events"
    for junk in ("not json", "[]", json.dumps({"i": "X", "k": "b", "m": "m", "s": ["x"]})):
        raw.publish(channel, junk)
    raw.publish(channel, json.dumps({"i": "X", "k": "b", "m": "unknown-model", "s": []}))
    snap = a.sink.transition("m", OPEN)
    await b.wait_for(lambda: b.sink.snapshot("m") == snap)
    assert b.store.health().healthy
    assert b.sink.healths == [True]


async def test_sink_errors_do_not_break_the_store(
    make_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = await make_store("A"), await make_store("B")
    calls: list[str] = []

    def broken(model: str, snapshot: BreakerSnapshot) -> None:
        calls.append(model)
        b.bus.poke()
        raise KeyError(model)

    monkeypatch.setattr(b.sink, "apply_breaker", broken)
    with capture_logs() as logs:
        a.sink.transition("m", OPEN)
        # pub/sub delivers it; a periodic resync may deliver it again: each raises
        await b.wait_for(lambda: bool(calls), what="B's sink raises")
        raised = len(calls)  # no await between this and leaving the block
    monkeypatch.undo()
    snap = a.sink.transition("m", HALF_OPEN)
    await b.wait_for(lambda: b.sink.snapshot("m") == snap)
    assert set(calls) == {"m"}
    errors = [e["log_level"] for e in logs if e["event"] == "state sink raised"]
    assert errors == ["error"] * raised  # every raise logged, once
    assert b.store.health().healthy and b.stats.disconnects == 0


async def test_aclose_flushes_what_is_pending(make_store: StoreFactory) -> None:
    a, b = await make_store("A"), await make_store("B")
    snap = a.sink.transition("m", OPEN)
    await a.store.aclose()  # before the writer had a chance to run
    await b.wait_for(lambda: b.sink.snapshot("m") == snap)
    assert not a.store.health().healthy
    await a.store.aclose()  # idempotent


async def test_from_settings() -> None:
    from gemini_failover.config import Settings

    settings = Settings(
        redis_url="redis://u:pw@127.0.0.1:1/0",
        redis_prefix="pfx",
        redis_resync_seconds=2.5,
        breaker={"window_seconds": 12},
    )
    store = RedisStateStore.from_settings(settings)
    assert store.breaker_key("m") == "pfx:breaker:m"
    assert store._resync_seconds == 2.5 and store._window_buckets == 12
    assert "pw" not in repr(store)
    with pytest.raises(ValueError, match="redis_url"):
        RedisStateStore.from_settings(Settings())


async def test_publishing_before_start_is_kept_for_the_first_connection(
    redis_url: str, prefix: str, bus: Changes, make_store: StoreFactory
) -> None:
    b = await make_store("B")
    a = ObservedStore(redis_url, bus, instance_id="A", prefix=prefix)
    snap = a.sink.transition("m", OPEN)  # no I/O yet: queued
    assert not a.store.health().healthy  # "not started"
    try:
        await a.start(["m"])
        await b.wait_for(lambda: b.sink.snapshot("m") == snap)
    finally:
        await a.store.aclose()


async def test_constructor_does_no_io() -> None:
    store = RedisStateStore("redis://127.0.0.1:1/0", prefix="x")  # nothing listens there
    store.record_outcome("m", True)
    store.publish_cooldown("m", CooldownKind.RATE_LIMITED, time.time() + 1)
    assert store.health() == StoreHealth("redis", False, "redis://127.0.0.1:1/0: not started")
    await store.aclose()
