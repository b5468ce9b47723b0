"""Counters of the Redis store, for metrics and tests."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RedisStoreStats"]


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
