"""The circuit breaker state machine, driven by a fake clock."""

from __future__ import annotations

from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gemini_failover.config import BreakerSettings
from gemini_failover.resilience.breaker import (
    BreakerSnapshot,
    BreakerState,
    CircuitBreaker,
    Outcome,
    Permit,
)
from gemini_failover.resilience.clock import FakeClock

FAST = BreakerSettings(
    failure_rate_threshold=0.5,
    window_seconds=10,
    minimum_throughput=4,
    consecutive_failures=3,
    slow_call_seconds=5,
    break_seconds=2,
    max_break_seconds=16,
    half_open_probes=2,
    required_successes=2,
    sustained_health_seconds=3,
    reset_trips_after=60,
)


def make(
    settings: BreakerSettings = FAST,
) -> tuple[CircuitBreaker, FakeClock, list[tuple[str, str]]]:
    clock = FakeClock()
    seen: list[tuple[str, str]] = []
    breaker = CircuitBreaker(
        "m", settings, clock, on_transition=lambda a, b: seen.append((a.state.label, b.state.label))
    )
    return breaker, clock, seen


# mypy keeps `breaker.state` narrowed across call(), which changes it out of mypy's sight,
# so a check after call() that contradicts one before it reads the state into an annotated
# local (`state: BreakerState = breaker.state`), which mypy types as any BreakerState again.
def call(breaker: CircuitBreaker, outcome: Outcome, latency: float = 0.1) -> bool:
    permit = breaker.allow()
    if permit is None:
        return False
    breaker.record(permit, outcome, latency)
    return True


def test_consecutive_failures_open_it() -> None:
    breaker, _, seen = make()
    for _ in range(2):
        call(breaker, Outcome.FAILURE)
    assert breaker.state is BreakerState.CLOSED
    call(breaker, Outcome.FAILURE)
    state: BreakerState = breaker.state  # see the note on call()
    assert state is BreakerState.OPEN
    assert seen == [("closed", "open")]
    assert breaker.allow() is None


def test_failure_rate_needs_minimum_throughput() -> None:
    breaker, _, _ = make(FAST.model_copy(update={"consecutive_failures": 100}))
    call(breaker, Outcome.FAILURE)
    call(breaker, Outcome.SUCCESS)
    call(breaker, Outcome.FAILURE)
    assert breaker.state is BreakerState.CLOSED  # 3 calls < minimum throughput 4
    call(breaker, Outcome.SUCCESS)
    assert breaker.state is BreakerState.CLOSED  # 2/4 = 50% but last call succeeded
    call(breaker, Outcome.FAILURE)
    state: BreakerState = breaker.state  # see the note on call()
    assert state is BreakerState.OPEN  # 3/5 = 60% >= 50%


def test_window_forgets_old_failures() -> None:
    relaxed = FAST.model_copy(update={"consecutive_failures": 100, "failure_rate_threshold": 0.6})
    breaker, clock, _ = make(relaxed)
    for _ in range(3):
        call(breaker, Outcome.FAILURE)
        call(breaker, Outcome.SUCCESS)
        call(breaker, Outcome.SUCCESS)
    assert breaker.failure_rate() == (1 / 3, 9)
    clock.advance(11)
    assert breaker.failure_rate() == (0.0, 0)
    call(breaker, Outcome.FAILURE)
    assert breaker.state is BreakerState.CLOSED


def test_slow_successes_count_as_bad() -> None:
    breaker, _, _ = make()
    for _ in range(3):
        call(breaker, Outcome.SUCCESS, latency=6.0)
    assert breaker.state is BreakerState.OPEN


def test_ignored_outcomes_do_not_count() -> None:
    breaker, _, _ = make()
    for _ in range(10):
        call(breaker, Outcome.IGNORED)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failure_rate() == (0.0, 0)


def test_half_open_admits_limited_probes_and_needs_sustained_health() -> None:
    breaker, clock, seen = make()
    for _ in range(3):
        call(breaker, Outcome.FAILURE)
    clock.advance(2)
    assert breaker.state is BreakerState.HALF_OPEN
    p1, p2 = breaker.allow(), breaker.allow()
    assert p1 is not None and p2 is not None and p1.probe
    assert breaker.allow() is None  # only two probes at once
    breaker.record(p1, Outcome.SUCCESS)
    breaker.record(p2, Outcome.SUCCESS)
    # two successes, but not yet healthy for 3 s: stays half-open
    assert breaker.state is BreakerState.HALF_OPEN
    clock.advance(3)
    assert call(breaker, Outcome.SUCCESS)
    state: BreakerState = breaker.state  # see the note on call()
    assert state is BreakerState.CLOSED
    assert seen == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_retrips_double_the_break_up_to_the_cap() -> None:
    breaker, clock, _ = make()
    for _ in range(3):
        call(breaker, Outcome.FAILURE)
    durations = []
    for _ in range(5):
        snap = breaker.snapshot
        durations.append(snap.open_until - snap.since)
        clock.advance(snap.open_until - clock.time())
        assert breaker.state is BreakerState.HALF_OPEN
        call(breaker, Outcome.FAILURE)  # probe fails: re-trip
        state: BreakerState = breaker.state  # see the note on call()
        assert state is BreakerState.OPEN
    assert durations == [2, 4, 8, 16, 16]


def test_trips_reset_after_a_long_healthy_spell() -> None:
    breaker, clock, _ = make()
    for _ in range(3):
        call(breaker, Outcome.FAILURE)
    clock.advance(2)
    for _ in range(3):
        call(breaker, Outcome.SUCCESS)
        clock.advance(2)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot.trips == 1
    clock.advance(61)
    call(breaker, Outcome.SUCCESS)
    assert breaker.snapshot.trips == 0


def test_outcome_of_a_call_started_before_the_trip_is_ignored() -> None:
    breaker, clock, _ = make()
    early = breaker.allow()
    assert early is not None
    for _ in range(3):
        call(breaker, Outcome.FAILURE)
    clock.advance(2)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record(early, Outcome.FAILURE)  # stale: must not re-trip the half-open breaker
    assert breaker.state is BreakerState.HALF_OPEN


def test_apply_adopts_only_newer_epochs() -> None:
    breaker, clock, _ = make()
    newer = BreakerSnapshot(
        BreakerState.OPEN, epoch=5, since=clock.time(), open_until=clock.time() + 9
    )
    assert breaker.apply(newer)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.apply(BreakerSnapshot(BreakerState.CLOSED, epoch=5))
    assert not breaker.apply(BreakerSnapshot(BreakerState.CLOSED, epoch=3))
    assert breaker.snapshot.epoch == 5


def test_remote_counts_feed_the_rate() -> None:
    breaker, _, _ = make(FAST.model_copy(update={"consecutive_failures": 100}))
    breaker.set_remote_counts(bad=3, total=3)
    call(breaker, Outcome.FAILURE)
    assert breaker.state is BreakerState.OPEN  # 4 bad of 4 calls across instances


class BreakerMachine(RuleBasedStateMachine):
    """Invariants under any interleaving of calls, outcomes and time."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.transitions: list[tuple[BreakerSnapshot, BreakerSnapshot]] = []
        self.breaker = CircuitBreaker(
            "m", FAST, self.clock, on_transition=lambda a, b: self.transitions.append((a, b))
        )
        self.permits: list[Permit] = []

    @rule()
    def acquire(self) -> None:
        permit = self.breaker.allow()
        if permit is not None:
            self.permits.append(permit)

    @precondition(lambda self: self.permits)
    @rule(ok=st.booleans(), latency=st.floats(0, 10), which=st.integers(0, 100))
    def finish(self, ok: bool, latency: float, which: int) -> None:
        permit = self.permits.pop(which % len(self.permits))
        self.breaker.record(permit, Outcome.SUCCESS if ok else Outcome.FAILURE, latency)

    @rule(seconds=st.floats(0, 20))
    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def epochs_increase_by_one_per_transition(self) -> None:
        for old, new in self.transitions:
            assert new.epoch == old.epoch + 1
            assert old.state != new.state

    @invariant()
    def legal_transitions_only(self) -> None:
        legal = {
            (BreakerState.CLOSED, BreakerState.OPEN),
            (BreakerState.OPEN, BreakerState.HALF_OPEN),
            (BreakerState.HALF_OPEN, BreakerState.OPEN),
            (BreakerState.HALF_OPEN, BreakerState.CLOSED),
        }
        for old, new in self.transitions:
            assert (old.state, new.state) in legal

    @invariant()
    def closing_needs_sustained_health(self) -> None:
        for old, new in self.transitions:
            if new.state is BreakerState.CLOSED:
                assert new.since - old.since >= FAST.sustained_health_seconds

    @invariant()
    def break_is_bounded(self) -> None:
        snap = self.breaker.snapshot
        if snap.state is BreakerState.OPEN:
            assert FAST.break_seconds <= snap.open_until - snap.since <= FAST.max_break_seconds

    @invariant()
    def probes_bounded_when_half_open(self) -> None:
        if self.breaker.snapshot.state is BreakerState.HALF_OPEN:
            probes = [p for p in self.permits if p.probe and p.epoch == self.breaker.snapshot.epoch]
            assert len(probes) <= FAST.half_open_probes


BreakerMachine.TestCase.settings = hsettings(
    max_examples=150, stateful_step_count=40, deadline=None
)
TestBreakerMachine = BreakerMachine.TestCase
