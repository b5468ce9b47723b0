"""What this instance's sink holds, as far as the store knows, and handing other
instances' state over to it: only what is newer (breakers) or later (cool-downs) than
what it holds, and a sink that raises never takes the store down."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from gemini_failover.resilience.breaker import BreakerSnapshot
from gemini_failover.resilience.clock import Clock
from gemini_failover.state.interface import CooldownKind, StateSink, StoreHealth
from gemini_failover.state.redis.reconcile import is_later, is_newer
from gemini_failover.state.redis.stats import RedisStoreStats

__all__ = ["Handover"]

log = structlog.get_logger(__name__)


class Handover:
    """The known state: the snapshots and cool-downs this instance published and the
    ones applied from Redis (the newest of both). Before a sink is attached
    (``sink``), offers update the known state only."""

    def __init__(self, clock: Clock, stats: RedisStoreStats) -> None:
        self._clock = clock
        self._stats = stats
        self.sink: StateSink | None = None
        self._breakers: dict[str, BreakerSnapshot] = {}
        self._cooldowns: dict[tuple[str, CooldownKind], float] = {}

    # -- what this instance did --------------------------------------------------------

    def published_breaker(self, model: str, snapshot: BreakerSnapshot) -> None:
        known = self._breakers.get(model)
        if known is None or snapshot.epoch >= known.epoch:
            self._breakers[model] = snapshot

    def published_cooldown(self, model: str, kind: CooldownKind, until: float) -> None:
        key = (model, kind)
        if until > self._cooldowns.get(key, 0.0):
            self._cooldowns[key] = until

    def breaker(self, model: str) -> BreakerSnapshot | None:
        return self._breakers.get(model)

    def cooldowns(self, model: str) -> dict[CooldownKind, float]:
        """``until`` per kind (0.0: none)."""
        return {kind: self._cooldowns.get((model, kind), 0.0) for kind in CooldownKind}

    # -- what other instances did ------------------------------------------------------

    def offer_breaker(self, model: str, snapshot: BreakerSnapshot) -> None:
        if not is_newer(snapshot, self._breakers.get(model)):
            return
        self._breakers[model] = snapshot
        sink = self.sink
        if sink is not None:
            self._stats.remote_applied += 1
            self._call("apply_breaker", sink.apply_breaker, model, snapshot)

    def offer_cooldown(self, model: str, kind: CooldownKind, until: float) -> None:
        key = (model, kind)
        if not is_later(until, self._cooldowns.get(key, 0.0), self._clock.time()):
            return
        self._cooldowns[key] = until
        sink = self.sink
        if sink is not None:
            self._stats.remote_applied += 1
            self._call("apply_cooldown", sink.apply_cooldown, model, kind, until)

    def window(self, model: str, bad: int, total: int) -> None:
        if self.sink is not None:
            self._call("apply_window", self.sink.apply_window, model, bad, total)

    def health(self, health: StoreHealth) -> None:
        if self.sink is not None:
            self._call("store_health_changed", self.sink.store_health_changed, health)

    def _call(self, name: str, method: Callable[..., None], *args: Any) -> None:
        # A sink that raises is a bug in the sink: log it loudly, but do not let it
        # look like a Redis outage (which would tear the connection down).
        try:
            method(*args)
        except Exception:
            log.exception("state sink raised", callback=name)
