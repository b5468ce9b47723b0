"""Outlier ejection, after Envoy's outlier detection: a model whose attempts (retries
included, so a flapping model that retries hide is still seen) fail
``consecutive_errors`` times in a row, or fail at least ``failure_percentage`` of at
least ``minimum_requests`` attempts over the last ``interval`` seconds, is ejected.

Ejecting opens the model's circuit breaker (breaker.py), which supplies the rest:
an ejection time that doubles on each repeat, half-open probes, and a sustained-health
gate before traffic returns, so a flapping model is not taken back per request. A pure
policy over the monotonic clock.
"""

from __future__ import annotations

from collections import deque

from gemini_failover.config import OutlierSettings
from gemini_failover.resilience.clock import Clock


class OutlierDetector:
    __slots__ = ("_bad", "_clock", "_consecutive", "_s", "_window")

    def __init__(self, settings: OutlierSettings, clock: Clock) -> None:
        self._s = settings
        self._clock = clock
        self._window: deque[tuple[float, bool]] = deque()
        self._bad = 0
        self._consecutive = 0

    def record(self, bad: bool) -> str | None:
        """One attempt's outcome; returns why to eject the model now, or None."""
        now = self._clock.monotonic()
        self._window.append((now, bad))
        self._bad += bad
        horizon = now - self._s.interval
        while self._window and self._window[0][0] < horizon:
            self._bad -= self._window.popleft()[1]
        self._consecutive = self._consecutive + 1 if bad else 0
        if self._consecutive >= self._s.consecutive_errors:
            reason = f"outlier: {self._consecutive} consecutive errors"
        else:
            total = len(self._window)
            share = self._bad / total
            if total < self._s.minimum_requests or share < self._s.failure_percentage:
                return None
            reason = f"outlier: {share:.0%} of {total} attempts failed"
        self.reset()
        return reason

    def reset(self) -> None:
        self._window.clear()
        self._bad = 0
        self._consecutive = 0
