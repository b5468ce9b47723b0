"""The state-store interface: what a store offers the manager, and what it hands back.

The manager keeps the authoritative copy it reads on the hot path in memory (breaker
snapshots, cool-downs); a :class:`StateStore` propagates local changes to other
instances and applies theirs through a :class:`StateSink` (the manager). The hot
path never waits on the store: ``publish_*`` and ``record_outcome`` only enqueue.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from gemini_failover.resilience.breaker import BreakerSnapshot

__all__ = ["CooldownKind", "StateSink", "StateStore", "StoreHealth"]


class CooldownKind(enum.StrEnum):
    RATE_LIMITED = "rate_limited"  # wait before calling the model again
    QUOTA_EXHAUSTED = "quota_exhausted"  # per-day quota spent: skip until reset
    UNAVAILABLE = "unavailable"  # 404: skip for a while
    AUTH = "auth"  # the endpoint rejected its credentials: skip its pairs for a while


@dataclass(frozen=True, slots=True)
class StoreHealth:
    backend: str  # "memory" or "redis"
    healthy: bool
    detail: str = ""


class StateSink(Protocol):
    """Implemented by the manager: how a store hands over other instances' state."""

    def apply_breaker(self, model: str, snapshot: BreakerSnapshot) -> None: ...

    def apply_cooldown(self, model: str, kind: CooldownKind, until: float) -> None: ...

    def apply_window(self, model: str, bad: int, total: int) -> None:
        """Failure counts that *other* instances recorded in the breaker window."""

    def store_health_changed(self, health: StoreHealth) -> None: ...


class StateStore(Protocol):
    async def start(self, sink: StateSink, models: list[str]) -> None: ...

    def publish_breaker(self, model: str, snapshot: BreakerSnapshot) -> None: ...

    def publish_cooldown(self, model: str, kind: CooldownKind, until: float) -> None: ...

    def record_outcome(self, model: str, bad: bool) -> None: ...

    def health(self) -> StoreHealth: ...

    async def aclose(self) -> None: ...
