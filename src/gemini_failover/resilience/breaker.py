"""A circuit breaker per model: a pure state machine over an injected clock.

closed --(failure rate over the window, or N consecutive failures)--> open
open --(break duration elapsed)--> half_open: admits ``half_open_probes`` calls at once
half_open --(any probe fails)--> open, with the break doubled (capped): anti-flapping
half_open --(``required_successes`` probes succeeded AND ``sustained_health_seconds``
            passed since it went half-open)--> closed

Written by hand because the Python breaker libraries (pybreaker, aiobreaker,
circuitbreaker) have neither a failure-rate window with minimum throughput, nor slow
calls, nor a sustained-health gate on closing, nor an externally ordered snapshot
(``epoch``) that lets several processes share one breaker through Redis.

Every transition produces a new :class:`BreakerSnapshot` with a higher epoch and is
reported to ``on_transition``; :meth:`CircuitBreaker.apply` adopts a newer snapshot
from another instance. Times in snapshots are wall-clock (shared across hosts);
windows and latencies use the monotonic clock.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from gemini_failover.config import BreakerSettings
from gemini_failover.resilience.clock import Clock


class BreakerState(enum.IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    state: BreakerState = BreakerState.CLOSED
    epoch: int = 0
    since: float = 0.0  # wall time the state was entered
    open_until: float = 0.0  # wall time half-open probes may start (when open)
    trips: int = 0  # consecutive trips without a sustained recovery
    reason: str = ""


class Outcome(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    IGNORED = "ignored"  # neither: e.g. a 400 or a cancelled call


@dataclass(slots=True)
class Permit:
    """Returned by :meth:`CircuitBreaker.allow`; give it back to :meth:`record`."""

    probe: bool
    epoch: int


Transition = Callable[[BreakerSnapshot, BreakerSnapshot], None]


class CircuitBreaker:
    def __init__(
        self,
        model: str,
        settings: BreakerSettings,
        clock: Clock,
        on_transition: Transition | None = None,
    ) -> None:
        self.model = model
        self._s = settings
        self._clock = clock
        self._on_transition = on_transition
        self._snap = BreakerSnapshot(since=clock.time())
        # (monotonic time, failed or slow) for the closed-state window
        self._window: deque[tuple[float, bool]] = deque()
        self._bad_in_window = 0
        self._consecutive = 0
        self._probes_in_flight = 0
        self._probe_successes = 0
        #: failure counts reported by other instances (shared window): (bad, total)
        self._remote_counts = (0, 0)

    # -- reading ----------------------------------------------------------------

    @property
    def snapshot(self) -> BreakerSnapshot:
        return self._snap

    @property
    def state(self) -> BreakerState:
        """The current state, moving open -> half-open if the break is over."""
        snap = self._snap
        if snap.state is BreakerState.OPEN and self._clock.time() >= snap.open_until:
            self._transition(BreakerState.HALF_OPEN, "break elapsed")
        return self._snap.state

    def failure_rate(self) -> tuple[float, int]:
        """(rate of bad calls, calls) over the window, local plus remote counts."""
        self._evict(self._clock.monotonic())
        remote_bad, remote_total = self._remote_counts
        total = len(self._window) + remote_total
        bad = self._bad_in_window + remote_bad
        return (bad / total if total else 0.0), total

    # -- the protocol -------------------------------------------------------------

    def allow(self) -> Permit | None:
        """A permit to call the model, or None when the breaker rejects the call."""
        state = self.state
        if state is BreakerState.CLOSED:
            return Permit(probe=False, epoch=self._snap.epoch)
        if state is BreakerState.HALF_OPEN and self._probes_in_flight < self._s.half_open_probes:
            self._probes_in_flight += 1
            return Permit(probe=True, epoch=self._snap.epoch)
        return None

    def release(self, permit: Permit) -> None:
        """Give back a permit whose call never happened or whose outcome is ignored."""
        self.record(permit, Outcome.IGNORED)

    def record(self, permit: Permit, outcome: Outcome, latency: float = 0.0) -> None:
        if permit.probe and permit.epoch == self._snap.epoch:
            self._probes_in_flight = max(0, self._probes_in_flight - 1)
        if outcome is Outcome.IGNORED:
            return
        bad = outcome is Outcome.FAILURE or latency >= self._s.slow_call_seconds
        snap = self._snap
        if permit.epoch != snap.epoch and snap.state is not BreakerState.CLOSED:
            # The call started under an older state (e.g. before the breaker opened):
            # its outcome says nothing about the model's health now.
            return
        if snap.state is BreakerState.HALF_OPEN and permit.probe:
            self._record_probe(bad)
        elif snap.state is BreakerState.CLOSED:
            self._record_closed(bad)

    def _record_probe(self, bad: bool) -> None:
        if bad:
            self._trip("probe failed")
            return
        self._probe_successes += 1
        healthy_for = self._clock.time() - self._snap.since
        if (
            self._probe_successes >= self._s.required_successes
            and healthy_for >= self._s.sustained_health_seconds
        ):
            self._transition(BreakerState.CLOSED, "sustained health")

    def _record_closed(self, bad: bool) -> None:
        now = self._clock.monotonic()
        self._window.append((now, bad))
        self._bad_in_window += bad
        self._evict(now)
        self._consecutive = self._consecutive + 1 if bad else 0
        if not bad:
            self._maybe_forgive_trips()
            return
        if self._consecutive >= self._s.consecutive_failures:
            self._trip(f"{self._consecutive} consecutive failures")
            return
        rate, total = self.failure_rate()
        if total >= self._s.minimum_throughput and rate >= self._s.failure_rate_threshold:
            self._trip(f"failure rate {rate:.0%} over {total} calls")

    def eject(self, reason: str) -> None:
        """Open now (outlier ejection, outlier.py), if closed: the break, probes and
        sustained-health gate then work as for a trip."""
        if self._snap.state is BreakerState.CLOSED:
            self._trip(reason)

    def _maybe_forgive_trips(self) -> None:
        snap = self._snap
        if snap.trips and self._clock.time() - snap.since >= self._s.reset_trips_after:
            self._snap = replace(snap, trips=0)

    def _evict(self, now: float) -> None:
        horizon = now - self._s.window_seconds
        window = self._window
        while window and window[0][0] < horizon:
            _, bad = window.popleft()
            self._bad_in_window -= bad

    # -- transitions ---------------------------------------------------------------

    def _trip(self, reason: str) -> None:
        trips = self._snap.trips + 1
        duration = min(self._s.break_seconds * 2 ** (trips - 1), self._s.max_break_seconds)
        self._transition(BreakerState.OPEN, reason, trips=trips, duration=duration)

    def _transition(
        self, to: BreakerState, reason: str, *, trips: int | None = None, duration: float = 0.0
    ) -> None:
        old = self._snap
        now = self._clock.time()
        new = BreakerSnapshot(
            state=to,
            epoch=old.epoch + 1,
            since=now,
            open_until=now + duration if to is BreakerState.OPEN else 0.0,
            trips=old.trips if trips is None else trips,
            reason=reason,
        )
        self._enter(new)
        if self._on_transition is not None:
            self._on_transition(old, new)

    def _enter(self, new: BreakerSnapshot) -> None:
        self._snap = new
        self._probe_successes = 0
        self._consecutive = 0
        self._probes_in_flight = 0  # permits of the previous state no longer count
        if new.state is BreakerState.CLOSED:
            self._window.clear()
            self._bad_in_window = 0

    def apply(self, snapshot: BreakerSnapshot) -> bool:
        """Adopt a snapshot from another instance if it is newer. Returns whether it
        was applied (the caller reports the transition)."""
        if snapshot.epoch <= self._snap.epoch:
            return False
        self._enter(snapshot)
        return True

    def set_remote_counts(self, bad: int, total: int) -> None:
        """Failure counts other instances saw in the current window (shared state)."""
        self._remote_counts = (max(0, bad), max(0, total))
