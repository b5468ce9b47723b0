"""The retry loop on one model, and what happens when it is spent.

Retry what the error table says to retry (tenacity: full-jitter backoff floored by
Retry-After, at most ``max_attempts_per_model`` attempts or ``semantic_retries`` more
for semantic failures, never past the deadline, only while the retry budget lasts).

A 429 is not retried that way: waiting out a rate limit is not a retry. Before each
call the model's release gate (release.py) is asked: wait out the cool-down (jittered)
when it fits ``rate_limit.max_wait`` and the deadline, then go as the probe or at the
paced release rate; this spends no retry budget and no attempt. When the wait does
not fit, the request moves on to the next model (GiveUp "rate_limited", through that
model's adaptive admission limit), or, with no later model taking traffic, is shed
with a retry-after. When retries are spent, the error table's ``then`` decides: fail
over (GiveUp), wait (shed with a retry-after) or fail.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from gemini_failover.config import Settings
from gemini_failover.resilience import events as ev
from gemini_failover.resilience.attempt import AttemptRunner, CooledDown
from gemini_failover.resilience.backoff import wait_retry_after
from gemini_failover.resilience.budget import RetryBudget
from gemini_failover.resilience.clock import Clock
from gemini_failover.resilience.errors import Category, Then, UpstreamFailure
from gemini_failover.resilience.model import ModelState
from gemini_failover.resilience.request import BreakerRejected, GiveUp, RequestContext
from gemini_failover.resilience.results import RequestFailed
from gemini_failover.state import CooldownKind

T = TypeVar("T")

#: One call to a model: (model name, timeout) -> its value.
Call = Callable[[str, float], Awaitable[T]]


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, UpstreamFailure) and exc.action.retry_same_model


def _rate_limited(exc: BaseException) -> bool:
    return isinstance(exc, UpstreamFailure) and exc.classification.category is Category.RATE_LIMITED


class Retrier:
    def __init__(
        self,
        runner: AttemptRunner,
        *,
        settings: Settings,
        clock: Clock,
        events: ev.EventBus,
        budget: RetryBudget,
        rng: random.Random,
    ) -> None:
        self.runner = runner
        self._settings = settings
        self._clock = clock
        self._events = events
        self._budget = budget
        self._rng = rng
        s = settings.retry
        self._wait = wait_retry_after(
            s.backoff_initial, s.backoff_max, settings.rate_limit.default_retry_after
        )

    async def call(self, req: RequestContext, state: ModelState, call: Call[T]) -> T:
        """A unary call on one model, retried. Returns a value, raises GiveUp to fail
        over, or RequestFailed when the request must end here. A 429 sends the request
        back to the release gate (no retry budget spent)."""
        while True:
            await self.wait_out_rate_limit(req, state)
            try:
                return await self._retried(req, state, call)
            except CooledDown:
                continue
            except UpstreamFailure as failure:
                if not _rate_limited(failure):
                    raise

    async def _retried(self, req: RequestContext, state: ModelState, call: Call[T]) -> T:
        # Fast path: the first attempt runs outside tenacity, which costs ~100 us per
        # call to set up; the retry loop is built only once something has failed.
        try:
            return await self._once(req, state, call)
        except UpstreamFailure as failure:
            if _rate_limited(failure):
                raise
            if not failure.action.retry_same_model:
                self.conclude(req, state, failure)
            replay: list[BaseException] = [failure]
        except BreakerRejected:
            raise GiveUp("breaker_open") from None

        async def attempt() -> T:
            if replay:  # tenacity's attempt 1 is the failure we already have
                raise replay.pop()
            return await self._once(req, state, call)

        try:
            return await self.retrying(req, state, rate_limits=False)(attempt)
        except UpstreamFailure as failure:
            if _rate_limited(failure):
                raise
            self.conclude(req, state, failure)
        except BreakerRejected:
            raise GiveUp("breaker_open") from None

    async def _once(self, req: RequestContext, state: ModelState, call: Call[T]) -> T:
        async with self.runner.attempt(req, state) as attempt:
            return await call(state.name, attempt.timeout)

    def retrying(
        self, req: RequestContext, state: ModelState, *, rate_limits: bool = True
    ) -> AsyncRetrying:
        """The tenacity loop for one request on one model (see the module docstring).
        It retries UpstreamFailures the table says to retry and re-raises the last;
        ``rate_limits`` False: a 429 is re-raised at once (the caller waits it out)."""
        settings = self._settings.retry
        retryable = _retryable if rate_limits else lambda e: _retryable(e) and not _rate_limited(e)

        def stop(rs: RetryCallState) -> bool:
            exc = rs.outcome.exception() if rs.outcome else None
            if isinstance(exc, UpstreamFailure) and exc.action.semantic:
                if req.semantic_failures.get(state.name, 0) > settings.semantic_retries:
                    return True
            elif rs.attempt_number >= settings.max_attempts_per_model:
                return True
            if rs.upcoming_sleep >= self.runner.remaining(req):
                return True
            if not self._budget.try_spend():
                self._events.publish(ev.RetryBudgetExhausted(req.id, state.name))
                return True
            return False

        def before_sleep(rs: RetryCallState) -> None:
            exc = rs.outcome.exception() if rs.outcome else None
            if isinstance(exc, UpstreamFailure):
                category = exc.classification.category
                self._events.publish(
                    ev.RetryScheduled(req.id, state.name, category, rs.upcoming_sleep)
                )

        return AsyncRetrying(
            stop=stop,
            wait=self._wait,
            retry=retry_if_exception(retryable),
            sleep=self._clock.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )

    async def wait_out_rate_limit(
        self, req: RequestContext, state: ModelState, chain_has_next: bool | None = None
    ) -> None:
        """Before calling a model: ask its release gate. Wait out a cool-down that fits
        ``rate_limit.max_wait`` and the deadline (jittered: no herd), then go as the
        probe or at the paced release rate; otherwise move on to the next model (if
        ``chain_has_next``: a later model takes traffic; None: look) or shed with a
        retry-after. ``spill_fraction`` sends that share of the requests that could
        wait to the next model at once."""
        gate, clock = state.gate, self._clock
        wait = gate.admit(clock.time())
        if not wait:
            return
        rl = self._settings.rate_limit
        if chain_has_next is None:
            chain_has_next = self.runner.chain.usable_after(state, req.stop)
        cooling = state.cooldown_left(CooldownKind.RATE_LIMITED, clock.time())
        if chain_has_next and rl.spill_fraction > 0 and self._rng.random() < rl.spill_fraction:
            raise GiveUp("spill")
        announced = False
        chain = self.runner.chain
        try:
            while wait:
                # jitter: a tenth of the wait (at least backoff_initial), so that the end
                # of a cool-down is not one instant for every waiter; a jittered wait past
                # the deadline is shed now, with its retry-after (not a timeout later)
                due = wait
                wait += self._rng.uniform(0, max(self._settings.retry.backoff_initial, wait / 10))
                too_long = cooling > rl.max_wait
                if too_long or wait >= self.runner.remaining(req):
                    if chain_has_next:
                        raise GiveUp("rate_limited")
                    self.runner.shed(req, state, "rate_limited", max(due, cooling))
                if not announced:
                    self._events.publish(ev.RateLimitWait(req.id, state.name, wait))
                    chain.gate_waiters(state, +1)
                    announced = True
                await clock.sleep(wait)
                wait = gate.admit(clock.time())
                cooling = state.cooldown_left(CooldownKind.RATE_LIMITED, clock.time())
        finally:
            if announced:
                chain.gate_waiters(state, -1)

    def conclude(
        self, req: RequestContext, state: ModelState, failure: UpstreamFailure
    ) -> NoReturn:
        """Retries on this model are spent (or pointless): the error table's ``then``."""
        c = failure.classification
        action = failure.action
        if action.then is Then.FAIL_OVER:
            raise GiveUp(c.category.value)
        # -- endpoints: an endpoint fault fails over only to another endpoint --
        endpoint_fault = action.then is Then.FAIL_OVER_ENDPOINT
        if endpoint_fault and self.runner.chain.other_endpoint_after(state, req.stop):
            raise GiveUp(c.category.value)
        if action.then is Then.WAIT:
            wait = c.retry_after or self._settings.rate_limit.default_retry_after
            self.runner.shed(req, state, "rate_limited", wait)
        raise RequestFailed(
            c.category,
            action.message.format(
                model=state.name, status=c.status, message=c.message, detail=c.message.rstrip(". ")
            ),
        )
