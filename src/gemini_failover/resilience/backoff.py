"""Waits between attempts: tenacity's full-jitter exponential, floored by Retry-After.

The wait is a tenacity wait strategy, so it composes like tenacity's own: the
jittered exponential (``wait_random_exponential``, AWS's "full jitter") spreads
retries of many clients, and the server's Retry-After / RetryInfo.retryDelay, when
the failure carries one, is a floor: we never come back earlier than asked.
"""

from __future__ import annotations

from tenacity import RetryCallState, wait_random_exponential
from tenacity.wait import wait_base

from gemini_failover.resilience.errors import Then, classify


class wait_retry_after(wait_base):
    """Full-jitter exponential backoff, but never less than the server asked for."""

    def __init__(self, initial: float, maximum: float, default_retry_after: float) -> None:
        self._jitter = wait_random_exponential(multiplier=initial, max=maximum)
        self._default_retry_after = default_retry_after

    def __call__(self, retry_state: RetryCallState) -> float:
        wait = self._jitter(retry_state)
        outcome = retry_state.outcome
        if outcome is not None and outcome.failed:
            exc = outcome.exception()
            if exc is not None:
                c = classify(exc)
                if c.retry_after is not None:
                    return max(wait, c.retry_after)
                if c.action.then is Then.WAIT:  # asked to back off, without saying how long
                    return max(wait, self._default_retry_after)
        return wait
