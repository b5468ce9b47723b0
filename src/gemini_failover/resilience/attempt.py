"""One attempt on one model, as one bracket shared by unary calls and streams::

    async with runner.attempt(req, state) as attempt:
        value = await backend.generate(state.name, request, timeout=attempt.timeout)

On entry: the deadline, a breaker permit and a slot of the model's adaptive admission
limit (admission.py; shedding when too many requests already wait for the model); a
request that waited for its slot while the model went into a rate-limit cool-down
leaves with :class:`CooledDown` instead of calling it. On exit: the outcome recorded
(breaker, admission limit, release gate, state store, provenance, AttemptFinished) and
the slot released. An upstream failure
leaves the bracket classified, as an :class:`UpstreamFailure`; a cancellation or a
bug gives the permit back unrecorded (it says nothing of the model) and propagates.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Literal, NoReturn

from gemini_failover.config import Settings
from gemini_failover.resilience import events as ev
from gemini_failover.resilience.breaker import BreakerState, Outcome, Permit
from gemini_failover.resilience.chain import Chain
from gemini_failover.resilience.clock import Clock
from gemini_failover.resilience.errors import UPSTREAM_ERRORS, Category, UpstreamFailure, classify
from gemini_failover.resilience.model import ModelState
from gemini_failover.resilience.request import BreakerRejected, GiveUp, RequestContext
from gemini_failover.resilience.results import AttemptRecord, RequestFailed
from gemini_failover.state import CooldownKind

ShedReason = Literal["rate_limited", "overloaded", "deadline"]


class CooledDown(GiveUp):
    """The model went into a rate-limit cool-down while this request waited for a slot:
    the retry loop waits it out (or moves on); a stream moves on to the next model."""

    def __init__(self) -> None:
        super().__init__("rate_limited")


class AttemptRunner:
    """Admission and outcome recording for the attempts on one chain's models."""

    def __init__(self, chain: Chain, settings: Settings, clock: Clock, events: ev.EventBus) -> None:
        self.chain = chain
        self.settings = settings
        self.clock = clock
        self.events = events

    def attempt(self, req: RequestContext, state: ModelState) -> Attempt:
        return Attempt(self, req, state)

    def remaining(self, req: RequestContext) -> float:
        return req.deadline - self.clock.monotonic()

    def deadline_passed(self) -> RequestFailed:
        return RequestFailed(
            Category.TIMEOUT, f"deadline exceeded ({self.settings.total_timeout:g} s)"
        )

    def shed(
        self,
        req: RequestContext,
        state: ModelState,
        reason: ShedReason,
        retry_after: float | None,
    ) -> NoReturn:
        """End the request without calling the model: ``reason`` is "rate_limited",
        "overloaded" or "deadline"."""
        self.events.publish(ev.RequestShed(req.id, state.name, reason, retry_after))
        if reason == "rate_limited":
            message = f"{state.name} is rate limited; retry after {retry_after or 1:.0f} s"
            raise RequestFailed(Category.RATE_LIMITED, message, retry_after=retry_after)
        if reason == "overloaded":
            raise RequestFailed(
                Category.OVERLOADED,
                f"{state.name} has {self.settings.concurrency.max_waiting} requests waiting; "
                "retry shortly",
                retry_after=retry_after,
            )
        raise RequestFailed(Category.TIMEOUT, f"deadline exceeded waiting for {state.name}")

    def record_failure(
        self,
        req: RequestContext,
        state: ModelState,
        permit: Permit,
        exc: BaseException,
        started: float,
        admitted_epoch: int = 0,
    ) -> UpstreamFailure:
        """Classify an upstream failure (once), record it, and return it typed."""
        c = classify(exc)
        action = c.action
        latency = self.clock.monotonic() - started
        if c.category is Category.RATE_LIMITED:
            before = state.slots.limit
            state.slots.overloaded(admitted_epoch)
            if state.slots.limit != before:
                self.chain.admission_changed(state)
        else:
            state.gate.failed()
        counts = action.counts_against_breaker
        self.chain.record(state, permit, Outcome.FAILURE if counts else Outcome.IGNORED, latency)
        req.provenance.attempts.append(AttemptRecord(state.name, c.status, c.category.value))
        self.events.publish(
            ev.AttemptFinished(req.id, state.name, c.status, c.category, latency, req.operation)
        )
        self.chain.failed(state, c)
        if action.semantic:
            req.semantic_failures[state.name] = req.semantic_failures.get(state.name, 0) + 1
            self.events.publish(ev.SemanticFailure(req.id, state.name, c.status))
        return UpstreamFailure(c)

    async def acquire_slot(self, req: RequestContext, state: ModelState, permit: Permit) -> None:
        """Per-model concurrency, with shedding when too many are already waiting. The
        caller releases ``state.slots``."""
        if not state.slots.locked():
            await state.slots.acquire()
            return
        if state.waiting >= self.settings.concurrency.max_waiting:
            state.breaker.release(permit)
            state.slots.shed += 1
            if self.chain.usable_after(state, req.stop):
                raise GiveUp("overloaded")  # a later model takes it: no need to shed
            self.shed(req, state, "overloaded", 1.0)
        state.waiting += 1
        self.chain.admission_changed(state)
        try:
            async with asyncio.timeout(max(0.0, self.remaining(req))):
                await state.slots.acquire()
        except TimeoutError:
            state.breaker.release(permit)
            state.slots.shed += 1
            self.shed(req, state, "deadline", None)
        except asyncio.CancelledError:
            state.breaker.release(permit)
            raise
        finally:
            state.waiting -= 1
            self.chain.admission_changed(state)
        breaker = state.breaker
        if permit.epoch != breaker.snapshot.epoch and breaker.state is not BreakerState.CLOSED:
            # the model was ejected (or tripped) while this request queued: its turn
            # must not be one more call to it
            state.slots.release()
            breaker.release(permit)
            raise BreakerRejected


class Attempt:
    """The bracket around one call to one model (see the module docstring). A class
    rather than an ``asynccontextmanager`` generator: it is on every call's path."""

    __slots__ = (
        "_epoch",
        "_first_output",
        "_permit",
        "_req",
        "_runner",
        "_state",
        "remaining",
        "started",
        "timeout",
    )

    def __init__(self, runner: AttemptRunner, req: RequestContext, state: ModelState) -> None:
        self._runner = runner
        self._req = req
        self._state = state
        self._permit: Permit | None = None
        self._first_output: float | None = None
        self._epoch = 0  # the admission limit's epoch when the slot was granted
        self.remaining = 0.0  # seconds left of the request once the slot is held
        self.timeout = 0.0  # for a unary call: the attempt timeout, within the deadline
        self.started = 0.0  # monotonic, once the slot is held

    def first_output(self) -> None:
        """The first output arrived: a stream's health is judged by the time to it."""
        if self._first_output is None:
            self._first_output = self._runner.clock.monotonic()

    async def __aenter__(self) -> Attempt:
        runner, req, state = self._runner, self._req, self._state
        clock = runner.clock
        if req.deadline - clock.monotonic() <= 0:
            raise runner.deadline_passed()
        permit = state.breaker.allow()
        if permit is None:
            raise BreakerRejected
        await runner.acquire_slot(req, state, permit)
        self._epoch = state.slots.epoch
        if state.cooldown_left(CooldownKind.RATE_LIMITED, clock.time()):
            state.slots.release()
            state.breaker.release(permit)
            raise CooledDown
        remaining = req.deadline - clock.monotonic()  # waiting for the slot took some
        if remaining <= 0:
            state.slots.release()
            state.breaker.release(permit)
            raise runner.deadline_passed()
        self.remaining = remaining
        self.timeout = min(runner.settings.attempt_timeout, remaining)
        self._permit = permit
        self.started = clock.monotonic()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        runner, state, permit = self._runner, self._state, self._permit
        assert permit is not None  # __aenter__ succeeded
        if exc is None:
            req, now = self._req, runner.clock.monotonic()
            # the breaker judges slowness by the whole call, or a stream's time to first output
            health = (self._first_output if self._first_output is not None else now) - self.started
            slots = state.slots
            before = slots.limit
            if health >= runner.settings.breaker.slow_call_seconds:
                slots.overloaded(self._epoch)
            else:
                slots.succeeded()
            slots.release()
            if slots.limit != before:
                runner.chain.admission_changed(state)
            state.gate.succeeded(runner.clock.time())
            runner.chain.record(state, permit, Outcome.SUCCESS, health)
            req.provenance.attempts.append(AttemptRecord(state.name, "ok"))
            latency = runner.clock.monotonic() - self.started
            runner.events.publish(
                ev.AttemptFinished(req.id, state.name, "ok", None, latency, req.operation)
            )
            return
        if isinstance(exc, UPSTREAM_ERRORS):
            try:
                failure = runner.record_failure(
                    self._req, state, permit, exc, self.started, self._epoch
                )
            finally:
                state.slots.release()
            raise failure from exc
        state.breaker.release(permit)  # cancelled, or a bug: says nothing of the model
        state.slots.release()
