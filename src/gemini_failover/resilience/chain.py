"""A chain of models (primary, then fallbacks) and everything known about each one:
breaker (opened by its own rules or by outlier ejection), cool-downs, profile, which
model takes traffic now, and the state other instances hand over through the state
store.

Every change to a model's state goes through its Chain, which publishes it (events
for metrics, logs and health; the store for other instances). The Chain does no I/O
and never waits.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator

from gemini_failover import pairs
from gemini_failover.config import Settings
from gemini_failover.resilience import events as ev
from gemini_failover.resilience.breaker import (
    BreakerSnapshot,
    BreakerState,
    Outcome,
    Permit,
    Transition,
)
from gemini_failover.resilience.clock import Clock
from gemini_failover.resilience.errors import Classification
from gemini_failover.resilience.model import ModelState
from gemini_failover.resilience.quota_window import day_quota_cooldown
from gemini_failover.resilience.results import FailoverRecord
from gemini_failover.resilience.status import BreakerStatus, ModelStatus, ProfileStatus
from gemini_failover.state import CooldownKind, StateStore

#: The event a local cool-down of each kind is announced with (rate limits: none, the
#: attempt's own AttemptFinished says it).
_COOLDOWN_EVENTS: dict[CooldownKind, type[ev.QuotaExhausted | ev.ModelUnavailable]] = {
    CooldownKind.QUOTA_EXHAUSTED: ev.QuotaExhausted,
    CooldownKind.UNAVAILABLE: ev.ModelUnavailable,
}

#: Orders failovers across chains (the latest one is reported, whichever chain).
_FAILOVER_ORDER = itertools.count(1)


class Chain:
    """The ordered models of one chain: ``chain[0]`` is the primary; iterating goes
    down the chain. ``tracks_active``: this chain's active model is announced
    (ActiveModelChanged); the embedding chain's is not."""

    def __init__(
        self,
        models: list[str],
        *,
        settings: Settings,
        clock: Clock,
        events: ev.EventBus,
        store: StateStore,
        tracks_active: bool = True,
        role_prefix: str = "",
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.events = events
        self.store = store
        self.tracks_active = tracks_active
        self.role_prefix = role_prefix
        self.states = [
            ModelState(name, i, settings, clock, self._on_transition(name))
            for i, name in enumerate(models)
        ]
        self._by_name = {s.name: s for s in self.states}
        # -- endpoints: the endpoint of each pair; an endpoint fault cools down every
        # pair on the endpoint (in every chain: the manager sets ``on_endpoint_fault``)
        default = settings.default_endpoint_name
        self.endpoint_of = {s.name: pairs.endpoint_of(s.name, default) for s in self.states}
        # this chain's own endpoints: with one, nothing here could take over from it
        self.multi_endpoint = len(set(self.endpoint_of.values())) > 1
        self.on_endpoint_fault: Callable[[str, float], bool] = self.cool_endpoint
        self.active: str = self.states[0].name
        self.last_failover: FailoverRecord | None = None
        self.failover_order = 0  # _FAILOVER_ORDER of last_failover

    # -- a sequence of ModelState ---------------------------------------------------------

    def __getitem__(self, index: int) -> ModelState:
        return self.states[index]

    def __iter__(self) -> Iterator[ModelState]:
        return iter(self.states)

    def __len__(self) -> int:
        return len(self.states)

    def get(self, model: str) -> ModelState | None:
        return self._by_name.get(model)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.states]

    # -- which model takes traffic -------------------------------------------------------

    def taking_traffic(self, state: ModelState, now: float) -> bool:
        return (
            state.breaker.snapshot.state is BreakerState.CLOSED
            and not state.cooldown_left(CooldownKind.QUOTA_EXHAUSTED, now)
            and not state.cooldown_left(CooldownKind.UNAVAILABLE, now)
            and not state.cooldown_left(CooldownKind.AUTH, now)
        )

    def refresh_active(self) -> None:
        """Re-derive the active model: the first one taking traffic (unchanged when
        none is)."""
        if not self.tracks_active:
            return
        now = self.clock.time()
        for state in self.states:
            if self.taking_traffic(state, now):
                if state.name != self.active:
                    previous, self.active = self.active, state.name
                    self.events.publish(ev.ActiveModelChanged(state.name, previous))
                return

    def usable_after(self, state: ModelState, stop: int | None = None) -> bool:
        """Is there a later model in this chain (before index ``stop``: the request's
        model choice) that could take traffic now?"""
        now = self.clock.time()
        later = self.states[state.index + 1 : stop]
        return any(self.taking_traffic(s, now) for s in later)

    def other_endpoint_after(self, state: ModelState, stop: int | None = None) -> bool:
        """Is there a later pair (before ``stop``) on another endpoint whose
        credentials are not known to be bad? (Where an endpoint fault fails over to.)"""
        now, endpoint = self.clock.time(), self.endpoint_of[state.name]
        return any(
            self.endpoint_of[s.name] != endpoint and not s.cooldown_left(CooldownKind.AUTH, now)
            for s in self.states[state.index + 1 : stop]
        )

    def cool_endpoint(self, endpoint: str, seconds: float) -> bool:
        """Leave every pair on ``endpoint`` out for ``seconds``. True when none of them
        was left out already: a new outage of the endpoint (alert once, not per call)."""
        now = self.clock.time()
        on_it = [s for s in self.states if self.endpoint_of[s.name] == endpoint]
        fresh = not any(s.cooldown_left(CooldownKind.AUTH, now) for s in on_it)
        for state in on_it:
            self.set_cooldown(state, CooldownKind.AUTH, seconds)
        return fresh

    def earliest_recovery(self) -> float | None:
        """Seconds until the first model's breaker or cool-down ends, if any."""
        now = self.clock.time()
        waits = []
        for state in self.states:
            snap = state.breaker.snapshot
            if snap.state is BreakerState.OPEN:
                waits.append(max(0.0, snap.open_until - now))
            waits.extend(
                left for left in (state.cooldown_left(k, now) for k in CooldownKind) if left
            )
        return min(waits) if waits else None

    # -- local changes --------------------------------------------------------------------

    def record(self, state: ModelState, permit: Permit, outcome: Outcome, latency: float) -> None:
        """An attempt's outcome, for the breaker here and (through the store) the
        breaker windows of other instances."""
        state.breaker.record(permit, outcome, latency)
        if outcome is not Outcome.IGNORED:
            self.store.record_outcome(state.name, outcome is Outcome.FAILURE)
            if state.breaker.snapshot.state is BreakerState.CLOSED and not permit.probe:
                eject = state.outlier.record(outcome is Outcome.FAILURE)
                if eject is not None:
                    state.breaker.eject(eject)

    def failed(self, state: ModelState, c: Classification) -> None:
        """What a failed attempt says about the model, per the error table: a
        cool-down, an operator alert."""
        action = c.action
        alert = action.alert_operator
        if action.cooldown is not None and action.cooldown.endpoint:
            if self.multi_endpoint:  # one endpoint: nothing could take over, fail as ever
                down_for = self.settings.endpoint_auth_cooldown
                alert = self.on_endpoint_fault(self.endpoint_of[state.name], down_for) and alert
        elif action.cooldown is not None:
            cd = action.cooldown
            seconds = (c.retry_after if cd.use_retry_after else None) or cd.seconds
            if cd.daily:
                reprobe = self.settings.rate_limit.day_quota_reprobe
                seconds = day_quota_cooldown(self.clock.time(), c.retry_after, reprobe)
            elif seconds is None:
                seconds = self.settings.rate_limit.default_retry_after
            self.set_cooldown(state, cd.kind, seconds)
            if cd.kind is CooldownKind.RATE_LIMITED:
                until = state.cooldowns.get(cd.kind, 0.0)
                state.gate.rate_limited(until, c.retry_after)
        if alert:
            self.events.publish(ev.AuthFailure(state.name, c.status, c.message))
        if c.token_limit is not None:
            self.learn_input_limit(state, c.token_limit)

    def learn_input_limit(self, state: ModelState, limit: int) -> None:
        """The model said its input token limit (its 400): route later requests right."""
        learned = state.learned_input_limit
        state.learned_input_limit = limit if learned is None else min(learned, limit)
        state.set_profile(state.profile)

    def set_cooldown(self, state: ModelState, kind: CooldownKind, seconds: float) -> None:
        until = self.clock.time() + seconds
        if until <= state.cooldowns.get(kind, 0.0):
            return
        state.cooldowns[kind] = until
        self.store.publish_cooldown(state.name, kind, until)
        event = _COOLDOWN_EVENTS.get(kind)
        if event is not None:
            self.events.publish(event(state.name, until))
        self._cooldown_changed(kind, until)

    def restart_admission(self, state: ModelState) -> None:
        """The model was ejected: its admission limit slow-starts when it returns."""
        before = int(state.slots.limit)
        state.slots.restart()
        if int(state.slots.limit) != before:
            self.admission_changed(state)

    def admission_changed(self, state: ModelState) -> None:
        slots = state.slots
        self.events.publish(
            ev.AdmissionChanged(state.name, int(slots.limit), slots.in_flight, state.waiting)
        )

    def gate_waiters(self, state: ModelState, change: int) -> None:
        """A request starts (+1) or ends (-1) a wait at the model's release gate."""
        state.gate_waiters += change
        self.events.publish(ev.GateWaiters(state.name, state.gate_waiters))

    def note_failover(self, record: FailoverRecord) -> None:
        self.last_failover = record
        self.failover_order = next(_FAILOVER_ORDER)

    def _on_transition(self, model: str) -> Transition:
        def on_transition(old: BreakerSnapshot, new: BreakerSnapshot) -> None:
            if new.state is BreakerState.OPEN:
                self.restart_admission(self._by_name[model])  # back from it: slow start
            self.events.publish(
                ev.BreakerTransition(model, old.state.label, new.state.label, new.reason, new.epoch)
            )
            self.store.publish_breaker(model, new)
            self.refresh_active()

        return on_transition

    def _cooldown_changed(self, kind: CooldownKind, until: float) -> None:
        """A model may stop taking traffic now, and take it again when the cool-down
        runs out: that moment has no event of its own, so schedule a re-check for it
        (traffic served by the model, or a health read, re-checks earlier)."""
        self.refresh_active()
        if kind is CooldownKind.RATE_LIMITED:
            return  # a rate-limited model stays the active one
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no running loop (a synchronous caller): nothing to schedule
            return
        loop.call_later(max(0.0, until - self.clock.time()) + 0.01, self.refresh_active)

    # -- other instances' state (the store hands it over; StateSink) ---------------------

    def apply_breaker(self, model: str, snapshot: BreakerSnapshot) -> None:
        state = self._by_name.get(model)
        if state is None:
            return
        old = state.breaker.snapshot
        applied = state.breaker.apply(snapshot)
        if applied and snapshot.state is BreakerState.OPEN:
            self.restart_admission(state)
        if applied and old.state is not snapshot.state:
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
        self.refresh_active()

    def apply_cooldown(self, model: str, kind: CooldownKind, until: float) -> None:
        state = self._by_name.get(model)
        if state is not None and until > state.cooldowns.get(kind, 0.0):
            state.cooldowns[kind] = until
            if kind is CooldownKind.RATE_LIMITED:
                state.gate.rate_limited(until, None)
            self._cooldown_changed(kind, until)

    def apply_window(self, model: str, bad: int, total: int) -> None:
        state = self._by_name.get(model)
        if state is not None:
            state.breaker.set_remote_counts(bad, total)

    # -- status ------------------------------------------------------------------------------

    def status(self, active_model: str) -> list[ModelStatus]:
        """Each model's state now; ``active`` marks ``active_model``."""
        now = self.clock.time()
        out = []
        for state in self.states:
            snap = state.breaker.snapshot
            rate, calls = state.breaker.failure_rate()
            p = state.profile
            is_open = snap.state is BreakerState.OPEN
            out.append(
                ModelStatus(
                    model=state.name,
                    role=self.role_prefix + state.role,
                    active=state.name == active_model,
                    breaker=BreakerStatus(
                        state=state.breaker.state.label,
                        reason=snap.reason,
                        trips=snap.trips,
                        open_for_s=round(max(0.0, snap.open_until - now), 1) if is_open else 0.0,
                    ),
                    error_rate=round(rate, 3),
                    calls_in_window=calls,
                    rate_limited_for_s=round(
                        state.cooldown_left(CooldownKind.RATE_LIMITED, now), 1
                    ),
                    quota_exhausted_for_s=round(
                        state.cooldown_left(CooldownKind.QUOTA_EXHAUSTED, now), 1
                    ),
                    unavailable_for_s=round(state.cooldown_left(CooldownKind.UNAVAILABLE, now), 1),
                    endpoint=self.endpoint_of[state.name],
                    endpoint_down_for_s=round(state.cooldown_left(CooldownKind.AUTH, now), 1),
                    profile=ProfileStatus(
                        input_token_limit=p.input_token_limit,
                        output_token_limit=p.output_token_limit,
                        json_schema=p.json_schema,
                        function_calling=p.function_calling,
                        system_instruction=p.system_instruction,
                        source=p.source,
                        input_modalities=tuple(sorted(p.input_modalities)),
                        url_context=p.url_context,
                        google_search=p.google_search,
                        thinking=p.thinking.mode,
                    ),
                )
            )
        return out
