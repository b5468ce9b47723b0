"""The Redis store's parts that need no Redis: codec, write-behind queues, listener,
health reporting, script replies, URL masking, and the memory store."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from gemini_failover.resilience.breaker import BreakerSnapshot, BreakerState
from gemini_failover.resilience.clock import FakeClock
from gemini_failover.state import CooldownKind, MemoryStateStore, StoreHealth
from gemini_failover.state.redis.batch import WriteBehind
from gemini_failover.state.redis.codec import (
    BreakerEvent,
    CooldownEvent,
    KeySpace,
    decode_event,
    decode_reading,
    encode_cooldown_event,
    parse_snapshot,
    snapshot_fields,
    snapshot_from_hash,
)
from gemini_failover.state.redis.handover import Handover
from gemini_failover.state.redis.health import HealthReporter
from gemini_failover.state.redis.listener import Listener
from gemini_failover.state.redis.scripts import BreakerReply, Verdict, later_stored_until
from gemini_failover.state.redis.stats import RedisStoreStats
from gemini_failover.state.urls import redact_url, scrub, secrets_of

OPEN = BreakerState.OPEN
RATE = CooldownKind.RATE_LIMITED
SNAP = BreakerSnapshot(OPEN, 4, 1700000000.25, 1700000015.5, 2, "5 consecutive failures")

# -- codec ---------------------------------------------------------------------------------

snapshots = st.builds(
    BreakerSnapshot,
    state=st.sampled_from(list(BreakerState)),
    epoch=st.integers(0, 2**40),
    since=st.floats(0, 2e9),
    open_until=st.floats(0, 2e9),
    trips=st.integers(0, 100),
    reason=st.text(max_size=40),
)


@given(snapshots)
def test_snapshot_fields_round_trip(snapshot: BreakerSnapshot) -> None:
    assert parse_snapshot(snapshot_fields(snapshot)) == snapshot
    as_hash = dict(zip(("epoch", "state", "since", "open_until", "trips", "reason"),
                       snapshot_fields(snapshot), strict=True))  # fmt: skip
    assert snapshot_from_hash(as_hash) == snapshot


def test_snapshot_from_hash_absent_and_junk() -> None:
    assert snapshot_from_hash({}) is None
    with pytest.raises(ValueError, match="unreadable breaker hash"):
        snapshot_from_hash({"epoch": "1", "state": "2"})  # incomplete
    with pytest.raises(ValueError, match="unreadable breaker hash"):
        snapshot_from_hash(
            dict.fromkeys(("epoch", "state", "since", "open_until", "trips", "reason"), "x")
        )


def test_keys() -> None:
    keys = KeySpace("p")
    assert keys.channel == "p:events"
    assert keys.breaker("m") == "p:breaker:m"
    assert keys.cooldown("m", RATE) == "p:cooldown:m:rate_limited"
    assert keys.window("m", 12) == "p:window:m:12"


def test_events_decode() -> None:
    breaker = json.dumps({"i": "A", "k": "b", "m": "m", "s": snapshot_fields(SNAP)})
    assert decode_event(breaker) == BreakerEvent("A", "m", SNAP)
    cooldown = encode_cooldown_event("A", "m", RATE, 123.5)
    assert decode_event(cooldown) == CooldownEvent("A", "m", RATE, 123.5)
    assert decode_event(json.dumps({"i": "A", "k": "future", "m": "m"})) is None


@pytest.mark.parametrize(
    "junk",
    ["not json", "[]", "{}", json.dumps({"i": "A", "k": "b", "m": "m", "s": ["x"]}),
     json.dumps({"i": "A", "k": "c", "m": "m", "c": "no-such-kind", "u": 1})],
)  # fmt: skip
def test_junk_events_raise_value_error(junk: str) -> None:
    with pytest.raises(ValueError, match="malformed state event"):
        decode_event(junk)


def test_decode_reading_consumes_one_models_replies_and_survives_junk() -> None:
    replies = iter(
        [{"epoch": "x"}, "12.5", None, "junk", None, ["2", "5"], [None, None], ["1", "x"], "next"]
    )
    with capture_logs() as logs:
        reading = decode_reading("m", replies, range(10, 13))
    assert next(replies) == "next"  # exactly its own replies consumed
    assert reading.breaker is None
    assert [e["event"] for e in logs] == ["unreadable breaker snapshot in redis"]
    assert reading.cooldowns == dict(zip(CooldownKind, [12.5, 0.0, 0.0, 0.0], strict=True))
    assert list(reading.buckets) == [(10, 2, 5), (11, 0, 0), (12, 1, 0)]


# -- write-behind --------------------------------------------------------------------------


def test_write_behind_coalesces_keeping_the_newest() -> None:
    batch = WriteBehind(window_buckets=30, max_pending_buckets=8, stats=RedisStoreStats())
    older = BreakerSnapshot(OPEN, 3)
    batch.add_breaker("m", SNAP)
    batch.add_breaker("m", older)
    batch.add_cooldown("m", RATE, 50.0)
    batch.add_cooldown("m", RATE, 40.0)
    for bad in (True, False, True):
        batch.add_outcome("m", 100, bad)
    assert batch.has_snapshots() and batch.has_pending()
    taken = batch.take()
    assert taken.breakers == {"m": SNAP}
    assert taken.cooldowns == {("m", RATE): 50.0}
    assert taken.outcomes == {("m", 100): [2, 3]}
    assert taken.live_cooldowns(now=60.0) == []
    assert not batch.has_pending()


def test_write_behind_is_bounded_and_counts_what_it_drops() -> None:
    stats = RedisStoreStats()
    batch = WriteBehind(window_buckets=5, max_pending_buckets=3, stats=stats)
    for second in range(10):
        batch.add_outcome("m", second, False)
    assert sorted(batch.outcomes) == [("m", 7), ("m", 8), ("m", 9)]
    assert stats.dropped_outcomes == 7


def test_write_behind_requeues_failed_outcomes_and_remembers_written_ones() -> None:
    batch = WriteBehind(window_buckets=5, max_pending_buckets=10, stats=RedisStoreStats())
    batch.add_outcome("m", 100, True)
    failed = batch.take().outcomes
    batch.add_outcome("m", 100, False)
    batch.requeue(failed, second=100)
    assert batch.outcomes == {("m", 100): [1, 2]}
    batch.written(batch.take().outcomes, now=100.0)
    batch.written({("m", 101): [0, 1]}, now=101.0)
    assert batch.own() == {("m", 100): (1, 2), ("m", 101): (0, 1)}
    batch.written({}, now=200.0)
    assert batch.own() == {}  # out of the window: forgotten


# -- handing state over --------------------------------------------------------------------


class Sink:
    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def apply_breaker(self, model: str, snapshot: BreakerSnapshot) -> None:
        self.calls.append(("breaker", model, snapshot.epoch))

    def apply_cooldown(self, model: str, kind: CooldownKind, until: float) -> None:
        self.calls.append(("cooldown", model, until))

    def apply_window(self, model: str, bad: int, total: int) -> None:
        raise RuntimeError("a buggy sink")

    def store_health_changed(self, health: StoreHealth) -> None:
        self.calls.append(("health", health.healthy))


def test_handover_passes_on_only_newer_breakers_and_later_cooldowns() -> None:
    clock = FakeClock(start=1000.0)
    stats = RedisStoreStats()
    handover = Handover(clock, stats)
    handover.sink = sink = Sink()
    handover.published_breaker("m", SNAP)  # epoch 4, ours
    handover.offer_breaker("m", BreakerSnapshot(OPEN, 4))
    handover.offer_breaker("m", BreakerSnapshot(OPEN, 5))
    handover.offer_cooldown("m", RATE, 999.0)  # already over
    handover.offer_cooldown("m", RATE, 1010.0)
    handover.offer_cooldown("m", RATE, 1005.0)
    assert sink.calls == [("breaker", "m", 5), ("cooldown", "m", 1010.0)]
    assert stats.remote_applied == 2
    assert handover.breaker("m") == BreakerSnapshot(OPEN, 5)
    assert handover.cooldowns("m")[RATE] == 1010.0
    with capture_logs() as logs:
        handover.window("m", 1, 2)  # raises inside: logged, not propagated
    assert [e["event"] for e in logs] == ["state sink raised"]


# -- health --------------------------------------------------------------------------------


def test_health_is_told_once_per_transition() -> None:
    told: list[bool] = []
    health = HealthReporter("redis://h:1/0", lambda h: told.append(h.healthy))
    assert health.current == StoreHealth("redis", False, "redis://h:1/0: not started")
    health.update(False, "unreachable: x")
    assert told == []  # nothing before the initial report
    with capture_logs() as logs:
        health.report()
        for _ in range(5):
            health.update(False, "unreachable: again")
        health.update(True, "connected")
        health.update(True, "connected")
        health.update(False, "connection lost: y")
        health.update(True, "connected", quiet=True)
    assert told == [False, True, False]
    assert health.current == StoreHealth("redis", True, "redis://h:1/0: connected")
    events = [e["event"] for e in logs]
    assert events[0].startswith("redis state store degraded")
    assert events[1].startswith("redis state store recovered")
    assert len(events) == 3


# -- listener, scripts, urls, memory ---------------------------------------------------------


def test_listener_hands_on_other_instances_events_for_known_models() -> None:
    seen: list[tuple[object, ...]] = []
    listener = Listener(
        "A",
        {"m": None},
        on_breaker=lambda model, snap: seen.append((model, snap.epoch)),
        on_cooldown=lambda model, kind, until: seen.append((model, kind, until)),
        channel="p:events",
    )
    fields = snapshot_fields(SNAP)
    listener.handle(json.dumps({"i": "A", "k": "b", "m": "m", "s": fields}))  # our own
    listener.handle(json.dumps({"i": "B", "k": "b", "m": "other", "s": fields}))
    listener.handle("junk")
    listener.handle(json.dumps({"i": "B", "k": "b", "m": "m", "s": fields}))
    listener.handle(encode_cooldown_event("B", "m", RATE, 5.0))
    assert seen == [("m", 4), ("m", RATE, 5.0)]


def test_script_replies() -> None:
    assert BreakerReply.decode([1]) == BreakerReply(Verdict.ACCEPTED)
    assert BreakerReply.decode([0]) == BreakerReply(Verdict.SAME)
    assert BreakerReply.decode([2, *snapshot_fields(SNAP)]) == BreakerReply(Verdict.REJECTED, SNAP)
    with pytest.raises(ValueError, match="unreadable breaker script reply"):
        BreakerReply.decode([2, "x"])
    assert later_stored_until([1]) is None
    assert later_stored_until([0, "12.5"]) == 12.5
    assert later_stored_until([0, "junk"]) is None


def test_urls_mask_only_the_password() -> None:
    url = "redis://user:p%40ss@host:6379/0?password=qpw"
    assert redact_url(url) == "redis://user:***@host:6379/0?password=***"
    assert redact_url("redis://host:6379/0") == "redis://host:6379/0"
    assert {"p%40ss", "p@ss", "qpw"} <= set(secrets_of(url))
    assert secrets_of("redis://host:6379/0") == []
    assert scrub(OSError("auth p@ss refused"), secrets_of(url)) == "OSError: auth *** refused"


async def test_memory_store_is_always_healthy_and_shares_nothing() -> None:
    store = MemoryStateStore()
    await store.start(Sink(), ["m"])
    store.publish_breaker("m", SNAP)
    store.publish_cooldown("m", RATE, 1.0)
    store.record_outcome("m", True)
    assert store.health() == StoreHealth("memory", True, "in-process state")
    await store.aclose()
