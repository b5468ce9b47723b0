"""Per-day quotas reset at midnight Pacific time, as Gemini's do: the bucket and the
RetryInfo it advertises, across both daylight-saving switches, and through the SDK with
the emulator's clock set by the test."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from google import genai
from google.genai import errors, types

from gemini_failover.emulator import Emulator, EmulatorServer, ManualClock
from gemini_failover.emulator.quota import (
    QUOTA_TIMEZONE,
    DayBucket,
    next_daily_reset,
    quota_day,
    seconds_to_daily_reset,
)

PACIFIC = QUOTA_TIMEZONE
UTC = dt.UTC


def _at(ymd: tuple[int, int, int], hour: int, minute: int, second: int = 0, fold: int = 0) -> float:
    """Epoch seconds of a Pacific wall-clock time (``fold=1``: the second 01:30 of the
    night the clocks go back)."""
    y, m, d = ymd
    return dt.datetime(y, m, d, hour, minute, second, tzinfo=PACIFIC, fold=fold).timestamp()


@pytest.mark.parametrize(
    ("now", "reset_utc", "seconds"),
    [
        # an ordinary winter day: midnight PST is 08:00 UTC
        (_at((2025, 1, 15), 12, 0), dt.datetime(2025, 1, 16, 8, tzinfo=UTC), 12 * 3600),
        # an ordinary summer day: midnight PDT is 07:00 UTC
        (_at((2025, 7, 1), 23, 0), dt.datetime(2025, 7, 2, 7, tzinfo=UTC), 3600),
        # 9 March 2025, clocks go forward at 02:00: a 23-hour quota day
        (_at((2025, 3, 9), 0, 0, 30), dt.datetime(2025, 3, 10, 7, tzinfo=UTC), 23 * 3600 - 30),
        # 2 November 2025, clocks go back at 02:00: a 25-hour quota day
        (_at((2025, 11, 2), 0, 0, 30), dt.datetime(2025, 11, 3, 8, tzinfo=UTC), 25 * 3600 - 30),
        # 01:30 happens twice that night; both are the same quota day
        (_at((2025, 11, 2), 1, 30), dt.datetime(2025, 11, 3, 8, tzinfo=UTC), 23 * 3600 + 1800),
        (
            _at((2025, 11, 2), 1, 30, fold=1),
            dt.datetime(2025, 11, 3, 8, tzinfo=UTC),
            22 * 3600 + 1800,
        ),
    ],
)
def test_daily_reset_is_the_next_pacific_midnight(
    now: float, reset_utc: dt.datetime, seconds: int
) -> None:
    assert next_daily_reset(now) == reset_utc.timestamp()
    assert seconds_to_daily_reset(now) == seconds


def test_quota_day_is_the_pacific_date() -> None:
    # 05:00 UTC on 1 July is still 30 June in California
    assert quota_day(dt.datetime(2025, 7, 1, 5, tzinfo=UTC).timestamp()) == dt.date(2025, 6, 30)
    assert quota_day(dt.datetime(2025, 7, 1, 7, tzinfo=UTC).timestamp()) == dt.date(2025, 7, 1)


def test_day_bucket_ignores_utc_midnight_and_refills_at_pacific_midnight() -> None:
    bucket = DayBucket(1)
    before_utc_midnight = dt.datetime(2025, 7, 1, 23, 59, 59, tzinfo=UTC).timestamp()
    assert bucket.take(before_utc_midnight) is None
    assert bucket.take(before_utc_midnight) == 7 * 3600 + 1  # until 07:00 UTC
    after_utc_midnight = before_utc_midnight + 2
    assert bucket.take(after_utc_midnight) == 7 * 3600 - 1  # UTC's new day changes nothing
    pacific_midnight = dt.datetime(2025, 7, 2, tzinfo=PACIFIC).timestamp()
    assert bucket.take(pacific_midnight - 1) == 1
    assert bucket.take(pacific_midnight) is None
    assert bucket.take(pacific_midnight) == 24 * 3600


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(dt.datetime(2025, 3, 9, tzinfo=PACIFIC))
    start, mono = clock.time(), clock.monotonic()
    clock.advance(90)
    assert (clock.time() - start, clock.monotonic() - mono) == (90, 90)
    clock.set(start)  # back in wall time: the monotonic reading does not go back
    assert (clock.time(), clock.monotonic() - mono) == (start, 90)
    with pytest.raises(ValueError, match="aware"):
        clock.set(dt.datetime(2025, 3, 9))  # naive: the mistake under test


# ---------------------------------------------------------------- through the SDK


@pytest.fixture
def clock() -> ManualClock:
    # 9 March 2025, 00:00:10 PST (08:00:10 UTC): the day the clocks go forward
    return ManualClock(dt.datetime(2025, 3, 9, 0, 0, 10, tzinfo=PACIFIC))


@pytest.fixture
async def client(clock: ManualClock) -> AsyncIterator[tuple[Emulator, genai.Client]]:
    emulator = Emulator(clock=clock)
    async with EmulatorServer(emulator) as server:
        client = genai.Client(
            api_key="test-key",
            http_options=types.HttpOptions(
                base_url=server.base_url,
                api_version="v1beta",
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )
        yield emulator, client
        await client.aio.aclose()


def _retry_delay(error: errors.APIError) -> str:
    details: list[dict[str, Any]] = error.details["error"]["details"]
    info = next(d for d in details if d["@type"].endswith("RetryInfo"))
    return str(info["retryDelay"])


async def _limited(client: genai.Client) -> errors.ClientError:
    with pytest.raises(errors.ClientError) as info:
        await client.aio.models.generate_content(model="m", contents="hello")
    assert info.value.code == 429
    return info.value


async def test_per_day_quota_follows_pacific_midnight_through_the_sdk(
    client: tuple[Emulator, genai.Client], clock: ManualClock
) -> None:
    emulator, sdk = client
    emulator.configure("m", faults=[{"kind": "rate_limit", "rpm": 1, "quota": "day"}])
    await sdk.aio.models.generate_content(model="m", contents="hello")

    limited = await _limited(sdk)
    assert _retry_delay(limited) == f"{23 * 3600 - 10}s"  # a 23-hour day: DST starts at 02:00
    assert limited.response is not None
    assert "retry-after" not in limited.response.headers

    clock.set(dt.datetime(2025, 3, 10, 0, 0, tzinfo=UTC))  # UTC midnight: no reset
    assert _retry_delay(await _limited(sdk)) == "25200s"  # 7 h to midnight PDT

    clock.set(dt.datetime(2025, 3, 10, 7, 0, tzinfo=UTC))  # midnight PDT
    response = await sdk.aio.models.generate_content(model="m", contents="hello")
    assert response.text

    assert [r.status for r in emulator.requests] == [200, 429, 429, 200]
    assert emulator.requests[-1].time == clock.time()  # the log goes by the same clock


async def test_per_minute_bucket_refills_by_the_emulator_clock(
    client: tuple[Emulator, genai.Client], clock: ManualClock
) -> None:
    emulator, sdk = client
    emulator.configure("m", faults=[{"kind": "rate_limit", "rpm": 2}])
    for _ in range(2):
        await sdk.aio.models.generate_content(model="m", contents="hello")
    limited = await _limited(sdk)
    assert _retry_delay(limited) == "30s"
    clock.advance(29)
    assert _retry_delay(await _limited(sdk)) == "1s"
    clock.advance(1)
    await sdk.aio.models.generate_content(model="m", contents="hello")
