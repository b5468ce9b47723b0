"""Quota windows as Gemini defines them: requests-per-day quotas reset at midnight
Pacific time (America/Los_Angeles, daylight saving included), not UTC."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

PACIFIC = ZoneInfo("America/Los_Angeles")


def seconds_to_daily_reset(now: float) -> float:
    """Seconds from wall-clock ``now`` to the next midnight America/Los_Angeles."""
    local = datetime.fromtimestamp(now, PACIFIC)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), PACIFIC)
    return max(0.0, midnight.timestamp() - now)


def day_quota_cooldown(now: float, retry_after: float | None, reprobe: float) -> float:
    """The cool-down of a per-day quota: a RetryInfo delay, when the 429 carries one;
    without one, until the reset, but at most ``reprobe`` seconds, after which the
    model is tried again (a raised quota is noticed the same day)."""
    if retry_after:
        return retry_after
    return min(seconds_to_daily_reset(now), reprobe)
