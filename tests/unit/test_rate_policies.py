"""The rate-limit policies, pure and clock-driven: the adaptive admission limit
(admission.py), the release gate after a cool-down (release.py), and the error
table's rule for a 400 over the model's token limit."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from google.api_core import exceptions as gexc

from gemini_failover.config import ConcurrencySettings
from gemini_failover.resilience.admission import AdaptiveLimit
from gemini_failover.resilience.clock import FakeClock
from gemini_failover.resilience.errors import POLICY, Category, Then, classify
from gemini_failover.resilience.release import (
    AVOIDANCE_GAIN,
    HOLD_SECONDS,
    PROBE_POLL,
    UNDER_TOKEN_RATE,
    ReleaseGate,
)


def limit(initial: int = 4, **kw: float) -> AdaptiveLimit:
    return AdaptiveLimit(ConcurrencySettings(per_model=initial, **kw))


# -- the adaptive admission limit ---------------------------------------------------------


def test_limit_grows_only_while_saturated() -> None:
    lim = limit(4, max_per_model=6)
    lim.in_flight = 1
    lim.succeeded()
    assert lim.limit == 4  # a quarter used: nothing to learn
    lim.in_flight = 4
    lim.succeeded()
    assert lim.limit == 5  # every slot taken: +1
    lim.succeeded()
    assert lim.limit == 5  # one slot free now: the limit is not what holds calls back
    lim.in_flight = 9
    for _ in range(3):
        lim.succeeded()
    assert lim.limit == 6  # capped


def test_limit_halves_once_per_burst_of_429s() -> None:
    lim = limit(16, min_per_model=2)
    epoch = lim.epoch
    for _ in range(10):  # ten 429s admitted before the first decrease
        lim.overloaded(epoch)
    assert lim.limit == 8
    lim.overloaded(lim.epoch)  # a call admitted after it: decreases again
    assert lim.limit == 4
    for _ in range(5):
        lim.overloaded(lim.epoch)
    assert lim.limit == 2  # the floor


async def test_limit_queues_fifo_and_wakes_as_it_grows() -> None:
    lim = limit(1)
    await lim.acquire()
    assert lim.locked()
    order: list[int] = []

    async def waiter(i: int) -> None:
        await lim.acquire()
        order.append(i)

    tasks = [asyncio.create_task(waiter(i)) for i in range(3)]
    await asyncio.sleep(0)
    assert order == []
    lim.succeeded()  # saturated: the limit grows to 2, one waiter enters
    await asyncio.sleep(0)
    assert order == [0]
    lim.release()
    await asyncio.sleep(0)
    assert order == [0, 1]
    tasks[2].cancel()
    await asyncio.gather(tasks[2], return_exceptions=True)
    lim.release()
    lim.release()
    assert lim.in_flight == 0
    assert not lim.locked()


# -- the release gate ------------------------------------------------------------------------


def test_gate_waits_out_the_cool_down_then_lets_one_probe_through() -> None:
    clock = FakeClock()
    gate = ReleaseGate(min_rate=1.0, max_rate=100.0)
    now = clock.time()
    gate.rate_limited(now + 2.0, 2.0)
    assert gate.admit(now) == pytest.approx(2.0)
    clock.advance(2.0)
    assert gate.admit(clock.time()) == 0.0  # the probe
    assert gate.admit(clock.time()) == PROBE_POLL  # the others wait for its outcome
    assert gate.admit(clock.time()) == PROBE_POLL


def test_gate_keeps_waiters_waiting_on_a_429_from_the_probe() -> None:
    gate = ReleaseGate()
    gate.rate_limited(10.0, 1.0)
    assert gate.admit(10.0) == 0.0  # probe
    gate.rate_limited(11.0, 1.0)  # the probe got a 429
    assert gate.admit(10.5) == pytest.approx(0.5)
    assert gate.admit(11.0) == 0.0  # the next probe
    assert gate.admit(11.0) == PROBE_POLL


def test_gate_releases_at_a_rate_that_grows_with_each_success() -> None:
    clock = FakeClock(0.0)
    gate = ReleaseGate(min_rate=1.0, max_rate=100.0)
    gate.rate_limited(1.0, 1.0)
    clock.advance(1.0)
    assert gate.admit(clock.time()) == 0.0
    gate.succeeded(clock.time())
    assert gate.rate == 1.0  # one per cool-down: what the model just accepted
    released: list[float] = []
    while len(released) < 50:
        wait = gate.admit(clock.time())
        if wait:
            clock.advance(wait)
            continue
        released.append(clock.time())
        gate.succeeded(clock.time())
    gaps = [b - a for a, b in itertools.pairwise(released)]
    assert all(later <= earlier + 1e-9 for earlier, later in itertools.pairwise(gaps))
    assert gaps[0] == pytest.approx(1.0) and gaps[-1] < 0.05  # slow start
    # no instant takes more than one waiter
    assert len(set(released)) == len(released)


def test_gate_halves_its_rate_on_a_429_holds_it_and_then_grows_gently() -> None:
    gate = ReleaseGate(min_rate=1.0, max_rate=100.0)
    gate.rate_limited(0.0, 1.0)
    gate.admit(0.0)
    gate.succeeded(0.0)
    for _ in range(7):
        gate.succeeded(0.0)
    assert gate.rate == 8.0
    gate.rate_limited(1.0, None)  # the model showed its rate
    assert gate.rate == 4.0
    gate.admit(1.0)
    gate.succeeded(1.0)  # the probe
    gate.succeeded(1.0 + HOLD_SECONDS - 0.1)
    assert gate.rate == 4.0  # held while the quota's window turns
    gate.succeeded(1.0 + HOLD_SECONDS)
    assert gate.rate == pytest.approx(4.0 * AVOIDANCE_GAIN)
    gate.rate_limited(40.0, 0.5)  # its next token in 0.5 s: paced just under 2 calls/s
    assert gate.rate == pytest.approx(UNDER_TOKEN_RATE / 0.5)


def test_gate_ramps_spilled_traffic_up_from_the_start_rate() -> None:
    gate = ReleaseGate()
    gate.ramp(0.0, 10.0)
    assert gate.rate == 10.0
    assert gate.admit(0.0) == 0.0
    assert gate.admit(0.0) == pytest.approx(0.1)  # paced from the start
    gate.succeeded(0.0)
    assert gate.rate == 20.0  # slow start
    gate.ramp(0.0, 10.0)
    assert gate.rate == 20.0  # already paced: unchanged


def test_gate_stops_pacing_at_the_max_rate() -> None:
    gate = ReleaseGate(min_rate=10.0, max_rate=30.0)
    gate.rate_limited(0.0, 0.1)
    gate.admit(0.0)
    gate.succeeded(0.0)
    gate.succeeded(0.0)
    gate.succeeded(0.0)
    assert gate.rate is None
    assert gate.admit(0.0) == 0.0 and gate.admit(0.0) == 0.0


def test_gate_lets_another_probe_go_after_a_failure_that_is_not_a_429() -> None:
    gate = ReleaseGate()
    gate.rate_limited(0.0, 1.0)
    assert gate.admit(0.0) == 0.0
    gate.failed()
    assert gate.admit(0.0) == 0.0


# -- a 400 over the model's token limit ----------------------------------------------------


def test_a_400_over_the_token_limit_is_a_misfit_that_fails_over() -> None:
    exc = gexc.BadRequest(
        "The input token count (4000) exceeds the maximum number of tokens allowed (1000)."
    )
    c = classify(exc)
    assert c.category is Category.TOO_LONG
    assert c.token_limit == 1000
    assert POLICY[Category.TOO_LONG].then is Then.FAIL_OVER
    assert not POLICY[Category.TOO_LONG].counts_against_breaker
    assert classify(gexc.BadRequest("Invalid JSON payload")).category is Category.BAD_REQUEST


# -- outlier ejection --------------------------------------------------------------------


def test_outlier_ejects_on_consecutive_errors() -> None:
    from gemini_failover.config import OutlierSettings
    from gemini_failover.resilience.outlier import OutlierDetector

    d = OutlierDetector(OutlierSettings(consecutive_errors=3, minimum_requests=100), FakeClock())
    assert [d.record(True), d.record(True)] == [None, None]
    assert d.record(True) == "outlier: 3 consecutive errors"


def test_outlier_ejects_a_flapping_model_that_the_breakers_rate_misses() -> None:
    from gemini_failover.config import OutlierSettings
    from gemini_failover.resilience.outlier import OutlierDetector

    clock = FakeClock()
    d = OutlierDetector(OutlierSettings(failure_percentage=0.3, minimum_requests=10), clock)
    seen = []
    for i in range(10):  # fail, succeed, fail, ...: 50 %, never 2 in a row
        seen.append(d.record(i % 2 == 0))
    assert seen[:-1] == [None] * 9
    assert seen[-1] == "outlier: 50% of 10 attempts failed"


def test_outlier_forgets_failures_older_than_the_interval() -> None:
    from gemini_failover.config import OutlierSettings
    from gemini_failover.resilience.outlier import OutlierDetector

    clock = FakeClock()
    d = OutlierDetector(OutlierSettings(minimum_requests=4, interval=10.0), clock)
    d.record(True)
    d.record(True)
    clock.advance(11.0)
    assert [d.record(False) for _ in range(4)] == [None] * 4


# -- per-day quota windows -------------------------------------------------------------------


def test_a_day_quota_resets_at_midnight_pacific_not_utc() -> None:
    from datetime import UTC, datetime

    from gemini_failover.resilience.quota_window import day_quota_cooldown, seconds_to_daily_reset

    winter = datetime(2026, 12, 5, 7, 50, tzinfo=UTC).timestamp()  # 23:50 PST
    summer = datetime(2026, 7, 5, 6, 50, tzinfo=UTC).timestamp()  # 23:50 PDT
    assert seconds_to_daily_reset(winter) == 600.0
    assert seconds_to_daily_reset(summer) == 600.0
    assert day_quota_cooldown(winter, None, reprobe=900.0) == 600.0  # until the reset
    noon = datetime(2026, 12, 5, 20, 0, tzinfo=UTC).timestamp()  # 12:00 PST
    assert day_quota_cooldown(noon, None, reprobe=900.0) == 900.0  # re-probed before it
    assert day_quota_cooldown(noon, 42.0, reprobe=900.0) == 42.0  # RetryInfo is used
