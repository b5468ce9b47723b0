"""Model state shared across instances through Redis: one breaker, no split brain.

Every instance keeps its own copy of the state for the hot path (the manager, a
:class:`~gemini_failover.resilience.state.StateSink`); this store propagates it:

* breaker snapshots: ``{prefix}:breaker:{model}``, a hash written only by a Lua
  script that accepts a snapshot if its epoch is higher than the stored one (a stale
  instance cannot overwrite a newer state) and publishes the accepted snapshot on
  ``{prefix}:events``. A rejected writer adopts the stored winner. Two instances that
  both went from epoch N to N+1 at once tie: the first write wins and the second
  re-writes the winner's state at N+2, which every instance (the loser included,
  whose own epoch is N+1) then adopts, so all of them end on one identical snapshot.
* cool-downs: ``{prefix}:cooldown:{model}:{kind}`` = ``until`` (wall time), expiring
  at ``until``; a script keeps the later of two and publishes it.
* the breaker window: ``{prefix}:window:{model}:{second}`` hashes (``bad``,
  ``total``) that every instance increments; the periodic resync sums the last
  ``window_seconds`` buckets minus this instance's own contributions and hands the
  rest to :meth:`StateSink.apply_window`.

The hot path never waits on Redis: ``publish_*`` and ``record_outcome`` only update
bounded in-memory queues that a writer task drains in pipelines. ``start()`` tells
the sink the initial health (``store_health_changed``), and after that the sink hears
exactly once per transition (healthy -> degraded -> healthy), however many reconnect
attempts fail in between. While Redis is unreachable the hot path keeps serving on
local state; the store reconnects with capped exponential backoff and then
reconciles: local snapshots newer than Redis's are pushed, older ones are replaced by
Redis's. The password in the URL is never logged nor shown in ``health()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gemini_failover.resilience.breaker import BreakerSnapshot, BreakerState
from gemini_failover.resilience.clock import Clock, SystemClock
from gemini_failover.resilience.state import CooldownKind, StateSink, StoreHealth

if TYPE_CHECKING:
    from gemini_failover.config import Settings

__all__ = ["RedisStateStore", "RedisStoreStats", "redact_url"]

log = structlog.get_logger(__name__)

#: Breaker hashes outlive any break by far; refreshed on every write.
BREAKER_TTL_SECONDS = 86_400.0
#: Window buckets live this much longer than the window itself.
WINDOW_TTL_SLACK_SECONDS = 30

# Breaker transition, atomically.
# KEYS[1]  the breaker hash
# ARGV     epoch, state, since, open_until, trips, reason, instance, model, ttl_ms, channel
# Returns  {1}                  accepted (written and published)
#          {0}                  the stored snapshot is this very one: nothing to do
#          {2, epoch, state, since, open_until, trips, reason}
#                               rejected: adopt this snapshot. Either the stored one
#                               (its epoch is higher), or, on an equal epoch with other
#                               content (another instance got there first), the stored
#                               one re-written at epoch + 1 and published, so that
#                               every instance, including this one, adopts it.
_BREAKER_LUA = """
local key = KEYS[1]
local epoch = tonumber(ARGV[1])
local cur = redis.call('HMGET', key, 'epoch', 'state', 'since', 'open_until', 'trips', 'reason')
local snap = {ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]}
local status = 1
if cur[1] and cur[2] and cur[3] and cur[4] and cur[5] and cur[6] then
  local stored = tonumber(cur[1])
  if stored > epoch then
    return {2, cur[1], cur[2], cur[3], cur[4], cur[5], cur[6]}
  end
  if stored == epoch then
    if cur[2] == ARGV[2] and cur[3] == ARGV[3] and cur[4] == ARGV[4]
        and cur[5] == ARGV[5] and cur[6] == ARGV[6] then
      return {0}
    end
    snap = {string.format('%d', stored + 1), cur[2], cur[3], cur[4], cur[5], cur[6]}
    status = 2
  end
end
redis.call('HSET', key, 'epoch', snap[1], 'state', snap[2], 'since', snap[3],
  'open_until', snap[4], 'trips', snap[5], 'reason', snap[6], 'owner', ARGV[7])
redis.call('PEXPIRE', key, ARGV[9])
redis.call('PUBLISH', ARGV[10], cjson.encode({i = ARGV[7], k = 'b', m = ARGV[8], s = snap}))
if status == 2 then
  return {2, snap[1], snap[2], snap[3], snap[4], snap[5], snap[6]}
end
return {1}
"""

# Cool-down: keep the later ``until``.
# KEYS[1]  the cool-down key;  ARGV  until, ttl_ms, channel, message
# Returns  {1} written and published, or {0, stored_until} when the stored one is later.
_COOLDOWN_LUA = """
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(cur) and tonumber(cur) >= tonumber(ARGV[1]) then
  return {0, cur}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return {1}
"""

_FAILURES: tuple[type[BaseException], ...] = (RedisError, OSError)


@dataclass(slots=True)
class RedisStoreStats:
    """Counters for metrics and tests; read-only for callers."""

    connects: int = 0  # successful (re)connections
    connect_failures: int = 0  # failed connection attempts
    disconnects: int = 0  # live connections lost
    flushes: int = 0  # writer pipelines executed
    breakers_accepted: int = 0  # transitions this instance wrote
    breakers_adopted: int = 0  # own transitions rejected: the winner was adopted
    remote_applied: int = 0  # snapshots / cool-downs applied from other instances
    dropped_outcomes: int = 0  # outcomes dropped because the queue was full
    resyncs: int = 0  # full syncs (periodic and reconnect)


def redact_url(url: str) -> str:
    """``redis://user:secret@host/0`` -> ``redis://user:***@host/0`` (also a
    ``password=`` query parameter). Unparseable input is replaced entirely."""
    try:
        parts = urlsplit(url)
        redacted = url
        if parts.password is not None:
            userinfo, _, hostinfo = parts.netloc.rpartition("@")
            user = userinfo.partition(":")[0]
            redacted = redacted.replace(parts.netloc, f"{user}:***@{hostinfo}", 1)
        if parts.query:
            pairs = parse_qsl(parts.query, keep_blank_values=True)
            if any(k.lower() == "password" for k, _ in pairs):
                query = urlencode(
                    [(k, "***" if k.lower() == "password" else v) for k, v in pairs], safe="*"
                )
                redacted = redacted.replace(f"?{parts.query}", f"?{query}", 1)
        return redacted
    except ValueError:
        return "<redis url>"


def _secrets_of(url: str) -> list[str]:
    """The password(s) in a URL, raw and percent-decoded, to scrub from error text."""
    found: set[str] = set()
    with contextlib.suppress(ValueError):
        parts = urlsplit(url)
        if parts.password:
            found.update({parts.password, unquote(parts.password), quote(parts.password)})
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key.lower() == "password" and value:
                found.add(value)
    return sorted((s for s in found if s), key=len, reverse=True)


def _default_instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _client_name(instance_id: str) -> str:
    """CLIENT SETNAME refuses spaces and control characters."""
    name = "".join(c if c.isprintable() and not c.isspace() else "_" for c in instance_id)
    return f"gemini-failover:{name}"[:128]


def _encode_float(value: float) -> str:
    return repr(float(value))


def _snapshot_fields(snap: BreakerSnapshot) -> list[str]:
    return [
        str(snap.epoch),
        str(int(snap.state)),
        _encode_float(snap.since),
        _encode_float(snap.open_until),
        str(snap.trips),
        snap.reason,
    ]


def _parse_snapshot(fields: Iterable[Any]) -> BreakerSnapshot:
    """From (epoch, state, since, open_until, trips, reason): script replies and
    pub/sub messages both use this order. Raises ValueError on junk."""
    epoch, state, since, open_until, trips, reason = (_text(f) for f in fields)
    return BreakerSnapshot(
        state=BreakerState(int(state)),
        epoch=int(epoch),
        since=float(since),
        open_until=float(open_until),
        trips=int(trips),
        reason=reason,
    )


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


class RedisStateStore:
    """A :class:`~gemini_failover.resilience.state.StateStore` over Redis
    (``redis.asyncio``). The constructor does no I/O; :meth:`start` connects."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "gemini-failover",
        resync_seconds: float = 5.0,
        window_seconds: float = 30.0,
        instance_id: str | None = None,
        clock: Clock | None = None,
        reconnect_min_seconds: float = 0.1,
        reconnect_max_seconds: float = 5.0,
        flush_interval: float = 0.005,
        max_pending_buckets: int = 4096,
        socket_timeout: float = 2.0,
        connect_timeout: float = 1.0,
        close_timeout: float = 2.0,
    ) -> None:
        if resync_seconds <= 0 or window_seconds <= 0:
            raise ValueError("resync_seconds and window_seconds must be positive")
        if not 0 < reconnect_min_seconds <= reconnect_max_seconds:
            raise ValueError("need 0 < reconnect_min_seconds <= reconnect_max_seconds")
        if max_pending_buckets < 1:
            raise ValueError("max_pending_buckets must be at least 1")
        self._url = url
        self._redacted = redact_url(url)
        self._secrets = _secrets_of(url)
        self._prefix = prefix
        self._channel = f"{prefix}:events"
        self._resync_seconds = resync_seconds
        self._window_seconds = window_seconds
        self._window_buckets = max(1, math.ceil(window_seconds))
        self._window_ttl = self._window_buckets + WINDOW_TTL_SLACK_SECONDS
        self._breaker_ttl_ms = int(BREAKER_TTL_SECONDS * 1000)
        self.instance_id = instance_id or _default_instance_id()
        self._clock: Clock = clock or SystemClock()
        self._backoff_min = reconnect_min_seconds
        self._backoff_max = reconnect_max_seconds
        self._flush_interval = flush_interval
        self._max_pending_buckets = max_pending_buckets
        self._socket_timeout = socket_timeout
        self._connect_timeout = connect_timeout
        self._close_timeout = close_timeout

        self.stats = RedisStoreStats()
        self._sink: StateSink | None = None
        self._models: dict[str, None] = {}  # an ordered set
        # What this instance's sink holds, as far as the store knows: its own
        # published snapshots and the ones applied from Redis (the newest of both).
        self._known: dict[str, BreakerSnapshot] = {}
        self._known_cooldowns: dict[tuple[str, CooldownKind], float] = {}
        # Pending writes, coalesced: bounded by models x kinds x window buckets.
        self._pending_breakers: dict[str, BreakerSnapshot] = {}
        self._pending_cooldowns: dict[tuple[str, CooldownKind], float] = {}
        self._pending_outcomes: dict[tuple[str, int], list[int]] = {}
        # Outcomes this instance wrote to Redis, per bucket: subtracted from the sums.
        self._own: dict[tuple[str, int], list[int]] = {}
        self._wake = asyncio.Event()
        self._window_lock = asyncio.Lock()
        self._client: Redis | None = None
        self._pubsub: PubSub | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._children: list[asyncio.Task[None]] = []
        self._connected = False
        self._closing = False
        self._health = StoreHealth("redis", False, f"{self._redacted}: not started")
        # What the sink was last told: None until start() reports the initial health.
        self._sink_told_healthy: bool | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, *, clock: Clock | None = None, **kwargs: Any
    ) -> RedisStateStore:
        if settings.redis_url is None:
            raise ValueError("redis_url is not set")
        return cls(
            settings.redis_url.get_secret_value(),
            prefix=settings.redis_prefix,
            resync_seconds=settings.redis_resync_seconds,
            window_seconds=settings.breaker.window_seconds,
            clock=clock,
            **kwargs,
        )

    def __repr__(self) -> str:
        return f"RedisStateStore({self._redacted!r}, prefix={self._prefix!r})"

    # -- keys -------------------------------------------------------------------------

    def breaker_key(self, model: str) -> str:
        return f"{self._prefix}:breaker:{model}"

    def cooldown_key(self, model: str, kind: CooldownKind) -> str:
        return f"{self._prefix}:cooldown:{model}:{kind.value}"

    def window_key(self, model: str, second: int) -> str:
        return f"{self._prefix}:window:{model}:{second}"

    @property
    def channel(self) -> str:
        return self._channel

    # -- the StateStore protocol: hot path, never blocks or raises -------------------

    def publish_breaker(self, model: str, snapshot: BreakerSnapshot) -> None:
        self._track(model)
        known = self._known.get(model)
        if known is None or snapshot.epoch >= known.epoch:
            self._known[model] = snapshot
        pending = self._pending_breakers.get(model)
        if pending is None or snapshot.epoch >= pending.epoch:
            self._pending_breakers[model] = snapshot
        self._wake.set()

    def publish_cooldown(self, model: str, kind: CooldownKind, until: float) -> None:
        if until <= self._clock.time():
            return
        self._track(model)
        key = (model, kind)
        if until > self._known_cooldowns.get(key, 0.0):
            self._known_cooldowns[key] = until
        if until > self._pending_cooldowns.get(key, 0.0):
            self._pending_cooldowns[key] = until
        self._wake.set()

    def record_outcome(self, model: str, bad: bool) -> None:
        if model not in self._models:
            self._models[model] = None
        second = int(self._clock.time())
        key = (model, second)
        counts = self._pending_outcomes.get(key)
        if counts is None:
            self._prune_pending_outcomes(second)
            counts = self._pending_outcomes[key] = [0, 0]
        counts[0] += int(bad)
        counts[1] += 1
        if not self._wake.is_set():
            self._wake.set()

    def health(self) -> StoreHealth:
        return self._health

    # -- lifecycle --------------------------------------------------------------------

    async def start(self, sink: StateSink, models: list[str]) -> None:
        """Connect, load the shared state into ``sink`` (newest epoch wins), tell the
        sink the initial health, and start the background tasks (pub/sub listener,
        writer, periodic resync, reconnects). An unreachable Redis does not raise:
        the store starts degraded and keeps reconnecting. A malformed URL raises
        ValueError. Bounded by ``connect_timeout + 2 * socket_timeout``."""
        if self._supervisor is not None:
            raise RuntimeError("RedisStateStore.start() called twice")
        self._sink = sink
        for model in models:
            self._track(model)
        self._client = Redis.from_url(
            self._url,
            decode_responses=True,
            socket_timeout=self._socket_timeout,
            socket_connect_timeout=self._connect_timeout,
            retry=Retry(NoBackoff(), 0),
            client_name=_client_name(self.instance_id),
        )
        connected = False
        try:
            await self._connect()
            connected = True
        except _FAILURES as exc:
            self._connect_failed(exc)
        self._tell_sink()  # the initial state, healthy or not: exactly once
        self._supervisor = asyncio.create_task(
            self._supervise(connected), name=f"redis-state-store:{self._prefix}"
        )

    async def aclose(self) -> None:
        """Stop the background tasks, flush what is pending (best effort) and close
        the connections; bounded by ``close_timeout`` however Redis behaves."""
        if self._closing:
            return
        self._closing = True
        deadline = time.monotonic() + self._close_timeout
        self._wake.set()  # the writer checks _closing when it wakes
        task, self._supervisor = self._supervisor, None
        if task is not None:
            # Cancel until it is gone: on Python 3.11 a cancellation that arrives
            # together with a reply can be swallowed inside redis-py (the 3.11
            # asyncio.wait_for race), and a TaskGroup does not cancel its children
            # twice; the loops also stop by themselves once _closing is set.
            while not task.done() and time.monotonic() < deadline:
                task.cancel()
                for child in self._children:
                    child.cancel()
                await asyncio.wait({task}, timeout=min(0.05, deadline - time.monotonic()))
        client = self._client
        if client is not None and self._connected and self._has_pending():
            with contextlib.suppress(*_FAILURES, asyncio.CancelledError):
                async with asyncio.timeout(max(0.05, min(0.5, deadline - time.monotonic()))):
                    await self._flush(client)
        await self._drop_connections(max(0.05, deadline - time.monotonic()), close=True)
        self._connected = False
        self._health = StoreHealth("redis", False, f"{self._redacted}: closed")

    # -- connection management ---------------------------------------------------------

    async def _supervise(self, connected: bool) -> None:
        attempt = 0
        while not self._closing:
            if not connected:
                delay = min(self._backoff_max, self._backoff_min * 2**attempt)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                attempt += 1
                try:
                    await self._connect()
                except Exception as exc:
                    if not isinstance(exc, _FAILURES):
                        log.error("redis state store failed to reconnect", exc_info=exc)
                    self._connect_failed(exc)
                    continue
                connected = True
            attempt = 0
            client, pubsub = self._client, self._pubsub
            assert client is not None and pubsub is not None
            try:
                await self._serve(client, pubsub)
            except Exception as exc:  # any failure means: reconnect
                leaf = _leaf(exc)
                if not isinstance(leaf, _FAILURES):
                    # not Redis going away: a bug (here or in the sink); say it loudly
                    log.error("redis state store failed", exc_info=leaf)
                self._lost(leaf)
            connected = False
            self._connected = False
            await self._drop_connections(self._close_timeout, close=False)

    async def _connect(self) -> None:
        client = self._client
        assert client is not None
        try:
            async with asyncio.timeout(self._connect_timeout + 2 * self._socket_timeout):
                await client.ping()
                pubsub = client.pubsub()
                self._pubsub = pubsub
                await pubsub.subscribe(self._channel)
                # The reconcile below pushes everything local that Redis lacks.
                self._pending_breakers.clear()
                self._pending_cooldowns.clear()
                await self._sync(client)
        except BaseException:
            await self._drop_connections(self._close_timeout, close=False)
            raise
        self._connected = True
        self.stats.connects += 1
        self._set_health(True, f"{self._redacted}: connected")

    async def _serve(self, client: Redis, pubsub: PubSub) -> None:
        if self._has_pending():
            self._wake.set()
        try:
            async with asyncio.TaskGroup() as tg:
                self._children = [
                    tg.create_task(self._listen(pubsub)),
                    tg.create_task(self._write_loop(client)),
                    tg.create_task(self._resync_loop(client)),
                ]
        finally:
            self._children = []

    async def _drop_connections(self, timeout: float, *, close: bool) -> None:
        pubsub, self._pubsub = self._pubsub, None
        client = self._client
        with contextlib.suppress(*_FAILURES, TimeoutError):  # closing a broken link
            async with asyncio.timeout(timeout):
                if pubsub is not None:
                    await pubsub.aclose()
                if client is not None:
                    if close:
                        await client.aclose(close_connection_pool=True)
                    else:
                        await client.connection_pool.disconnect()

    def _connect_failed(self, exc: BaseException) -> None:
        self.stats.connect_failures += 1
        detail = self._describe(exc)
        log.debug("redis connect failed", url=self._redacted, error=detail)
        self._set_health(False, f"{self._redacted}: unreachable: {detail}")

    def _lost(self, exc: BaseException) -> None:
        self.stats.disconnects += 1
        self._set_health(False, f"{self._redacted}: connection lost: {self._describe(exc)}")

    def _set_health(self, healthy: bool, detail: str) -> None:
        self._health = StoreHealth("redis", healthy, detail)
        if self._sink_told_healthy is None or healthy == self._sink_told_healthy:
            return  # start() reports the first state; afterwards, transitions only
        if not self._closing:
            self._tell_sink()

    def _tell_sink(self) -> None:
        health = self._health
        recovery = self._sink_told_healthy is False
        self._sink_told_healthy = health.healthy
        if health.healthy:
            if recovery:
                log.info("redis state store recovered: sharing state again", url=self._redacted)
            else:
                log.info("redis state store connected", url=self._redacted)
        else:
            log.warning(
                "redis state store degraded: serving on local state, reconnecting",
                url=self._redacted,
                detail=health.detail,
            )
        sink = self._sink
        if sink is not None:
            self._call_sink("store_health_changed", sink.store_health_changed, health)

    def _describe(self, exc: BaseException) -> str:
        text = str(exc) or type(exc).__name__
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return f"{type(exc).__name__}: {text}"[:300]

    # -- background loops -------------------------------------------------------------

    async def _listen(self, pubsub: PubSub) -> None:
        while not self._closing:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None and message.get("type") == "message":
                self._on_message(message["data"])

    async def _write_loop(self, client: Redis) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            if self._closing:
                return  # aclose() does the final flush
            if not self._pending_breakers and not self._pending_cooldowns:
                # Only outcomes: let a few milliseconds of them gather in one pipeline.
                await asyncio.sleep(self._flush_interval)
            await self._flush(client)

    async def _resync_loop(self, client: Redis) -> None:
        while not self._closing:
            await asyncio.sleep(self._resync_seconds * random.uniform(0.9, 1.1))
            await self._sync(client)

    # -- writing ----------------------------------------------------------------------

    def _has_pending(self) -> bool:
        return bool(self._pending_breakers or self._pending_cooldowns or self._pending_outcomes)

    async def _flush(self, client: Redis) -> None:
        breakers, self._pending_breakers = self._pending_breakers, {}
        cooldowns, self._pending_cooldowns = self._pending_cooldowns, {}
        outcomes, self._pending_outcomes = self._pending_outcomes, {}
        if not (breakers or cooldowns or outcomes):
            return
        now = self._clock.time()
        live_cooldowns = [(key, until) for key, until in cooldowns.items() if until > now]
        try:
            async with self._window_lock:
                pipe = client.pipeline(transaction=False)
                for model, snap in breakers.items():
                    self._queue_breaker(pipe, model, snap)
                for (model, kind), until in live_cooldowns:
                    self._queue_cooldown(pipe, model, kind, until, now)
                for (model, second), (bad, total) in outcomes.items():
                    key = self.window_key(model, second)
                    if bad:
                        pipe.hincrby(key, "bad", bad)
                    pipe.hincrby(key, "total", total)
                    pipe.expire(key, self._window_ttl)
                results = await pipe.execute()
                for bucket, (bad, total) in outcomes.items():
                    own = self._own.setdefault(bucket, [0, 0])
                    own[0] += bad
                    own[1] += total
                self._prune_own(now)
        except BaseException:
            # Snapshots and cool-downs are re-pushed by the reconcile on reconnect
            # (from _known); outcomes go back in the bounded queue.
            self._requeue_outcomes(outcomes)
            raise
        self.stats.flushes += 1
        index = 0
        for model in breakers:
            self._on_breaker_reply(model, results[index])
            index += 1
        for (model, kind), _ in live_cooldowns:
            self._on_cooldown_reply(model, kind, results[index])
            index += 1

    def _queue_breaker(self, pipe: Any, model: str, snap: BreakerSnapshot) -> None:
        pipe.eval(
            _BREAKER_LUA,
            1,
            self.breaker_key(model),
            *_snapshot_fields(snap),
            self.instance_id,
            model,
            self._breaker_ttl_ms,
            self._channel,
        )

    def _queue_cooldown(
        self, pipe: Any, model: str, kind: CooldownKind, until: float, now: float
    ) -> None:
        ttl_ms = max(1, math.ceil((until - now) * 1000))
        message = json.dumps(
            {"i": self.instance_id, "k": "c", "m": model, "c": kind.value, "u": until},
            separators=(",", ":"),
        )
        pipe.eval(
            _COOLDOWN_LUA,
            1,
            self.cooldown_key(model, kind),
            _encode_float(until),
            ttl_ms,
            self._channel,
            message,
        )

    def _on_breaker_reply(self, model: str, reply: Any) -> None:
        status = int(reply[0])
        if status == 1:
            self.stats.breakers_accepted += 1
        elif status == 2:
            try:
                winner = _parse_snapshot(reply[1:7])
            except (ValueError, TypeError):
                log.warning("unreadable breaker snapshot in redis", model=model)
                return
            self.stats.breakers_adopted += 1
            self._apply_breaker(model, winner)

    def _on_cooldown_reply(self, model: str, kind: CooldownKind, reply: Any) -> None:
        if int(reply[0]) == 0 and len(reply) > 1:
            with contextlib.suppress(ValueError, TypeError):
                self._apply_cooldown(model, kind, float(reply[1]))

    def _requeue_outcomes(self, outcomes: dict[tuple[str, int], list[int]]) -> None:
        if not outcomes:
            return
        newer, self._pending_outcomes = self._pending_outcomes, dict(outcomes)
        for key, (bad, total) in newer.items():
            counts = self._pending_outcomes.setdefault(key, [0, 0])
            counts[0] += bad
            counts[1] += total
        self._prune_pending_outcomes(int(self._clock.time()), incoming=0)

    def _prune_pending_outcomes(self, second: int, incoming: int = 1) -> None:
        """Bound the outcome queue: buckets that left the window are worthless, and
        beyond ``max_pending_buckets`` the oldest go first."""
        pending = self._pending_outcomes
        horizon = second - self._window_buckets
        stale = [key for key in pending if key[1] <= horizon]
        overflow = len(pending) - len(stale) + incoming - self._max_pending_buckets
        if overflow > 0:
            fresh = sorted((key for key in pending if key[1] > horizon), key=lambda k: k[1])
            stale.extend(fresh[:overflow])
        for key in stale:
            self.stats.dropped_outcomes += pending.pop(key)[1]

    def _prune_own(self, now: float) -> None:
        horizon = int(now) - self._window_buckets - 1
        for key in [key for key in self._own if key[1] < horizon]:
            del self._own[key]

    # -- reading and reconciling ------------------------------------------------------

    def _window_range(self, now: float) -> range:
        last = int(now)
        return range(last - self._window_buckets + 1, last + 1)

    async def _sync(self, client: Redis) -> None:
        """Pull what is newer in Redis, push what is newer here, refresh the shared
        window counts. Used at start, after every reconnect and periodically."""
        models = list(self._models)
        kinds = list(CooldownKind)
        now = self._clock.time()
        seconds = self._window_range(now)
        async with self._window_lock:
            pipe = client.pipeline(transaction=False)
            for model in models:
                pipe.hgetall(self.breaker_key(model))
                for kind in kinds:
                    pipe.get(self.cooldown_key(model, kind))
                for second in seconds:
                    pipe.hmget(self.window_key(model, second), "bad", "total")
            results = iter(await pipe.execute())
            own = {key: tuple(value) for key, value in self._own.items()}
        push_breakers: list[tuple[str, BreakerSnapshot]] = []
        push_cooldowns: list[tuple[str, CooldownKind, float]] = []
        windows: list[tuple[str, int, int]] = []
        for model in models:
            stored = self._snapshot_from_hash(model, next(results))
            known = self._known.get(model)
            if stored is not None and (known is None or stored.epoch > known.epoch):
                self._apply_breaker(model, stored)
            elif known is not None and (
                stored is None
                or known.epoch > stored.epoch
                or (known.epoch == stored.epoch and known != stored)
            ):
                push_breakers.append((model, known))
            for kind in kinds:
                raw = next(results)
                stored_until = 0.0
                if raw is not None:
                    with contextlib.suppress(ValueError, TypeError):
                        stored_until = float(raw)
                if stored_until > now:
                    self._apply_cooldown(model, kind, stored_until)
                local_until = self._known_cooldowns.get((model, kind), 0.0)
                if local_until > now and local_until > stored_until:
                    push_cooldowns.append((model, kind, local_until))
            # A breaker that closed clears its own window; do the same for the
            # remote counts, or failures from before it closed could re-trip it.
            current = self._known.get(model)
            floor = (
                int(current.since)
                if current is not None and current.state is BreakerState.CLOSED
                else None
            )
            bad = total = 0
            for second in seconds:
                raw_bad, raw_total = next(results)
                if floor is not None and second < floor:
                    continue
                own_bad, own_total = own.get((model, second), (0, 0))
                bad += max(0, _int(raw_bad) - own_bad)
                total += max(0, _int(raw_total) - own_total)
            windows.append((model, min(bad, total), total))
        if self._sink is not None:
            for model, bad, total in windows:
                self._call_sink("apply_window", self._sink.apply_window, model, bad, total)
        if push_breakers or push_cooldowns:
            pipe = client.pipeline(transaction=False)
            for model, snap in push_breakers:
                self._queue_breaker(pipe, model, snap)
            for model, kind, until in push_cooldowns:
                self._queue_cooldown(pipe, model, kind, until, now)
            replies = await pipe.execute()
            for (model, _), reply in zip(push_breakers, replies, strict=False):
                self._on_breaker_reply(model, reply)
            for (model, kind, _), reply in zip(
                push_cooldowns, replies[len(push_breakers) :], strict=False
            ):
                self._on_cooldown_reply(model, kind, reply)
        self.stats.resyncs += 1

    def _snapshot_from_hash(self, model: str, fields: Any) -> BreakerSnapshot | None:
        if not fields:
            return None
        try:
            return _parse_snapshot(
                fields[name]
                for name in ("epoch", "state", "since", "open_until", "trips", "reason")
            )
        except (KeyError, ValueError, TypeError):
            log.warning("unreadable breaker snapshot in redis", model=model)
            return None

    def _on_message(self, data: Any) -> None:
        try:
            message = json.loads(data)
            origin, kind, model = message["i"], message["k"], message["m"]
        except (ValueError, KeyError, TypeError):
            log.debug("ignored a malformed state event", channel=self._channel)
            return
        if origin == self.instance_id or model not in self._models:
            return
        try:
            if kind == "b":
                self._apply_breaker(model, _parse_snapshot(message["s"]))
            elif kind == "c":
                self._apply_cooldown(model, CooldownKind(message["c"]), float(message["u"]))
        except (ValueError, KeyError, TypeError):
            log.debug("ignored a malformed state event", channel=self._channel)

    # -- handing state to the sink ---------------------------------------------------

    def _apply_breaker(self, model: str, snap: BreakerSnapshot) -> None:
        known = self._known.get(model)
        if known is not None and snap.epoch <= known.epoch:
            return
        self._known[model] = snap
        sink = self._sink
        if sink is not None:
            self.stats.remote_applied += 1
            self._call_sink("apply_breaker", sink.apply_breaker, model, snap)

    def _apply_cooldown(self, model: str, kind: CooldownKind, until: float) -> None:
        key = (model, kind)
        if until <= self._known_cooldowns.get(key, 0.0) or until <= self._clock.time():
            return
        self._known_cooldowns[key] = until
        sink = self._sink
        if sink is not None:
            self.stats.remote_applied += 1
            self._call_sink("apply_cooldown", sink.apply_cooldown, model, kind, until)

    def _call_sink(self, name: str, method: Callable[..., None], *args: Any) -> None:
        # A sink that raises is a bug in the sink: log it loudly, but do not let it
        # look like a Redis outage (which would tear the connection down).
        try:
            method(*args)
        except Exception:
            log.exception("state sink raised", callback=name)

    def _track(self, model: str) -> None:
        if model not in self._models:
            self._models[model] = None


def _int(value: Any) -> int:
    if value is None:
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
