"""The retry loop on one model, and what happens when it is spent.

Retry what the error table says to retry (tenacity: full-jitter backoff floored by
Retry-After, at most ``max_attempts_per_model`` attempts or ``semantic_retries`` more
for semantic failures, never past the deadline, only while the retry budget lasts);
before calling a model that asked us to back off, wait (within the deadline), spill a
bounded fraction to the fallback, or shed. When retries are spent, the error table's
``then`` decides: fail over (GiveUp), wait (shed with a retry-after) or fail.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from gemini_failover.config import Settings
from gemini_failover.resilience import events as ev
from gemini_failover.resilience.attempt import AttemptRunner
from gemini_failover.resilience.backoff import wait_retry_after
from gemini_failover.resilience.budget import RetryBudget
from gemini_failover.resilience.clock import Clock
from gemini_failover.resilience.errors import Then, UpstreamFailure
from gemini_failover.resilience.model import ModelState
from gemini_failover.resilience.request import BreakerRejected, GiveUp, RequestContext
from gemini_failover.resilience.results import RequestFailed
from gemini_failover.state import CooldownKind

T = TypeVar("T")

#: One call to a model: (model name, timeout) -> its value.
Call = Callable[[str, float], Awaitable[T]]


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, UpstreamFailure) and exc.action.retry_same_model


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
        over, or RequestFailed when the request must end here."""
        await self.wait_out_rate_limit(req, state)
        # Fast path: the first attempt runs outside tenacity, which costs ~100 us per
        # call to set up; the retry loop is built only once something has failed.
        try:
            return await self._once(req, state, call)
        except UpstreamFailure as failure:
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
            return await self.retrying(req, state)(attempt)
        except UpstreamFailure as failure:
            self.conclude(req, state, failure)
        except BreakerRejected:
            raise GiveUp("breaker_open") from None

    async def _once(self, req: RequestContext, state: ModelState, call: Call[T]) -> T:
        async with self.runner.attempt(req, state) as attempt:
            return await call(state.name, attempt.timeout)

    def retrying(self, req: RequestContext, state: ModelState) -> AsyncRetrying:
        """The tenacity loop for one request on one model (see the module docstring).
        It retries UpstreamFailures the table says to retry and re-raises the last."""
        settings = self._settings.retry

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
            retry=retry_if_exception(_retryable),
            sleep=self._clock.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )

    async def wait_out_rate_limit(
        self, req: RequestContext, state: ModelState, chain_has_next: bool | None = None
    ) -> None:
        """Before calling a model that told us to back off: wait (within the deadline),
        spill a bounded fraction to the fallback (if ``chain_has_next``: a later model
        takes traffic; None: look), or shed with a retry-after."""
        wait = state.cooldown_left(CooldownKind.RATE_LIMITED, self._clock.time())
        if not wait:
            return
        if chain_has_next is None:
            chain_has_next = self.runner.chain.usable_after(state)
        spill = self._settings.rate_limit.spill_fraction
        if chain_has_next and spill > 0 and self._rng.random() < spill:
            raise GiveUp("spill")
        wait += self._rng.uniform(0, self._settings.retry.backoff_initial)  # no herd
        if wait >= self.runner.remaining(req):
            self.runner.shed(req, state, "rate_limited", wait)
        self._events.publish(ev.RateLimitWait(req.id, state.name, wait))
        await self._clock.sleep(wait)

    def conclude(
        self, req: RequestContext, state: ModelState, failure: UpstreamFailure
    ) -> NoReturn:
        """Retries on this model are spent (or pointless): the error table's ``then``."""
        c = failure.classification
        action = failure.action
        if action.then is Then.FAIL_OVER:
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
