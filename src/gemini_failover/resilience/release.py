"""Gradual release after a rate-limit cool-down: one probe first; on its success the
waiters are released at the rate the model has just shown it accepts; on another 429
they keep waiting. A pure policy over wall-clock times (the cool-downs' clock), driven
by the retry loop (``admit``) and the attempt bracket (``rate_limited``, ``succeeded``,
``failed``).

The release rate is AIMD over calls/s, TCP-like:

- the first probe's success starts pacing at ``step`` = max(``release_min_rate``,
  1 / Retry-After) calls/s (the model just accepted one call per cool-down);
- slow start: each success adds ``step`` (the rate grows exponentially in time);
- a 429 while pacing halves the rate (or sets it to 0.9 / Retry-After, just under the
  rate of the model's tokens, when lower): the rate the model accepts is learned from
  its first 429, so the calls that follow are paced, not sent until the next 429;
  the rate then holds for ``HOLD_SECONDS`` (no 429 while the quota's window turns),
  after which each success adds 2 % only (probing for a raised quota);
- ``ramp``: requests spilled onto a model that is not paced start a slow start there
  (from ``rate_limit.spill_start_rate``): a fallback's quota is found by ramping up to
  it, not by a burst that empties it at once;
- pacing ends when the rate reaches ``release_max_rate``.

Waiters poll ``admit``: callers add their own jitter to each wait, so the cool-down's
end is not one instant for every waiter.
"""

from __future__ import annotations

from dataclasses import dataclass

#: How often a waiter looks again while the probe is in flight (s), before jitter.
PROBE_POLL = 0.05
#: A probe that has not reported for this long (e.g. a stream) no longer blocks others.
PROBE_TIMEOUT = 30.0
#: Congestion avoidance: growth of the rate per success after a 429 while pacing.
AVOIDANCE_GAIN = 1.02
#: Floor of the release rate (calls/s).
MIN_RATE = 0.05
#: After a 429 while pacing, the rate holds this long before it probes upwards (s).
HOLD_SECONDS = 30.0
#: The learned rate: this share of 1 / Retry-After (the model's time to its next token).
UNDER_TOKEN_RATE = 0.9


@dataclass(slots=True)
class ReleaseGate:
    min_rate: float = 1.0
    max_rate: float = 1000.0
    cool_until: float = 0.0
    rate: float | None = None  # calls/s while pacing; None: not paced
    step: float = 1.0
    probe_pending: bool = False  # a cool-down ended (or is running) with no success since
    probe_started: float | None = None  # wall time the probe in flight was admitted
    slow_start: bool = True
    next_slot: float = 0.0
    hold_until: float = 0.0  # wall time until which the learned rate does not grow

    def rate_limited(self, until: float, retry_after: float | None) -> None:
        """A 429 (here or, through the state store, on another instance)."""
        self.cool_until = max(self.cool_until, until)
        if self.rate is not None and not self.probe_pending:
            shown = self.rate / 2  # the model has shown its rate
            if retry_after:
                shown = min(shown, UNDER_TOKEN_RATE / retry_after)
            self.rate = max(MIN_RATE, shown)
            self.slow_start = False
            self.hold_until = until + HOLD_SECONDS
        self.probe_pending = True
        self.probe_started = None
        shown = 1.0 / retry_after if retry_after else 0.0
        self.step = max(self.min_rate, shown)

    def ramp(self, now: float, start_rate: float) -> None:
        """Requests spill onto this model: if it is not paced, slow-start from
        ``start_rate`` calls/s."""
        if self.rate is None and not self.probe_pending and now >= self.cool_until:
            self.rate = self.step = start_rate
            self.slow_start = True
            self.next_slot = now

    def admit(self, now: float) -> float:
        """0: call the model now; else seconds to wait before asking again."""
        if now < self.cool_until:
            return self.cool_until - now
        if self.probe_pending:
            if self.probe_started is not None and now - self.probe_started < PROBE_TIMEOUT:
                return PROBE_POLL
            self.probe_started = now
            return 0.0
        if self.rate is None:
            return 0.0
        if now >= self.next_slot:
            self.next_slot = max(self.next_slot, now - 1.0 / self.rate) + 1.0 / self.rate
            return 0.0
        return self.next_slot - now

    def succeeded(self, now: float) -> None:
        if self.probe_pending:
            self.probe_pending = False
            self.probe_started = None
            if self.rate is None:
                self.rate, self.slow_start = self.step, True
            self.next_slot = now + 1.0 / self.rate
            return
        if self.rate is None:
            return
        if self.slow_start:
            self.rate += self.step
        elif now >= self.hold_until:
            self.rate *= AVOIDANCE_GAIN
        if self.rate >= self.max_rate:
            self.rate = None  # released: the model takes what comes

    def failed(self) -> None:
        """A failure that is not a 429: let another probe go."""
        self.probe_started = None

    @property
    def waiting_for_probe(self) -> bool:
        return self.probe_pending
