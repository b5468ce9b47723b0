"""The default store: one process, nothing shared."""

from __future__ import annotations

from gemini_failover.resilience.breaker import BreakerSnapshot
from gemini_failover.state.interface import CooldownKind, StateSink, StoreHealth

__all__ = ["MemoryStateStore"]


class MemoryStateStore:
    """One process, no sharing: every method is a no-op and it is always healthy."""

    async def start(self, sink: StateSink, models: list[str]) -> None:
        return None

    def publish_breaker(self, model: str, snapshot: BreakerSnapshot) -> None:
        return None

    def publish_cooldown(self, model: str, kind: CooldownKind, until: float) -> None:
        return None

    def record_outcome(self, model: str, bad: bool) -> None:
        return None

    def health(self) -> StoreHealth:
        return StoreHealth("memory", True, "in-process state")

    async def aclose(self) -> None:
        return None
