"""Model state shared across instances through Redis: one breaker, no split brain.

Every instance keeps its own copy of the state for the hot path (the manager, a
:class:`~gemini_failover.state.interface.StateSink`); this store propagates it:
breaker snapshots through an epoch-arbitrating script, cool-downs through a
later-wins script (both publish on the events channel), and the breaker window
through per-second buckets every instance increments (see the ``codec``, ``scripts``
and ``reconcile`` modules of this package).

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
import math
import random
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import structlog
from redis.asyncio import Redis
from redis.backoff import EqualJitterBackoff

from gemini_failover.resilience.breaker import BreakerSnapshot
from gemini_failover.resilience.clock import Clock, SystemClock
from gemini_failover.state.interface import CooldownKind, StateSink, StoreHealth
from gemini_failover.state.redis.batch import Counts, WriteBehind, queue_outcomes
from gemini_failover.state.redis.codec import KeySpace, decode_reading, queue_reading
from gemini_failover.state.redis.connection import (
    FAILURES,
    Connection,
    SessionHooks,
    default_instance_id,
    supervise,
)
from gemini_failover.state.redis.handover import Handover
from gemini_failover.state.redis.health import HealthReporter
from gemini_failover.state.redis.listener import Listener
from gemini_failover.state.redis.reconcile import ModelPlan, Move, plan_model
from gemini_failover.state.redis.scripts import BreakerReply, Scripts, Verdict, later_stored_until
from gemini_failover.state.redis.stats import RedisStoreStats
from gemini_failover.state.urls import redact_url, scrub, secrets_of

if TYPE_CHECKING:
    from gemini_failover.config import Settings

__all__ = ["RedisStateStore"]

log = structlog.get_logger(__name__)

#: Breaker hashes outlive any break by far; refreshed on every write.
BREAKER_TTL_SECONDS = 86_400.0
#: Window buckets live this much longer than the window itself.
WINDOW_TTL_SLACK_SECONDS = 30

_Breaker = tuple[str, BreakerSnapshot]  # (model, snapshot) to write
_Cooldown = tuple[str, CooldownKind, float]  # (model, kind, until) to write


class RedisStateStore:
    """A :class:`~gemini_failover.state.interface.StateStore` over Redis
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
        self._url = url
        self._redacted = redact_url(url)
        self._secrets = secrets_of(url)
        self._prefix = prefix
        self._keys = KeySpace(prefix)
        self._resync_seconds = resync_seconds
        self._window_buckets = max(1, math.ceil(window_seconds))
        self._window_ttl = self._window_buckets + WINDOW_TTL_SLACK_SECONDS
        self.instance_id = instance_id or default_instance_id()
        self._scripts = Scripts(self._keys, self.instance_id, int(BREAKER_TTL_SECONDS * 1000))
        self._clock: Clock = clock or SystemClock()
        # redis-py's jitter: min(max, min * 2**attempt) * uniform(0.5, 1)
        self._backoff = EqualJitterBackoff(cap=reconnect_max_seconds, base=reconnect_min_seconds)
        self._flush_interval = flush_interval
        self._socket_timeout = socket_timeout
        self._connect_timeout = connect_timeout
        self._close_timeout = close_timeout

        self.stats = RedisStoreStats()
        self._batch = WriteBehind(self._window_buckets, max_pending_buckets, self.stats)
        self._models: dict[str, None] = {}  # an ordered set
        self._handover = Handover(self._clock, self.stats)
        self._listener = Listener(
            self.instance_id,
            self._models,
            on_breaker=self._handover.offer_breaker,
            on_cooldown=self._handover.offer_cooldown,
            channel=self._keys.channel,
        )
        self._wake = asyncio.Event()
        self._window_lock = asyncio.Lock()  # keeps the own counts in step with Redis
        self._conn: Connection | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._children: list[asyncio.Task[None]] = []
        self._connected = False
        self._closing = False
        self._health = HealthReporter(self._redacted, self._handover.health)

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
        return self._keys.breaker(model)

    def cooldown_key(self, model: str, kind: CooldownKind) -> str:
        return self._keys.cooldown(model, kind)

    def window_key(self, model: str, second: int) -> str:
        return self._keys.window(model, second)

    @property
    def channel(self) -> str:
        return self._keys.channel

    # -- the StateStore protocol: hot path, never blocks or raises -------------------

    def publish_breaker(self, model: str, snapshot: BreakerSnapshot) -> None:
        self._track(model)
        self._handover.published_breaker(model, snapshot)
        self._batch.add_breaker(model, snapshot)
        self._wake.set()

    def publish_cooldown(self, model: str, kind: CooldownKind, until: float) -> None:
        if until <= self._clock.time():
            return
        self._track(model)
        self._handover.published_cooldown(model, kind, until)
        self._batch.add_cooldown(model, kind, until)
        self._wake.set()

    def record_outcome(self, model: str, bad: bool) -> None:
        self._track(model)
        self._batch.add_outcome(model, int(self._clock.time()), bad)
        if not self._wake.is_set():
            self._wake.set()

    def health(self) -> StoreHealth:
        return self._health.current

    # -- lifecycle --------------------------------------------------------------------

    async def start(self, sink: StateSink, models: list[str]) -> None:
        """Connect, load the shared state into ``sink`` (newest epoch wins), tell the
        sink the initial health, and start the background tasks (pub/sub listener,
        writer, periodic resync, reconnects). An unreachable Redis does not raise:
        the store starts degraded and keeps reconnecting. A malformed URL raises
        ValueError. Bounded by ``connect_timeout + 2 * socket_timeout``."""
        if self._supervisor is not None:
            raise RuntimeError("RedisStateStore.start() called twice")
        self._handover.sink = sink
        for model in models:
            self._track(model)
        self._conn = Connection(
            self._url,
            instance_id=self.instance_id,
            socket_timeout=self._socket_timeout,
            connect_timeout=self._connect_timeout,
        )
        connected = False
        try:
            await self._connect()
            connected = True
        except FAILURES as exc:
            self._connect_failed(exc)
        self._health.report()  # the initial state, healthy or not: exactly once
        hooks = SessionHooks(
            connect=self._connect,
            serve=self._serve,
            connect_failed=self._connect_failed,
            lost=self._lost,
            disconnect=self._disconnect,
            closing=self._is_closing,
        )
        self._supervisor = asyncio.create_task(
            supervise(hooks, self._backoff, connected=connected),
            name=f"redis-state-store:{self._prefix}",
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
        conn = self._conn
        if conn is not None and self._connected and self._has_pending():
            with contextlib.suppress(*FAILURES, asyncio.CancelledError):
                async with asyncio.timeout(max(0.05, min(0.5, deadline - time.monotonic()))):
                    await self._flush(conn.client)
        if conn is not None:
            await conn.drop(max(0.05, deadline - time.monotonic()), close=True)
        self._connected = False
        self._health.update(False, "closed", quiet=True)

    # -- connection supervision (driven by connection.supervise) -----------------------

    def _is_closing(self) -> bool:
        return self._closing

    async def _connect(self) -> None:
        conn = self._conn
        assert conn is not None
        try:
            async with asyncio.timeout(self._connect_timeout + 2 * self._socket_timeout):
                await conn.open(self._keys.channel)
                # The reconcile below pushes everything local that Redis lacks.
                self._batch.drop_snapshots()
                await self._sync(conn.client)
        except BaseException:
            await conn.drop(self._close_timeout, close=False)
            raise
        self._connected = True
        self.stats.connects += 1
        self._health.update(True, "connected", quiet=self._closing)

    async def _serve(self) -> None:
        conn = self._conn
        assert conn is not None and conn.pubsub is not None
        if self._has_pending():
            self._wake.set()
        try:
            async with asyncio.TaskGroup() as tg:
                self._children = [
                    tg.create_task(self._listener.run(conn.pubsub, self._is_closing)),
                    tg.create_task(self._write_loop(conn.client)),
                    tg.create_task(self._resync_loop(conn.client)),
                ]
        finally:
            self._children = []

    async def _disconnect(self) -> None:
        self._connected = False
        if self._conn is not None:
            await self._conn.drop(self._close_timeout, close=False)

    def _connect_failed(self, exc: BaseException) -> None:
        self.stats.connect_failures += 1
        detail = scrub(exc, self._secrets)
        log.debug("redis connect failed", url=self._redacted, error=detail)
        self._health.update(False, f"unreachable: {detail}", quiet=self._closing)

    def _lost(self, exc: BaseException) -> None:
        self.stats.disconnects += 1
        detail = scrub(exc, self._secrets)
        self._health.update(False, f"connection lost: {detail}", quiet=self._closing)

    # -- writing ----------------------------------------------------------------------

    @property
    def _pending_outcomes(self) -> dict[tuple[str, int], Counts]:
        return self._batch.outcomes

    def _has_pending(self) -> bool:
        return self._batch.has_pending()

    async def _write_loop(self, client: Redis) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            if self._closing:
                return  # aclose() does the final flush
            if not self._batch.has_snapshots():
                # Only outcomes: let a few milliseconds of them gather in one pipeline.
                await asyncio.sleep(self._flush_interval)
            await self._flush(client)

    async def _flush(self, client: Redis) -> None:
        batch = self._batch.take()
        if not batch:
            return
        now = self._clock.time()
        breakers = list(batch.breakers.items())
        cooldowns = [(model, kind, until) for (model, kind), until in batch.live_cooldowns(now)]
        try:
            async with self._window_lock:
                pipe = client.pipeline(transaction=False)
                self._queue_snapshots(pipe, breakers, cooldowns, now)
                queue_outcomes(pipe, self._keys, batch.outcomes, self._window_ttl)
                results = await pipe.execute()
                self._batch.written(batch.outcomes, now)
        except BaseException:
            # Snapshots and cool-downs are re-pushed by the reconcile on reconnect
            # (from the handover's known state); outcomes go back in the bounded queue.
            self._batch.requeue(batch.outcomes, int(self._clock.time()))
            raise
        self.stats.flushes += 1
        self._on_replies(iter(results), breakers, cooldowns)

    def _queue_snapshots(
        self, pipe: Any, breakers: list[_Breaker], cooldowns: list[_Cooldown], now: float
    ) -> None:
        for model, snap in breakers:
            self._scripts.queue_breaker(pipe, model, snap)
        for model, kind, until in cooldowns:
            self._scripts.queue_cooldown(pipe, model, kind, until, now)

    def _on_replies(
        self, replies: Iterator[Any], breakers: list[_Breaker], cooldowns: list[_Cooldown]
    ) -> None:
        """The scripts' replies, in the order ``_queue_snapshots`` queued them."""
        for model, _ in breakers:
            self._on_breaker_reply(model, next(replies))
        for model, kind, _ in cooldowns:
            self._on_cooldown_reply(model, kind, next(replies))

    def _on_breaker_reply(self, model: str, reply: Any) -> None:
        try:
            decoded = BreakerReply.decode(reply)
        except ValueError:
            log.warning("unreadable breaker snapshot in redis", model=model)
            return
        if decoded.verdict is Verdict.ACCEPTED:
            self.stats.breakers_accepted += 1
        elif decoded.winner is not None:
            self.stats.breakers_adopted += 1
            self._handover.offer_breaker(model, decoded.winner)

    def _on_cooldown_reply(self, model: str, kind: CooldownKind, reply: Any) -> None:
        stored = later_stored_until(reply)
        if stored is not None:
            self._handover.offer_cooldown(model, kind, stored)

    # -- reconciling --------------------------------------------------------------------

    async def _resync_loop(self, client: Redis) -> None:
        while not self._closing:
            await asyncio.sleep(self._resync_seconds * random.uniform(0.9, 1.1))
            await self._sync(client)

    async def _sync(self, client: Redis) -> None:
        """Pull what is newer in Redis, push what is newer here, refresh the shared
        window counts (the rules: the ``reconcile`` module). Used at start, after
        every reconnect and periodically."""
        now = self._clock.time()
        plans = await self._plan(client, now)
        for plan in plans:
            self._adopt(plan)
        for plan in plans:
            self._handover.window(plan.model, *plan.window)
        await self._push(client, plans, now)
        self.stats.resyncs += 1

    async def _plan(self, client: Redis, now: float) -> list[ModelPlan]:
        """Read every tracked model's shared state and reconcile it with ours."""
        models = list(self._models)
        last = int(now)
        seconds = range(last - self._window_buckets + 1, last + 1)
        async with self._window_lock:
            pipe = client.pipeline(transaction=False)
            for model in models:
                queue_reading(pipe, self._keys, model, seconds)
            replies = iter(await pipe.execute())
            own = self._batch.own()
        return [
            plan_model(
                model,
                decode_reading(model, replies, seconds),
                self._handover.breaker(model),
                self._handover.cooldowns(model),
                {second: own.get((model, second), (0, 0)) for second in seconds},
                now,
            )
            for model in models
        ]

    def _adopt(self, plan: ModelPlan) -> None:
        if plan.breaker is Move.ADOPT and plan.snapshot is not None:
            self._handover.offer_breaker(plan.model, plan.snapshot)
        for kind, until in plan.adopt_cooldowns:
            self._handover.offer_cooldown(plan.model, kind, until)

    async def _push(self, client: Redis, plans: list[ModelPlan], now: float) -> None:
        breakers = [
            (plan.model, plan.snapshot)
            for plan in plans
            if plan.breaker is Move.PUSH and plan.snapshot is not None
        ]
        cooldowns = [
            (plan.model, kind, until) for plan in plans for kind, until in plan.push_cooldowns
        ]
        if not (breakers or cooldowns):
            return
        pipe = client.pipeline(transaction=False)
        self._queue_snapshots(pipe, breakers, cooldowns, now)
        self._on_replies(iter(await pipe.execute()), breakers, cooldowns)

    # -- models ---------------------------------------------------------------------

    def _track(self, model: str) -> None:
        if model not in self._models:
            self._models[model] = None
