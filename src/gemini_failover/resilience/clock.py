"""Time, injectable: the policies take a Clock so unit tests drive them with a fake."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds for durations and windows (never goes back)."""

    def time(self) -> float:
        """Wall-clock seconds since the epoch, for state shared across processes."""

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    # The C functions themselves, not methods calling them: a call reads the clock a
    # dozen times on its way through the manager.
    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock that moves only when told to. ``sleep`` advances it at once, so code
    under test that waits runs instantly and deterministically."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = start
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self._now += max(0.0, seconds)
        await asyncio.sleep(0)
