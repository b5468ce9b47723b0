"""Quota windows as Gemini defines them: token buckets per minute, and per-day quotas
that reset at midnight Pacific time (``America/Los_Angeles``, so 07:00 or 08:00 UTC
depending on daylight saving time, and a quota day of 23 or 25 hours twice a year)."""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

__all__ = [
    "QUOTA_TIMEZONE",
    "DayBucket",
    "MinuteBucket",
    "next_daily_reset",
    "quota_day",
    "seconds_to_daily_reset",
]

#: Where Gemini's per-day quotas roll over.
QUOTA_TIMEZONE = ZoneInfo("America/Los_Angeles")


def quota_day(now_wall: float) -> dt.date:
    """The quota day (the date in Pacific time) at a wall-clock time."""
    return dt.datetime.fromtimestamp(now_wall, QUOTA_TIMEZONE).date()


def next_daily_reset(now_wall: float) -> float:
    """Epoch seconds of the next midnight Pacific time after ``now_wall``."""
    tomorrow = quota_day(now_wall) + dt.timedelta(days=1)
    # Midnight is never skipped nor repeated in this zone (the switches are at 02:00), and
    # .timestamp() applies that day's own UTC offset: subtracting two aware datetimes of
    # one zone would compare wall clocks and be an hour off on the switch days.
    return dt.datetime.combine(tomorrow, dt.time(0), QUOTA_TIMEZONE).timestamp()


def seconds_to_daily_reset(now_wall: float) -> float:
    """Whole seconds (rounded up, at least 1) until the per-day quota resets."""
    return max(1.0, math.ceil(next_daily_reset(now_wall) - now_wall))


class MinuteBucket:
    """A token bucket of ``max(1, rpm)`` tokens, full at first use, refilling ``rpm/60``
    tokens a second; ``rpm`` 0 never has a token."""

    __slots__ = ("capacity", "rate", "refilled_at", "tokens")

    def __init__(self, rpm: float) -> None:
        self.capacity = max(1.0, rpm) if rpm > 0 else 0.0
        self.rate = rpm / 60.0
        self.tokens: float | None = None  # None: not used yet
        self.refilled_at = 0.0

    def take(self, now: float) -> float | None:
        """Take a token at monotonic time ``now``: None when there was one, else the
        seconds until the next one (60 when the bucket never refills)."""
        tokens = self.capacity if self.tokens is None else self.tokens
        if self.tokens is not None:
            tokens = min(self.capacity, tokens + (now - self.refilled_at) * self.rate)
        self.refilled_at = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return None
        self.tokens = tokens
        return (1.0 - tokens) / self.rate if self.rate > 0 else 60.0


class DayBucket:
    """``max(1, rpd)`` requests per quota day (``rpd`` 0: none), full again at midnight
    Pacific time."""

    __slots__ = ("capacity", "day", "tokens")

    def __init__(self, rpd: float) -> None:
        self.capacity = max(1.0, rpd) if rpd > 0 else 0.0
        self.day: dt.date | None = None
        self.tokens = 0.0

    def take(self, now_wall: float) -> float | None:
        """Take a request at wall-clock time ``now_wall``: None when allowed, else the
        seconds until the quota resets."""
        today = quota_day(now_wall)
        if self.day != today:
            self.day, self.tokens = today, self.capacity
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return None
        return seconds_to_daily_reset(now_wall)
