"""A retry budget: retries are at most ``ratio`` of recent requests, plus a floor.

Finagle's RetryBudget / gRPC's retry throttling idea: during an outage every request
fails, and per-request retry limits alone multiply upstream load by the attempt
count; a budget caps the extra load at ``ratio`` (20% by default) however bad it
gets, while ``min_per_second`` keeps a quiet server able to retry at all.

Written by hand: tenacity bounds one call's retries, not retries across calls, and
no maintained library offers this small thing on its own.
"""

from __future__ import annotations

from collections import deque

from gemini_failover.resilience.clock import Clock


class RetryBudget:
    def __init__(self, clock: Clock, *, ratio: float, min_per_second: float, window: float) -> None:
        self._clock = clock
        self._ratio = ratio
        self._floor = min_per_second * window
        self._window = window
        self._requests: deque[float] = deque()
        self._retries: deque[float] = deque()

    def _evict(self, now: float) -> None:
        horizon = now - self._window
        for q in (self._requests, self._retries):
            while q and q[0] < horizon:
                q.popleft()

    def record_request(self) -> None:
        self._requests.append(self._clock.monotonic())

    def try_spend(self) -> bool:
        """Take one retry from the budget; False when it is spent."""
        now = self._clock.monotonic()
        self._evict(now)
        allowed = self._floor + self._ratio * len(self._requests)
        if len(self._retries) + 1 > allowed:
            return False
        self._retries.append(now)
        return True
