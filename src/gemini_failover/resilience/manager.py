"""FailoverManager: every tool call goes through here; a thin front over the engine.

The request path: admission (deadline, per-model concurrency, load shedding) -> for
each model in the chain that fits the request (:class:`Route`): breaker -> retry loop
(:class:`Retrier`: tenacity, full-jitter backoff, Retry-After floor, retry budget) ->
one attempt (:class:`AttemptRunner`: permit, slot, its own timeout, outcome recorded)
-> next model or return. Model state lives in a :class:`Chain` per chain (generation,
embedding); failures are read from the error table (errors.py). Every state change is
published as an event (events.py).

One instance per process, shared by every tool call; the constructor does no I/O.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from gemini_failover import pairs
from gemini_failover.config import Settings
from gemini_failover.protocol import Backend, GenerationRequest, Turn
from gemini_failover.resilience import events as ev
from gemini_failover.resilience.attempt import AttemptRunner
from gemini_failover.resilience.breaker import BreakerSnapshot
from gemini_failover.resilience.budget import RetryBudget
from gemini_failover.resilience.capabilities import Needs
from gemini_failover.resilience.chain import Chain
from gemini_failover.resilience.choice import ANY, ModelChoice, resolve
from gemini_failover.resilience.clock import Clock, SystemClock
from gemini_failover.resilience.profiles import PROFILE_TIMEOUT, ProfileFetcher
from gemini_failover.resilience.request import GiveUp, RequestContext
from gemini_failover.resilience.results import (
    FailoverRecord,
    Provenance,
    RequestFailed,
    Result,
    SpanRecord,
)
from gemini_failover.resilience.retry import Retrier
from gemini_failover.resilience.routing import Route
from gemini_failover.resilience.status import ManagerStatus
from gemini_failover.resilience.streaming import ManagedStream, StreamEngine
from gemini_failover.resilience.validation import validator
from gemini_failover.state import (
    CooldownKind,
    MemoryStateStore,
    StateStore,
    StoreHealth,
)
from gemini_failover.state.conversations import ConversationStore
from gemini_failover.state.factory import open_conversation_store

T = TypeVar("T")
#: At most this many resolved model choices are remembered (``choose``).
_MAX_CHOICES = 256


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
        conversations: ConversationStore | None = None,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.store: StateStore = store or MemoryStateStore()
        self.clock: Clock = clock or SystemClock()
        self.events = events or ev.EventBus()
        s = settings.retry
        self.budget = RetryBudget(
            self.clock,
            ratio=s.budget_ratio,
            min_per_second=s.budget_min_per_second,
            window=s.budget_window,
        )
        self.chain = self._chain(settings.models)
        self.embedding_chain = self._chain(
            settings.embedding_models, tracks_active=False, role_prefix="embedding-"
        )
        for chain in (self.chain, self.embedding_chain):
            chain.on_endpoint_fault = self._endpoint_fault
        self._profiles = ProfileFetcher(backend, settings, self.clock)
        rng = rng or random.Random()
        self._generation = self._retrier(self.chain, rng)
        self._embedding = self._retrier(self.embedding_chain, rng)
        self._streams = StreamEngine(
            self._generation, self._profiles, backend, settings, self.clock, self.events
        )
        self._store_health = self.store.health()
        #: Finished requests per capability asked for and outcome (for health).
        self.capability_counts: dict[str, dict[str, int]] = {}
        self.events.subscribe(self._count_capability, kinds=(ev.CapabilityRequested,))
        #: Conversation threads (conversation_id): Redis when redis_url is set, else
        #: this process. No I/O until a conversation is used.
        self.conversations: ConversationStore = conversations or open_conversation_store(
            settings, settings.conversations, clock=self.clock
        )
        self._id_prefix = uuid.uuid4().hex[:8]  # request ids: unique per process, cheap
        #: resolved model choices: the chain and its aliases do not change
        self._choices: dict[tuple[str | None, bool], ModelChoice] = {}
        self._choices_for = settings
        self._ids = itertools.count(1)

    def _chain(self, models: list[str], **options: Any) -> Chain:
        return Chain(
            models,
            settings=self.settings,
            clock=self.clock,
            events=self.events,
            store=self.store,
            **options,
        )

    def _retrier(self, chain: Chain, rng: random.Random) -> Retrier:
        runner = AttemptRunner(chain, self.settings, self.clock, self.events)
        return Retrier(
            runner,
            settings=self.settings,
            clock=self.clock,
            events=self.events,
            budget=self.budget,
            rng=rng,
        )

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Connect the state store and start fetching the models' limits in the
        background. Never blocks on the network for long: a store that cannot connect
        reports itself degraded and the manager serves locally."""
        models = list(dict.fromkeys((*self.chain.names, *self.embedding_chain.names)))
        await self.store.start(self, models)
        self._profiles.start_all([*self.chain, *self.embedding_chain])

    async def fetch_profiles(self, timeout: float = PROFILE_TIMEOUT) -> None:
        """Fetch every model's limits not known yet (models.get, in the background,
        shared with requests) and wait up to ``timeout`` s for them."""
        await self._profiles.fetch_all([*self.chain, *self.embedding_chain], timeout)

    async def aclose(self) -> None:
        self.events.flush()  # the last calls' metrics and log lines
        await self._profiles.aclose()
        await self.conversations.aclose()
        await self.store.aclose()
        await self.backend.aclose()

    def _endpoint_fault(self, endpoint: str, seconds: float) -> bool:
        """An endpoint's credentials were rejected: leave its pairs out in every chain
        that has another endpoint to move to (a chain on this endpoint alone keeps
        failing at once, with the cause). True for a new outage (the caller alerts once)."""
        fresh = [
            chain.cool_endpoint(endpoint, seconds)
            for chain in self._chains()
            if chain.multi_endpoint
        ]
        return all(fresh)

    def _chains(self) -> tuple[Chain, Chain]:
        return self.chain, self.embedding_chain

    def _count_capability(self, event: ev.Event) -> None:
        if isinstance(event, ev.CapabilityRequested):
            counts = self.capability_counts.setdefault(event.capability, {})
            counts[event.outcome] = counts.get(event.outcome, 0) + 1

    # -- StateSink: the store hands over other instances' state to the chains ---------

    def apply_breaker(self, model: str, snapshot: BreakerSnapshot) -> None:
        for chain in (self.chain, self.embedding_chain):
            chain.apply_breaker(model, snapshot)

    def apply_cooldown(self, model: str, kind: CooldownKind, until: float) -> None:
        for chain in (self.chain, self.embedding_chain):
            chain.apply_cooldown(model, kind, until)

    def apply_window(self, model: str, bad: int, total: int) -> None:
        for chain in (self.chain, self.embedding_chain):
            chain.apply_window(model, bad, total)

    def store_health_changed(self, health: StoreHealth) -> None:
        self._store_health = health
        self.events.publish(ev.StateBackendHealth(health.backend, health.healthy, health.detail))

    # -- the operations -------------------------------------------------------------------

    def _new_request(self, operation: str, request_id: str | None) -> RequestContext:
        rid = request_id or f"{self._id_prefix}-{next(self._ids)}"
        self.budget.record_request()
        return RequestContext(
            id=rid,
            operation=operation,
            deadline=self.clock.monotonic() + self.settings.total_timeout,
            provenance=Provenance(request_id=rid),
        )

    def choose(self, start_at: str | None = None, failover: bool = True) -> ModelChoice:
        """Where a generation request starts: ``start_at`` is a chain model's name or an
        alias (``pro``, ``flash``, configured ones); with ``failover=False`` only that
        model serves. Raises RequestFailed (bad_request, listing the choices) for an
        unknown name."""
        if self._choices_for is not self.settings:  # settings replaced: aliases may differ
            self._choices, self._choices_for = {}, self.settings
        key = (start_at, failover)
        choice = self._choices.get(key)
        if choice is not None:
            return choice
        if start_at is not None:  # "gemini:gemini-2.5-pro" is "gemini-2.5-pro"
            start_at = pairs.canonical(start_at, self.settings.default_endpoint_name)
        choice = resolve(self.chain.names, self.settings.model_aliases, start_at, failover)
        if len(self._choices) < _MAX_CHOICES:  # the names in use: a few, but client-given
            self._choices[key] = choice
        return choice

    def model_choices(self) -> dict[str, str]:
        """Every name the ``model`` argument takes: chain models and aliases."""
        from gemini_failover.resilience.choice import aliases

        names = self.chain.names
        return {**{n: n for n in names}, **aliases(names, self.settings.model_aliases)}

    async def generate(
        self,
        request: GenerationRequest,
        *,
        request_id: str | None = None,
        start_at: str | None = None,
        failover: bool = True,
    ) -> Result:
        choice = self.choose(start_at, failover)
        req = self._new_request("generate", request_id)
        validate = await validator(request, req.deadline - self.clock.monotonic())
        started = self.clock.monotonic()

        async def call(model: str, timeout: float) -> Result:
            result = await self.backend.generate(model, request, timeout=timeout)
            parsed = (
                await validate(result.text, result.finish_reason, timeout)
                if validate is not None
                else None
            )
            return Result(
                result.text,
                result.finish_reason,
                result.usage,
                req.provenance,
                parsed,
                grounding=result.grounding,
                thoughts=result.thoughts,
            )

        needs = Needs.of(request)
        result = await self._serve(req, self._generation, needs, call, started, choice)
        req.provenance.spans.append(SpanRecord(req.provenance.served_by or "", 0, len(result.text)))
        return result

    async def count_tokens(
        self,
        contents: tuple[Turn, ...],
        *,
        request_id: str | None = None,
        start_at: str | None = None,
        failover: bool = True,
    ) -> tuple[int, Provenance]:
        choice = self.choose(start_at, failover)
        req = self._new_request("count_tokens", request_id)
        needs = Needs.of(GenerationRequest(contents=contents))

        async def call(model: str, timeout: float) -> int:
            return await self.backend.count_tokens(model, contents, timeout=timeout)

        count = await self._serve(
            req, self._generation, needs, call, self.clock.monotonic(), choice
        )
        return count, req.provenance

    async def embed(
        self, texts: tuple[str, ...], *, request_id: str | None = None
    ) -> tuple[list[list[float]], Provenance]:
        req = self._new_request("embed", request_id)
        needs = Needs(prompt_tokens=max(1, max((len(t) for t in texts), default=0) // 4))

        async def call(model: str, timeout: float) -> list[list[float]]:
            return await self.backend.embed(model, texts, timeout=timeout)

        vectors = await self._serve(req, self._embedding, needs, call, self.clock.monotonic())
        return vectors, req.provenance

    def stream(
        self,
        request: GenerationRequest,
        *,
        request_id: str | None = None,
        start_at: str | None = None,
        failover: bool = True,
    ) -> ManagedStream:
        choice = self.choose(start_at, failover)
        return ManagedStream(
            self._streams, request, self._new_request("stream", request_id), choice
        )

    async def _serve(
        self,
        req: RequestContext,
        retrier: Retrier,
        needs: Needs,
        call: Callable[[str, float], Awaitable[T]],
        started: float,
        choice: ModelChoice = ANY,
    ) -> T:
        """A unary call: down the chain (from the chosen model) until a model serves it."""
        route = Route(retrier.runner.chain, req, needs, self._profiles, started, choice)
        try:
            while (state := await route.next()) is not None:
                try:
                    value = await retrier.call(req, state, call)
                except GiveUp as g:
                    route.gave_up(state, g.reason)
                    continue
                route.served(state)
                return value
        except RequestFailed as exc:
            route.failed(exc)
            raise
        raise route.exhausted()

    # -- status -------------------------------------------------------------------------------

    @property
    def active_model(self) -> str:
        """The generation model taking traffic now."""
        return self.chain.active

    @property
    def last_failover(self) -> FailoverRecord | None:
        """The latest failover, in either chain."""
        latest = max((self.chain, self.embedding_chain), key=lambda c: c.failover_order)
        return latest.last_failover

    @property
    def store_health(self) -> StoreHealth:
        return self._store_health

    def status(self) -> ManagerStatus:
        """Every model's state now (re-deriving the active model first: a cool-down
        may have run out with no event to say so)."""
        self.chain.refresh_active()
        active = self.chain.active
        return ManagerStatus(
            active_model=active,
            primary_model=self.chain[0].name,
            models=tuple(self.chain.status(active)),
            embedding_models=tuple(self.embedding_chain.status(active)),
            last_failover=self.last_failover,
            store=self._store_health,
        )

    def model_status(self) -> list[dict[str, Any]]:
        """``status()``'s models as JSON (the gemini_list_models tool's shape)."""
        status = self.status()
        return [m.as_dict() for m in (*status.models, *status.embedding_models)]
