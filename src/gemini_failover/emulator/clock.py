"""The emulator's sense of time, replaceable so that a test can set it.

Fault decisions (token buckets, quota windows) and the request log's timestamps read the
clock; waits (latency, per-chunk delays) are real time on the event loop.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    """Wall-clock time (``time()``, seconds since the epoch) and a monotonic clock."""

    def time(self) -> float: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The real clocks: ``time.time`` and ``time.monotonic``."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told: ``set(...)`` or ``advance(seconds)``.

    Both readings move together; thread-safe (an emulator served from another thread
    reads it).
    """

    def __init__(self, start: float | dt.datetime = 0.0) -> None:
        self._lock = threading.Lock()
        self._wall = _seconds(start)
        self._mono = 0.0

    def time(self) -> float:
        with self._lock:
            return self._wall

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def set(self, when: float | dt.datetime) -> None:
        """Jump to a wall-clock time (an aware datetime or epoch seconds); the monotonic
        reading moves by the same amount (backwards jumps leave it where it is)."""
        with self._lock:
            new = _seconds(when)
            self._mono += max(0.0, new - self._wall)
            self._wall = new

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._wall += seconds
            self._mono += seconds


def _seconds(when: float | dt.datetime) -> float:
    if isinstance(when, dt.datetime):
        if when.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        return when.timestamp()
    return float(when)
