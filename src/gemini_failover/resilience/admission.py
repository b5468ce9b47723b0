"""A per-model adaptive admission limit (AIMD): how many calls may be in flight on one
model. It replaces a fixed cap as the throttle of a healthy model: it grows while the
model answers and the limit is what holds calls back, and shrinks on the model's own
overload signals, so a fallback that requests spill onto gets what it can serve.

- slow start: the limit starts at ``per_model`` (low) while the model's health is
  unproven, at start-up and again each time it is ejected (its breaker opens: when it
  comes back it ramps up again, Envoy's slow start). A burst that arrives at once on a
  model of unknown health is not all sent before the first outcome is known: a
  flapping model is ejected after its first few failures, with only the first slots'
  worth of calls spent on it;
- additive increase: +1 for each success while the limit is saturated (every slot
  taken, or calls queued), up to ``max_per_model`` (the limit doubles per round trip
  while calls queue, so a healthy model is not throttled for long);
- multiplicative decrease: x ``decrease_factor`` on a 429 or a call slower than the
  breaker's ``slow_call_seconds``, down to ``min_per_model``; once per burst: a call
  admitted before the last decrease does not decrease it again (TCP's once per RTT).

Written by hand: the limiter libraries on PyPI (aiolimiter, asyncio-throttle) are rate
limiters with a fixed rate, not concurrency limits that adapt to a signal. The queue
is FIFO (asyncio.Semaphore's shape: ``locked``, ``acquire``, ``release``).
"""

from __future__ import annotations

import asyncio
from collections import deque

from gemini_failover.config import ConcurrencySettings


class AdaptiveLimit:
    __slots__ = (
        "_factor",
        "_max",
        "_min",
        "_start",
        "_waiters",
        "epoch",
        "in_flight",
        "limit",
        "shed",
    )

    def __init__(self, settings: ConcurrencySettings) -> None:
        self._min = float(settings.min_per_model)
        self._max = float(max(settings.max_per_model, settings.min_per_model))
        self._factor = settings.decrease_factor
        self._start = min(self._max, max(self._min, float(settings.per_model)))
        self.limit = self._start
        self.in_flight = 0
        self.epoch = 0  # bumped by every decrease
        self.shed = 0  # requests refused a slot (queue full or deadline), for metrics
        self._waiters: deque[asyncio.Future[None]] = deque()

    # -- admission (asyncio.Semaphore's interface) -----------------------------------

    def locked(self) -> bool:
        return self.in_flight >= int(self.limit) or bool(self._waiters)

    async def acquire(self) -> None:
        if not self.locked():
            self.in_flight += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled():
                self.release()  # granted as we were cancelled: hand the slot on
            else:
                self._waiters.remove(future)
            raise

    def release(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < int(self.limit):
            future = self._waiters.popleft()
            if not future.done():
                self.in_flight += 1
                future.set_result(None)

    # -- the model's signals ------------------------------------------------------------

    def succeeded(self) -> None:
        """A call succeeded (call before ``release``): additive increase if saturated."""
        if self.in_flight >= int(self.limit) or self._waiters:
            self.limit = min(self._max, self.limit + 1.0)
            self._wake()

    def overloaded(self, admitted_epoch: int) -> None:
        """A 429 or a slow call, admitted at ``admitted_epoch``: multiplicative decrease,
        once per burst."""
        if admitted_epoch < self.epoch:
            return
        self.limit = max(self._min, self.limit * self._factor)
        self.epoch += 1

    def restart(self) -> None:
        """The model was ejected (its breaker opened): when it takes traffic again, it
        slow-starts from the starting limit (never raised by this)."""
        self.limit = min(self.limit, self._start)
