"""Write-behind: what the hot path published, coalesced in bounded queues until the
writer drains them in one pipeline; and the outcomes this instance has written, which
the window sums subtract (they are already in its own breaker). No I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gemini_failover.resilience.breaker import BreakerSnapshot
from gemini_failover.state.interface import CooldownKind
from gemini_failover.state.redis.codec import KeySpace
from gemini_failover.state.redis.stats import RedisStoreStats

__all__ = ["Batch", "Counts", "WriteBehind", "queue_outcomes"]

Counts = list[int]
"""``[bad, total]`` of one model in one second."""


@dataclass(slots=True)
class Batch:
    """One drained set of pending writes."""

    breakers: dict[str, BreakerSnapshot] = field(default_factory=dict)
    cooldowns: dict[tuple[str, CooldownKind], float] = field(default_factory=dict)
    outcomes: dict[tuple[str, int], Counts] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.breakers or self.cooldowns or self.outcomes)

    def live_cooldowns(self, now: float) -> list[tuple[tuple[str, CooldownKind], float]]:
        return [(key, until) for key, until in self.cooldowns.items() if until > now]


class WriteBehind:
    """Pending writes, coalesced: bounded by models x kinds x window buckets.

    ``outcomes`` is the live queue of outcome counts per ``(model, second)``; it keeps
    only buckets still inside the window and at most ``max_pending_buckets`` of them
    (the oldest go first), counting what it drops in ``stats.dropped_outcomes``.
    """

    def __init__(
        self, window_buckets: int, max_pending_buckets: int, stats: RedisStoreStats
    ) -> None:
        if max_pending_buckets < 1:
            raise ValueError("max_pending_buckets must be at least 1")
        self._window_buckets = window_buckets
        self._max_pending_buckets = max_pending_buckets
        self._stats = stats
        self._breakers: dict[str, BreakerSnapshot] = {}
        self._cooldowns: dict[tuple[str, CooldownKind], float] = {}
        self.outcomes: dict[tuple[str, int], Counts] = {}
        self._own: dict[tuple[str, int], Counts] = {}

    # -- the hot path ------------------------------------------------------------------

    def add_breaker(self, model: str, snapshot: BreakerSnapshot) -> None:
        pending = self._breakers.get(model)
        if pending is None or snapshot.epoch >= pending.epoch:
            self._breakers[model] = snapshot

    def add_cooldown(self, model: str, kind: CooldownKind, until: float) -> None:
        key = (model, kind)
        if until > self._cooldowns.get(key, 0.0):
            self._cooldowns[key] = until

    def add_outcome(self, model: str, second: int, bad: bool) -> None:
        key = (model, second)
        counts = self.outcomes.get(key)
        if counts is None:
            self._prune(second, incoming=1)
            counts = self.outcomes[key] = [0, 0]
        counts[0] += int(bad)
        counts[1] += 1

    def has_pending(self) -> bool:
        return bool(self._breakers or self._cooldowns or self.outcomes)

    def has_snapshots(self) -> bool:
        """Breakers or cool-downs pending (worth writing at once, unlike outcomes)."""
        return bool(self._breakers or self._cooldowns)

    # -- the writer --------------------------------------------------------------------

    def take(self) -> Batch:
        batch = Batch(self._breakers, self._cooldowns, self.outcomes)
        self._breakers, self._cooldowns, self.outcomes = {}, {}, {}
        return batch

    def drop_snapshots(self) -> None:
        """On (re)connect: the reconciliation pushes every local snapshot Redis lacks."""
        self._breakers.clear()
        self._cooldowns.clear()

    def written(self, outcomes: dict[tuple[str, int], Counts], now: float) -> None:
        """*outcomes* reached Redis: remember them as this instance's own."""
        for bucket, (bad, total) in outcomes.items():
            own = self._own.setdefault(bucket, [0, 0])
            own[0] += bad
            own[1] += total
        horizon = int(now) - self._window_buckets - 1
        for key in [key for key in self._own if key[1] < horizon]:
            del self._own[key]

    def requeue(self, outcomes: dict[tuple[str, int], Counts], second: int) -> None:
        """*outcomes* did not reach Redis: back in the queue, ahead of newer ones."""
        if not outcomes:
            return
        newer, self.outcomes = self.outcomes, dict(outcomes)
        for key, (bad, total) in newer.items():
            counts = self.outcomes.setdefault(key, [0, 0])
            counts[0] += bad
            counts[1] += total
        self._prune(second, incoming=0)

    def own(self) -> dict[tuple[str, int], tuple[int, int]]:
        """A copy of this instance's written ``(bad, total)`` per ``(model, second)``."""
        return {key: (bad, total) for key, (bad, total) in self._own.items()}

    def _prune(self, second: int, incoming: int) -> None:
        """Bound the outcome queue: buckets that left the window are worthless, and
        beyond ``max_pending_buckets`` the oldest go first."""
        pending = self.outcomes
        horizon = second - self._window_buckets
        stale = [key for key in pending if key[1] <= horizon]
        overflow = len(pending) - len(stale) + incoming - self._max_pending_buckets
        if overflow > 0:
            fresh = sorted((key for key in pending if key[1] > horizon), key=lambda k: k[1])
            stale.extend(fresh[:overflow])
        for key in stale:
            self._stats.dropped_outcomes += pending.pop(key)[1]


def queue_outcomes(
    pipe: Any, keys: KeySpace, outcomes: dict[tuple[str, int], Counts], ttl: int
) -> None:
    """Add *outcomes* to the shared window buckets (each expiring after *ttl* s)."""
    for (model, second), (bad, total) in outcomes.items():
        key = keys.window(model, second)
        if bad:
            pipe.hincrby(key, "bad", bad)
        pipe.hincrby(key, "total", total)
        pipe.expire(key, ttl)
