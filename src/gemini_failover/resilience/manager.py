"""FailoverManager: every tool call goes through here.

The request path (DESIGN.md): admission (deadline, per-model concurrency, load
shedding) -> for each model in the chain that fits the request: breaker -> retry
loop (tenacity: full-jitter backoff, Retry-After floor, retry budget) -> one attempt
with its own timeout -> classify -> record -> next model or return. Each stage is a
small object of its own (breaker.py, budget.py, backoff.py, capabilities.py,
continuation.py); this module composes them and publishes events.

One instance per process, shared by every tool call; the constructor does no I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from gemini_failover import jsonschema_worker
from gemini_failover.config import Settings
from gemini_failover.protocol import Backend, GenerationRequest, Turn
from gemini_failover.resilience import events as ev
from gemini_failover.resilience.backoff import wait_retry_after
from gemini_failover.resilience.breaker import (
    BreakerSnapshot,
    BreakerState,
    Outcome,
    Permit,
)
from gemini_failover.resilience.budget import RetryBudget
from gemini_failover.resilience.capabilities import ModelProfile, Needs, misfit
from gemini_failover.resilience.clock import Clock, SystemClock
from gemini_failover.resilience.errors import (
    UPSTREAM_ERRORS,
    Category,
    Classification,
    SchemaViolation,
    classify,
)
from gemini_failover.resilience.results import (
    AttemptRecord,
    FailoverRecord,
    Provenance,
    RequestFailed,
    Result,
    SpanRecord,
)
from gemini_failover.resilience.routing import (
    BreakerRejected,
    GiveUp,
    ModelState,
    RequestContext,
    Route,
)
from gemini_failover.resilience.streaming import ManagedStream
from gemini_failover.state import (
    CooldownKind,
    MemoryStateStore,
    StateStore,
    StoreHealth,
)

T = TypeVar("T")


#: How long a 404'd model is skipped before it is tried again.
UNAVAILABLE_SECONDS = 300.0
#: Wait for models.get when building a profile; on failure, defaults are used.
PROFILE_TIMEOUT = 2.0
PROFILE_RETRY_SECONDS = 60.0
#: Every Gemini model since 1.0 takes at least 32k input and 8k output tokens; a
#: request within these never waits for a model's limits to be fetched.
SAFE_INPUT_TOKENS = 32_768
SAFE_OUTPUT_TOKENS = 8_192


class FailoverManager:
    def __init__(
        self,
        settings: Settings,
        backend: Backend,
        *,
        store: StateStore | None = None,
        clock: Clock | None = None,
        events: ev.EventBus | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.store: StateStore = store or MemoryStateStore()
        self.clock: Clock = clock or SystemClock()
        self.events = events or ev.EventBus()
        self._rng = rng or random.Random()
        s = settings.retry
        self.budget = RetryBudget(
            self.clock,
            ratio=s.budget_ratio,
            min_per_second=s.budget_min_per_second,
            window=s.budget_window,
        )
        self._wait = wait_retry_after(
            s.backoff_initial, s.backoff_max, settings.rate_limit.default_retry_after
        )
        self.chain = [
            ModelState(m, i, self, settings, self.clock) for i, m in enumerate(settings.models)
        ]
        self.embedding_chain = [
            ModelState(m, i, self, settings, self.clock)
            for i, m in enumerate(settings.embedding_models)
        ]
        self._models = {m.name: m for m in (*self.chain, *self.embedding_chain)}
        self.active_model: str = self.chain[0].name
        self.last_failover: FailoverRecord | None = None
        self._store_health = self.store.health()
        self._id_prefix = uuid.uuid4().hex[:8]  # request ids: unique per process, cheap
        self._ids = itertools.count(1)

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Connect the state store. Never blocks on the network for long: a store that
        cannot connect reports itself degraded and the manager serves locally."""
        await self.store.start(self, list(self._models))

    async def aclose(self) -> None:
        tasks = [m.info_task for m in self._models.values() if m.info_task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        await self.store.aclose()
        await self.backend.aclose()

    # -- StateSink (the store hands over other instances' state) ----------------------

    def apply_breaker(self, model: str, snapshot: BreakerSnapshot) -> None:
        state = self._models.get(model)
        if state is None:
            return
        old = state.breaker.snapshot
        if state.breaker.apply(snapshot) and old.state is not snapshot.state:
            self.events.publish(
                ev.BreakerTransition(
                    model,
                    old.state.label,
                    snapshot.state.label,
                    snapshot.reason,
                    snapshot.epoch,
                    remote=True,
                )
            )
        self._update_active()

    def apply_cooldown(self, model: str, kind: CooldownKind, until: float) -> None:
        state = self._models.get(model)
        if state is not None and until > state.cooldowns.get(kind, 0.0):
            state.cooldowns[kind] = until
            self._cooldown_changed(kind, until)

    def apply_window(self, model: str, bad: int, total: int) -> None:
        state = self._models.get(model)
        if state is not None:
            state.breaker.set_remote_counts(bad, total)

    def store_health_changed(self, health: StoreHealth) -> None:
        self._store_health = health
        self.events.publish(ev.StateBackendHealth(health.backend, health.healthy, health.detail))

    @property
    def store_health(self) -> StoreHealth:
        return self._store_health

    # -- state changes --------------------------------------------------------------

    def _breaker_changed(self, model: str) -> Callable[[BreakerSnapshot, BreakerSnapshot], None]:
        def on_transition(old: BreakerSnapshot, new: BreakerSnapshot) -> None:
            self.events.publish(
                ev.BreakerTransition(model, old.state.label, new.state.label, new.reason, new.epoch)
            )
            self.store.publish_breaker(model, new)
            self._update_active()

        return on_transition

    def _set_cooldown(self, state: ModelState, kind: CooldownKind, seconds: float) -> None:
        until = self.clock.time() + seconds
        if until <= state.cooldowns.get(kind, 0.0):
            return
        state.cooldowns[kind] = until
        self.store.publish_cooldown(state.name, kind, until)
        if kind is CooldownKind.QUOTA_EXHAUSTED:
            self.events.publish(ev.QuotaExhausted(state.name, until))
        elif kind is CooldownKind.UNAVAILABLE:
            self.events.publish(ev.ModelUnavailable(state.name, until))
        self._cooldown_changed(kind, until)

    def _cooldown_changed(self, kind: CooldownKind, until: float) -> None:
        """A model may stop taking traffic now, and take it again when the cool-down
        runs out: that moment has no event of its own, so schedule a re-check for it
        (traffic served by the model, or a health read, re-checks earlier)."""
        self._update_active()
        if kind is CooldownKind.RATE_LIMITED:
            return  # a rate-limited model stays the active one
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no running loop (a synchronous caller): nothing to schedule
            return
        loop.call_later(max(0.0, until - self.clock.time()) + 0.01, self._update_active)

    def _taking_traffic(self, state: ModelState, now: float) -> bool:
        return (
            state.breaker.snapshot.state is BreakerState.CLOSED
            and not state.cooldown_left(CooldownKind.QUOTA_EXHAUSTED, now)
            and not state.cooldown_left(CooldownKind.UNAVAILABLE, now)
        )

    def _update_active(self) -> None:
        now = self.clock.time()
        for state in self.chain:
            if self._taking_traffic(state, now):
                if state.name != self.active_model:
                    previous, self.active_model = self.active_model, state.name
                    self.events.publish(ev.ActiveModelChanged(state.name, previous))
                return

    # -- public operations ---------------------------------------------------------------

    def _new_request(self, operation: str, request_id: str | None) -> RequestContext:
        rid = request_id or f"{self._id_prefix}-{next(self._ids)}"
        self.budget.record_request()
        return RequestContext(
            id=rid,
            operation=operation,
            deadline=self.clock.monotonic() + self.settings.total_timeout,
            provenance=Provenance(request_id=rid),
        )

    async def generate(
        self, request: GenerationRequest, *, request_id: str | None = None
    ) -> Result:
        req = self._new_request("generate", request_id)
        validate = await self._validator(request)
        start = self.clock.monotonic()

        async def call(model: str, timeout: float) -> Result:
            result = await self.backend.generate(model, request, timeout=timeout)
            parsed = await validate(result.text) if validate is not None else None
            return Result(result.text, result.finish_reason, result.usage, req.provenance, parsed)

        result = await self._run(req, self.chain, Needs.of(request), call, start)
        text_len = len(result.text)
        req.provenance.spans.append(SpanRecord(req.provenance.served_by or "", 0, text_len))
        return result

    async def count_tokens(
        self, contents: tuple[Turn, ...], *, request_id: str | None = None
    ) -> tuple[int, Provenance]:
        req = self._new_request("count_tokens", request_id)
        needs = Needs.of(GenerationRequest(contents=contents))

        async def call(model: str, timeout: float) -> int:
            return await self.backend.count_tokens(model, contents, timeout=timeout)

        count = await self._run(req, self.chain, needs, call, self.clock.monotonic())
        return count, req.provenance

    async def embed(
        self, texts: tuple[str, ...], *, request_id: str | None = None
    ) -> tuple[list[list[float]], Provenance]:
        req = self._new_request("embed", request_id)
        needs = Needs(prompt_tokens=max(1, max((len(t) for t in texts), default=0) // 4))

        async def call(model: str, timeout: float) -> list[list[float]]:
            return await self.backend.embed(model, texts, timeout=timeout)

        vectors = await self._run(req, self.embedding_chain, needs, call, self.clock.monotonic())
        return vectors, req.provenance

    def stream(self, request: GenerationRequest, *, request_id: str | None = None) -> ManagedStream:
        return ManagedStream(self, request, self._new_request("stream", request_id))

    # -- profiles ---------------------------------------------------------------------

    async def profile(self, state: ModelState, needs: Needs, deadline: float) -> ModelProfile:
        """The model's profile: limits from models.get (fetched once, lazily) merged with
        configuration overrides.

        The fetch runs in the background and requests do not wait for it, unless
        the request is big enough for the limits to matter (over SAFE_INPUT_TOKENS /
        SAFE_OUTPUT_TOKENS): then it waits (briefly) rather than risk routing a long
        prompt to a model with a small context window.
        """
        if state.info is None and self.clock.monotonic() >= state.info_retry_at:
            if state.info_task is None:
                state.info_task = asyncio.create_task(self._fetch_info(state))
            if (
                needs.prompt_tokens > SAFE_INPUT_TOKENS
                or (needs.output_tokens or 0) > SAFE_OUTPUT_TOKENS
            ):
                timeout = max(0.0, min(PROFILE_TIMEOUT, deadline - self.clock.monotonic()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(state.info_task), timeout)
        return state.profile

    async def fetch_profiles(self, timeout: float = PROFILE_TIMEOUT) -> None:
        """Fetch every model's limits not known yet (models.get, in the background,
        shared with requests) and wait up to ``timeout`` s for them."""
        tasks = []
        for state in self._models.values():
            if state.info is None and self.clock.monotonic() >= state.info_retry_at:
                if state.info_task is None:
                    state.info_task = asyncio.create_task(self._fetch_info(state))
                tasks.append(state.info_task)
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)  # never cancels them

    async def _fetch_info(self, state: ModelState) -> None:
        try:
            state.info = await self.backend.model_info(state.name, timeout=PROFILE_TIMEOUT)
        except UPSTREAM_ERRORS:
            pass  # unknown limits: serve on overrides/defaults, ask again later
        else:
            state.profile = ModelProfile.build(
                state.name, state.info, self.settings.model_overrides.get(state.name)
            )
        finally:
            state.info_task = None
            if state.info is None:  # failed (or a bug, which the task still carries)
                state.info_retry_at = self.clock.monotonic() + PROFILE_RETRY_SECONDS

    # -- validation -------------------------------------------------------------------

    async def _validator(
        self, request: GenerationRequest
    ) -> Callable[[str], Awaitable[Any]] | None:
        """None without a schema; else the schema is checked now (off the event loop,
        see jsonschema_worker) and the answer validator is returned."""
        schema = request.response_schema
        if schema is None:
            return None
        try:
            await jsonschema_worker.check_schema(schema)
        except jsonschema_worker.SchemaRefused as exc:
            raise RequestFailed(Category.BAD_REQUEST, f"invalid JSON Schema: {exc}") from None
        return functools.partial(_validate_answer, schema)

    # -- the engine -------------------------------------------------------------------

    def _remaining(self, req: RequestContext) -> float:
        return req.deadline - self.clock.monotonic()

    async def _eligible(self, req: RequestContext, state: ModelState, needs: Needs) -> str | None:
        """Why ``state`` must be skipped for this request, or None."""
        now = self.clock.time()
        if state.cooldown_left(CooldownKind.QUOTA_EXHAUSTED, now):
            return "quota_exhausted"
        if state.cooldown_left(CooldownKind.UNAVAILABLE, now):
            return "unavailable"
        if state.breaker.state is BreakerState.OPEN:
            return "breaker_open"
        reason = misfit(await self.profile(state, needs, req.deadline), needs)
        return f"capability: {reason}" if reason else None

    async def _run(
        self,
        req: RequestContext,
        chain: list[ModelState],
        needs: Needs,
        call: Callable[[str, float], Awaitable[T]],
        started: float,
    ) -> T:
        route = Route(self, req, chain, needs)
        try:
            while (state := await route.next()) is not None:
                try:
                    value = await self._on_model(req, state, call)
                except GiveUp as g:
                    route.gave_up(state, g.reason)
                    continue
                req.provenance.served_by = state.name
                self._finished(req, state.name, "ok", started)
                return value
        except RequestFailed as exc:
            exc.provenance = req.provenance
            self._finished(req, None, exc.category, started)
            raise
        failed = route.exhausted()
        self._finished(req, None, failed.category, started)
        raise failed

    def _earliest_recovery(self, chain: list[ModelState]) -> float | None:
        now = self.clock.time()
        waits = []
        for state in chain:
            snap = state.breaker.snapshot
            if snap.state is BreakerState.OPEN:
                waits.append(max(0.0, snap.open_until - now))
            waits.extend(
                left for left in (state.cooldown_left(k, now) for k in CooldownKind) if left
            )
        return min(waits) if waits else None

    def _failover(self, req: RequestContext, from_model: str, to_model: str, reason: str) -> None:
        record = FailoverRecord(from_model, to_model, reason)
        req.provenance.failovers.append(record)
        self.last_failover = record
        self.events.publish(ev.FailoverEvent(req.id, from_model, to_model, reason))

    def _finished(
        self, req: RequestContext, served_by: str | None, outcome: str, started: float
    ) -> None:
        if served_by is not None and served_by != self.active_model:
            # a cool-down may have run out with no event to say so: re-derive it
            self._update_active()
        self.events.publish(
            ev.RequestFinished(
                req.id,
                req.operation,
                served_by,
                outcome,
                self.clock.monotonic() - started,
                len(req.provenance.failovers),
            )
        )

    async def _wait_out_rate_limit(
        self, req: RequestContext, state: ModelState, chain_has_next: bool
    ) -> None:
        """Before calling a model that told us to back off: wait (within the deadline),
        spill a bounded fraction to the fallback, or shed with a retry-after."""
        wait = state.cooldown_left(CooldownKind.RATE_LIMITED, self.clock.time())
        if not wait:
            return
        spill = self.settings.rate_limit.spill_fraction
        if chain_has_next and spill > 0 and self._rng.random() < spill:
            raise GiveUp("spill")
        wait += self._rng.uniform(0, self.settings.retry.backoff_initial)  # no herd at reopening
        if wait >= self._remaining(req):
            self._shed(req, state, "rate_limited", wait)
        self.events.publish(ev.RateLimitWait(req.id, state.name, wait))
        await self.clock.sleep(wait)

    def _shed(
        self, req: RequestContext, state: ModelState, reason: str, retry_after: float | None
    ) -> NoReturn:
        self.events.publish(ev.RequestShed(req.id, state.name, reason, retry_after))
        if reason == "rate_limited":
            message = f"{state.name} is rate limited; retry after {retry_after or 1:.0f} s"
            raise RequestFailed(Category.RATE_LIMITED, message, retry_after=retry_after)
        if reason == "overloaded":
            raise RequestFailed(
                "overloaded",
                f"{state.name} has {self.settings.concurrency.max_waiting} requests waiting; "
                "retry shortly",
                retry_after=1.0,
            )
        raise RequestFailed(Category.TIMEOUT, f"deadline exceeded waiting for {state.name}")

    def _retrying(self, req: RequestContext, state: ModelState) -> AsyncRetrying:
        """The retry loop for one request on one model (tenacity): retry what the error
        table says to retry, at most ``max_attempts_per_model`` attempts (semantic
        failures: ``semantic_retries`` more), never past the deadline, and only while
        the retry budget lasts; wait with full-jitter backoff, floored by Retry-After."""
        settings = self.settings.retry

        def stop(rs: RetryCallState) -> bool:
            exc = rs.outcome.exception() if rs.outcome else None
            if exc is not None and classify(exc).category is Category.SEMANTIC:
                if req.semantic_failures.get(state.name, 0) > settings.semantic_retries:
                    return True
            elif rs.attempt_number >= settings.max_attempts_per_model:
                return True
            if rs.upcoming_sleep >= self._remaining(req):
                return True
            if not self.budget.try_spend():
                self.events.publish(ev.RetryBudgetExhausted(req.id, state.name))
                return True
            return False

        def before_sleep(rs: RetryCallState) -> None:
            exc = rs.outcome.exception() if rs.outcome else None
            if exc is not None:
                category = classify(exc).category
                self.events.publish(
                    ev.RetryScheduled(req.id, state.name, category, rs.upcoming_sleep)
                )

        return AsyncRetrying(
            stop=stop,
            wait=self._wait,
            retry=retry_if_exception(_retryable),
            sleep=self.clock.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )

    async def _on_model(
        self,
        req: RequestContext,
        state: ModelState,
        call: Callable[[str, float], Awaitable[T]],
    ) -> T:
        """Retry loop on one model. Returns a value, raises GiveUp to fail over, or
        RequestFailed when the request must end here."""
        await self._wait_out_rate_limit(req, state, self._usable_after(state))
        # Fast path: the first attempt runs outside tenacity, which costs ~100 us per
        # call to set up; the retry loop is built only once something has failed.
        try:
            return await self._attempt(req, state, call)
        except UPSTREAM_ERRORS as exc:
            if not _retryable(exc):
                self._after_failure(req, state, classify(exc))
            replay: list[BaseException] = [exc]
        except BreakerRejected:
            raise GiveUp("breaker_open") from None

        async def attempt() -> T:
            if replay:  # tenacity's attempt 1 is the failure we already have
                raise replay.pop()
            return await self._attempt(req, state, call)

        try:
            return await self._retrying(req, state)(attempt)
        except UPSTREAM_ERRORS as exc:
            self._after_failure(req, state, classify(exc))
        except BreakerRejected:
            raise GiveUp("breaker_open") from None

    def _usable_after(self, state: ModelState) -> bool:
        """Is there a later model in this chain that could take traffic now?"""
        chain = self.chain if state in self.chain else self.embedding_chain
        now = self.clock.time()
        return any(self._taking_traffic(s, now) for s in chain[chain.index(state) + 1 :])

    def _after_failure(self, req: RequestContext, state: ModelState, c: Classification) -> NoReturn:
        """Retries on this model are spent (or pointless): fail over, or end the request."""
        if c.category is Category.RATE_LIMITED:
            wait = c.retry_after or self.settings.rate_limit.default_retry_after
            self._shed(req, state, "rate_limited", wait)
        if c.action.fail_over:
            raise GiveUp(c.category.value, c)
        if c.category is Category.AUTH:
            raise RequestFailed(
                c.category,
                f"Gemini rejected the credentials ({c.status}) for {state.name}: "
                f"{c.message.rstrip('. ')}. Check GEMINI_API_KEY; the operator has been alerted.",
            )
        if c.category is Category.BLOCKED:
            raise RequestFailed(c.category, c.message)
        raise RequestFailed(c.category, f"{state.name} rejected the request: {c.message}")

    async def _open_attempt(self, req: RequestContext, state: ModelState) -> tuple[Permit, float]:
        """Admission of one attempt: a breaker permit and a concurrency slot, within the
        deadline. Returns the permit and the seconds left once the slot is held; the
        caller releases ``state.slots`` and records the outcome on the permit."""
        if self._remaining(req) <= 0:
            raise self._deadline_passed()
        permit = state.breaker.allow()
        if permit is None:
            raise BreakerRejected
        await self._acquire_slot(req, state, permit)
        remaining = self._remaining(req)  # waiting for the slot took some of it
        if remaining <= 0:
            state.slots.release()
            state.breaker.release(permit)
            raise self._deadline_passed()
        return permit, remaining

    def _deadline_passed(self) -> RequestFailed:
        return RequestFailed(
            Category.TIMEOUT, f"deadline exceeded ({self.settings.total_timeout:g} s)"
        )

    def _succeeded(
        self,
        req: RequestContext,
        state: ModelState,
        permit: Permit,
        started: float,
        health_latency: float,
    ) -> None:
        """Record a successful attempt. ``health_latency`` is what the breaker judges
        slowness by (the whole call, or a stream's time to first token)."""
        state.breaker.record(permit, Outcome.SUCCESS, health_latency)
        self.store.record_outcome(state.name, False)
        req.provenance.attempts.append(AttemptRecord(state.name, "ok"))
        latency = self.clock.monotonic() - started
        self.events.publish(
            ev.AttemptFinished(req.id, state.name, "ok", None, latency, req.operation)
        )

    async def _attempt(
        self, req: RequestContext, state: ModelState, call: Callable[[str, float], Awaitable[T]]
    ) -> T:
        permit, remaining = await self._open_attempt(req, state)
        started = self.clock.monotonic()
        try:
            value = await call(state.name, min(self.settings.attempt_timeout, remaining))
        except UPSTREAM_ERRORS as exc:
            self._record_failure(req, state, permit, classify(exc), started)
            raise
        except BaseException:
            state.breaker.release(permit)  # cancelled, or a bug: says nothing of the model
            raise
        finally:
            state.slots.release()
        self._succeeded(req, state, permit, started, self.clock.monotonic() - started)
        return value

    async def _acquire_slot(self, req: RequestContext, state: ModelState, permit: Permit) -> None:
        """Per-model concurrency, with shedding when too many are already waiting. The
        caller releases ``state.slots``. (A plain coroutine, not a context manager: this
        is on every call's path.)"""
        if not state.slots.locked():
            await state.slots.acquire()
            return
        if state.waiting >= self.settings.concurrency.max_waiting:
            state.breaker.release(permit)
            self._shed(req, state, "overloaded", 1.0)
        state.waiting += 1
        try:
            async with asyncio.timeout(max(0.0, self._remaining(req))):
                await state.slots.acquire()
        except TimeoutError:
            state.breaker.release(permit)
            self._shed(req, state, "deadline", None)
        except asyncio.CancelledError:
            state.breaker.release(permit)
            raise
        finally:
            state.waiting -= 1

    def _record_failure(
        self,
        req: RequestContext,
        state: ModelState,
        permit: Permit,
        c: Classification,
        started: float,
    ) -> None:
        latency = self.clock.monotonic() - started
        counts = c.action.counts_against_breaker
        state.breaker.record(permit, Outcome.FAILURE if counts else Outcome.IGNORED, latency)
        if counts:
            self.store.record_outcome(state.name, True)
        req.provenance.attempts.append(AttemptRecord(state.name, c.status, c.category.value))
        self.events.publish(
            ev.AttemptFinished(req.id, state.name, c.status, c.category, latency, req.operation)
        )
        if c.category is Category.RATE_LIMITED:
            wait = c.retry_after or self.settings.rate_limit.default_retry_after
            self._set_cooldown(state, CooldownKind.RATE_LIMITED, wait)
        elif c.category is Category.QUOTA_EXHAUSTED:
            self._set_cooldown(state, CooldownKind.QUOTA_EXHAUSTED, c.retry_after or 3600.0)
        elif c.category is Category.MODEL_UNAVAILABLE:
            self._set_cooldown(state, CooldownKind.UNAVAILABLE, UNAVAILABLE_SECONDS)
        elif c.category is Category.AUTH:
            self.events.publish(ev.AuthFailure(state.name, c.status, c.message))
        elif c.category is Category.SEMANTIC:
            req.semantic_failures[state.name] = req.semantic_failures.get(state.name, 0) + 1
            self.events.publish(ev.SemanticFailure(req.id, state.name, c.status))

    # -- introspection for tools and health --------------------------------------------

    def model_status(self) -> list[dict[str, Any]]:
        self._update_active()
        now = self.clock.time()
        out = []
        for state in (*self.chain, *self.embedding_chain):
            snap = state.breaker.snapshot
            rate, calls = state.breaker.failure_rate()
            p = state.profile
            out.append(
                {
                    "model": state.name,
                    "role": state.role if state in self.chain else f"embedding-{state.role}",
                    "active": state.name == self.active_model,
                    "breaker": {
                        "state": state.breaker.state.label,
                        "reason": snap.reason,
                        "trips": snap.trips,
                        "open_for_s": round(max(0.0, snap.open_until - now), 1)
                        if snap.state is BreakerState.OPEN
                        else 0.0,
                    },
                    "error_rate": round(rate, 3),
                    "calls_in_window": calls,
                    "rate_limited_for_s": round(
                        state.cooldown_left(CooldownKind.RATE_LIMITED, now), 1
                    ),
                    "quota_exhausted_for_s": round(
                        state.cooldown_left(CooldownKind.QUOTA_EXHAUSTED, now), 1
                    ),
                    "unavailable_for_s": round(
                        state.cooldown_left(CooldownKind.UNAVAILABLE, now), 1
                    ),
                    "profile": {
                        "input_token_limit": p.input_token_limit,
                        "output_token_limit": p.output_token_limit,
                        "json_schema": p.json_schema,
                        "function_calling": p.function_calling,
                        "system_instruction": p.system_instruction,
                        "source": p.source,
                    },
                }
            )
        return out


async def _validate_answer(schema: Any, text: str) -> Any:
    """The parsed answer; SchemaViolation when it is not JSON, violates the schema, or
    cannot be checked within the deadline (a semantic failure: retried, failed over)."""
    try:
        return await jsonschema_worker.validate(schema, text)
    except (jsonschema_worker.AnswerInvalid, jsonschema_worker.SchemaRefused) as exc:
        raise SchemaViolation(str(exc)) from None


def _retryable(exc: BaseException) -> bool:
    return classify(exc).action.retry_same_model
