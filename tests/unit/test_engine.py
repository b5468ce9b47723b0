"""The engine's pieces on their own, with a fake clock and no backend: the Chain
(local and remote state changes, the active model), the error table driving the
actions, and the attempt bracket."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from gemini_failover.config import Settings, load_settings
from gemini_failover.resilience import events as ev
from gemini_failover.resilience.attempt import AttemptRunner
from gemini_failover.resilience.breaker import BreakerSnapshot, BreakerState
from gemini_failover.resilience.budget import RetryBudget
from gemini_failover.resilience.chain import Chain
from gemini_failover.resilience.clock import FakeClock
from gemini_failover.resilience.errors import (
    POLICY,
    Category,
    Classification,
    Then,
    Upstream,
    UpstreamFailure,
    attach,
    classify,
)
from gemini_failover.resilience.request import BreakerRejected, GiveUp, RequestContext
from gemini_failover.resilience.results import Provenance, RequestFailed
from gemini_failover.resilience.retry import Retrier
from gemini_failover.resilience.status import ModelStatus
from gemini_failover.state import CooldownKind, MemoryStateStore


class Recorder:
    """A state store that remembers what the chain published."""

    def __init__(self) -> None:
        self.breakers: list[tuple[str, str]] = []
        self.cooldowns: list[tuple[str, CooldownKind, float]] = []
        self.outcomes: list[tuple[str, bool]] = []

    async def start(self, sink: Any, models: list[str]) -> None:
        return None

    def publish_breaker(self, model: str, snapshot: BreakerSnapshot) -> None:
        self.breakers.append((model, snapshot.state.label))

    def publish_cooldown(self, model: str, kind: CooldownKind, until: float) -> None:
        self.cooldowns.append((model, kind, until))

    def record_outcome(self, model: str, bad: bool) -> None:
        self.outcomes.append((model, bad))

    def health(self) -> Any:
        return MemoryStateStore().health()

    async def aclose(self) -> None:
        return None


class Engine:
    def __init__(self, **overrides: Any) -> None:
        self.settings: Settings = load_settings(api_key="k", models=["p", "f"], **overrides)
        self.clock = FakeClock()
        self.events: list[ev.Event] = []
        bus = ev.EventBus()
        bus.subscribe(self.events.append)
        self.store = Recorder()
        self.chain = Chain(
            self.settings.models,
            settings=self.settings,
            clock=self.clock,
            events=bus,
            store=self.store,
        )
        self.runner = AttemptRunner(self.chain, self.settings, self.clock, bus)
        self.retrier = Retrier(
            self.runner,
            settings=self.settings,
            clock=self.clock,
            events=bus,
            budget=RetryBudget(self.clock, ratio=1.0, min_per_second=100.0, window=10.0),
            rng=random.Random(0),
        )

    def request(self) -> RequestContext:
        return RequestContext("r1", "generate", self.clock.monotonic() + 30, Provenance("r1"))

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def upstream(exc: gexc.GoogleAPICallError, status: str, **fields: Any) -> BaseException:
    attach(exc, Upstream(status, **fields))
    return exc


def failure(category: Category, retry_after: float | None = None) -> UpstreamFailure:
    raised = {
        Category.TRANSIENT: lambda: upstream(gexc.ServiceUnavailable("down"), "503"),
        Category.RATE_LIMITED: lambda: upstream(
            gexc.TooManyRequests("slow down"), "429", retry_after=retry_after
        ),
        Category.QUOTA_EXHAUSTED: lambda: upstream(
            gexc.TooManyRequests("daily"), "429", retry_after=retry_after, quota_scope="day"
        ),
        Category.AUTH: lambda: upstream(gexc.Unauthenticated("bad key."), "401"),
        Category.BAD_REQUEST: lambda: upstream(gexc.BadRequest("no such field"), "400"),
        Category.MODEL_UNAVAILABLE: lambda: upstream(gexc.NotFound("gone"), "404"),
    }[category]()
    return UpstreamFailure(classify(raised))


# -- the Chain ---------------------------------------------------------------------------


def test_a_remote_breaker_snapshot_opens_the_breaker_and_moves_the_active_model() -> None:
    e = Engine()
    opened = BreakerSnapshot(BreakerState.OPEN, epoch=5, open_until=e.clock.time() + 30)
    e.chain.apply_breaker("p", opened)
    assert e.chain[0].breaker.snapshot.state is BreakerState.OPEN
    (transition,) = e.of(ev.BreakerTransition)
    assert (transition.model, transition.to_state, transition.remote) == ("p", "open", True)
    assert e.chain.active == "f"
    assert e.of(ev.ActiveModelChanged) == [ev.ActiveModelChanged("f", "p")]
    assert e.store.breakers == []  # another instance's change is not published back


def test_a_stale_remote_snapshot_changes_nothing() -> None:
    e = Engine()
    e.chain.apply_breaker("p", BreakerSnapshot(BreakerState.OPEN, epoch=5))
    e.chain.apply_breaker("p", BreakerSnapshot(BreakerState.CLOSED, epoch=4))
    assert e.chain[0].breaker.snapshot.state is BreakerState.OPEN
    assert len(e.of(ev.BreakerTransition)) == 1


def test_remote_state_for_a_model_of_another_chain_is_ignored() -> None:
    e = Engine()
    e.chain.apply_breaker("embed-x", BreakerSnapshot(BreakerState.OPEN, epoch=5))
    e.chain.apply_cooldown("embed-x", CooldownKind.QUOTA_EXHAUSTED, e.clock.time() + 60)
    e.chain.apply_window("embed-x", 3, 4)
    assert e.events == []


def test_a_remote_cooldown_only_ever_extends() -> None:
    e = Engine()
    later, earlier = e.clock.time() + 60, e.clock.time() + 30
    e.chain.apply_cooldown("p", CooldownKind.QUOTA_EXHAUSTED, later)
    e.chain.apply_cooldown("p", CooldownKind.QUOTA_EXHAUSTED, earlier)
    assert e.chain[0].cooldowns[CooldownKind.QUOTA_EXHAUSTED] == later
    assert e.chain.active == "f"
    assert e.store.cooldowns == []  # not published back


@pytest.mark.parametrize(
    ("category", "retry_after", "kind", "seconds"),
    [
        (Category.RATE_LIMITED, 7.0, CooldownKind.RATE_LIMITED, 7.0),
        # per-day: until midnight Pacific, at most the re-probe interval (900 s)
        (Category.QUOTA_EXHAUSTED, None, CooldownKind.QUOTA_EXHAUSTED, 900.0),
        (Category.MODEL_UNAVAILABLE, None, CooldownKind.UNAVAILABLE, 300.0),
    ],
)
def test_the_error_table_sets_the_cooldown(
    category: Category, retry_after: float | None, kind: CooldownKind, seconds: float
) -> None:
    e = Engine()
    e.chain.failed(e.chain[0], failure(category, retry_after).classification)
    until = e.clock.time() + seconds
    assert e.chain[0].cooldowns == {kind: until}
    assert e.store.cooldowns == [("p", kind, until)]


def test_a_rate_limit_without_retry_after_cools_down_for_the_configured_default() -> None:
    e = Engine(rate_limit={"default_retry_after": 4.0})
    e.chain.failed(e.chain[0], failure(Category.RATE_LIMITED).classification)
    assert e.chain[0].cooldown_left(CooldownKind.RATE_LIMITED, e.clock.time()) == 4.0
    assert e.chain.active == "p"  # a rate-limited model stays the active one


def test_only_alerting_rows_alert_the_operator() -> None:
    e = Engine()
    e.chain.failed(e.chain[0], failure(Category.BAD_REQUEST).classification)
    assert e.of(ev.AuthFailure) == []
    e.chain.failed(e.chain[0], failure(Category.AUTH).classification)
    assert [a.model for a in e.of(ev.AuthFailure)] == ["p"]


def test_status_reports_typed_rows_with_the_json_shape_of_the_tools() -> None:
    e = Engine()
    e.chain.apply_cooldown("p", CooldownKind.UNAVAILABLE, e.clock.time() + 12)
    primary, fallback = e.chain.status(e.chain.active)
    assert isinstance(primary, ModelStatus)
    assert not primary.usable and fallback.usable and fallback.active
    row = primary.as_dict()
    assert row["unavailable_for_s"] == 12.0
    assert row["breaker"] == {"state": "closed", "reason": "", "trips": 0, "open_for_s": 0.0}
    assert list(row) == [
        "model",
        "role",
        "active",
        "breaker",
        "error_rate",
        "calls_in_window",
        "rate_limited_for_s",
        "quota_exhausted_for_s",
        "unavailable_for_s",
        "profile",
        "endpoint",
        "endpoint_down_for_s",
    ]


# -- the error table ---------------------------------------------------------------------


def test_every_category_has_a_row() -> None:
    assert set(POLICY) == set(Category)


def test_request_failed_categories_compare_equal_to_their_strings() -> None:
    exc = RequestFailed(Category.NO_CAPABLE_MODEL, "nothing fits")
    assert exc.category == "no_capable_model"
    assert exc.category is Category.NO_CAPABLE_MODEL


def test_a_classified_failure_is_not_classified_again() -> None:
    f = failure(Category.TRANSIENT)
    assert classify(f) is f.classification


@pytest.mark.parametrize("category", [c for c, a in POLICY.items() if a.then is Then.FAIL_OVER])
def test_fail_over_rows_give_up_on_the_model(category: Category) -> None:
    e = Engine()
    f = UpstreamFailure(Classification(category, "503", "down"))
    with pytest.raises(GiveUp) as info:
        e.retrier.conclude(e.request(), e.chain[0], f)
    assert info.value.reason == category.value


def test_a_wait_row_ends_the_request_with_a_retry_after_and_no_failover() -> None:
    e = Engine()
    with pytest.raises(RequestFailed) as info:
        e.retrier.conclude(e.request(), e.chain[0], failure(Category.RATE_LIMITED, 9.0))
    assert info.value.category is Category.RATE_LIMITED
    assert info.value.retry_after == 9.0
    assert [(s.model, s.reason) for s in e.of(ev.RequestShed)] == [("p", "rate_limited")]


def test_a_fail_row_ends_the_request_with_the_rows_message() -> None:
    e = Engine()
    with pytest.raises(RequestFailed) as info:
        e.retrier.conclude(e.request(), e.chain[0], failure(Category.AUTH))
    assert info.value.category is Category.AUTH
    assert info.value.message == (
        "Gemini rejected the credentials (401) for p: bad key. "
        "Check the endpoint's key or credentials (GEMINI_API_KEY, or its entry in "
        "GEMINI_FAILOVER_ENDPOINTS); the operator has been alerted."
    )
    with pytest.raises(RequestFailed) as info:
        e.retrier.conclude(e.request(), e.chain[0], failure(Category.BAD_REQUEST))
    assert info.value.message == "p rejected the request: no such field"


# -- the attempt bracket -----------------------------------------------------------------


async def test_a_successful_attempt_is_recorded_and_releases_its_slot() -> None:
    e = Engine(concurrency={"per_model": 1})
    req, state = e.request(), e.chain[0]
    async with e.runner.attempt(req, state) as attempt:
        assert state.slots.locked()
        assert attempt.timeout == e.settings.attempt_timeout
        e.clock.advance(2.0)
    assert not state.slots.locked()
    assert e.store.outcomes == [("p", False)]
    (finished,) = e.of(ev.AttemptFinished)
    assert (finished.status, finished.latency) == ("ok", 2.0)
    assert [a.outcome for a in req.provenance.attempts] == ["ok"]


async def test_an_upstream_failure_leaves_the_bracket_classified_and_recorded() -> None:
    e = Engine()
    req, state = e.request(), e.chain[0]
    raised = upstream(gexc.ServiceUnavailable("down"), "503")
    with pytest.raises(UpstreamFailure) as info:
        async with e.runner.attempt(req, state):
            raise raised
    assert info.value.classification.category is Category.TRANSIENT
    assert info.value.__cause__ is raised
    assert e.store.outcomes == [("p", True)]  # counts against the breaker
    assert state.breaker.failure_rate() == (1.0, 1)
    assert not state.slots.locked()


async def test_a_cancelled_attempt_says_nothing_of_the_model() -> None:
    e = Engine()
    state = e.chain[0]
    with pytest.raises(asyncio.CancelledError):
        async with e.runner.attempt(e.request(), state):
            raise asyncio.CancelledError
    assert e.store.outcomes == []
    assert e.of(ev.AttemptFinished) == []
    assert state.breaker.failure_rate() == (0.0, 0)
    assert not state.slots.locked()


async def test_an_open_breaker_rejects_the_attempt_before_it_takes_a_slot() -> None:
    e = Engine()
    state = e.chain[0]
    e.chain.apply_breaker("p", BreakerSnapshot(BreakerState.OPEN, epoch=1, open_until=2e9))
    with pytest.raises(BreakerRejected):
        async with e.runner.attempt(e.request(), state):
            pytest.fail("the body must not run")
    assert not state.slots.locked()


async def test_a_passed_deadline_fails_the_attempt_as_a_timeout() -> None:
    e = Engine()
    req = e.request()
    e.clock.advance(31)
    with pytest.raises(RequestFailed) as info:
        async with e.runner.attempt(req, e.chain[0]):
            pytest.fail("the body must not run")
    assert info.value.category is Category.TIMEOUT
