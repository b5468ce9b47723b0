"""Retry budget and the Retry-After-aware backoff."""

from __future__ import annotations

from google.api_core import exceptions as gexc
from tenacity import AsyncRetrying, RetryCallState

from gemini_failover.resilience.backoff import wait_retry_after
from gemini_failover.resilience.budget import RetryBudget
from gemini_failover.resilience.clock import FakeClock
from gemini_failover.resilience.errors import Upstream, attach


def test_budget_caps_retries_at_a_fraction_of_requests() -> None:
    clock = FakeClock()
    budget = RetryBudget(clock, ratio=0.2, min_per_second=0.0, window=10)
    for _ in range(100):
        budget.record_request()
    granted = sum(budget.try_spend() for _ in range(100))
    assert granted == 20


def test_budget_floor_allows_retries_when_quiet() -> None:
    clock = FakeClock()
    budget = RetryBudget(clock, ratio=0.2, min_per_second=1.0, window=10)
    assert sum(budget.try_spend() for _ in range(50)) == 10


def test_budget_refills_as_the_window_moves() -> None:
    clock = FakeClock()
    budget = RetryBudget(clock, ratio=0.0, min_per_second=0.5, window=10)
    assert sum(budget.try_spend() for _ in range(10)) == 5
    clock.advance(10.5)
    assert budget.try_spend()


def _state(attempt: int, exc: BaseException) -> RetryCallState:
    rs = RetryCallState(AsyncRetrying(), None, (), {})
    rs.attempt_number = attempt
    rs.set_exception((type(exc), exc, None))
    return rs


def test_backoff_is_jittered_and_capped() -> None:
    wait = wait_retry_after(initial=0.2, maximum=5.0, default_retry_after=1.0)
    exc = gexc.ServiceUnavailable("x")
    waits = [wait(_state(n, exc)) for n in range(1, 12) for _ in range(20)]
    assert all(0 <= w <= 5.0 for w in waits)
    assert len(set(waits)) > 100  # jittered, not a fixed schedule


def test_backoff_honours_retry_after_as_a_floor() -> None:
    wait = wait_retry_after(initial=0.2, maximum=5.0, default_retry_after=1.0)
    exc = gexc.TooManyRequests("slow down")
    attach(exc, Upstream("429", retry_after=12.0, quota_scope="minute"))
    assert all(wait(_state(1, exc)) >= 12.0 for _ in range(50))
    bare = gexc.TooManyRequests("slow down")
    assert all(wait(_state(1, bare)) >= 1.0 for _ in range(50))
