"""One request's walk down a chain: which model next, why others were skipped
(cool-down, open breaker, capability), each failover, and how the request ended
(RequestFinished). Shared by unary calls (manager.py) and streams (streaming.py)."""

from __future__ import annotations

from gemini_failover.resilience import events as ev
from gemini_failover.resilience.breaker import BreakerState
from gemini_failover.resilience.capabilities import Needs, misfit
from gemini_failover.resilience.chain import Chain
from gemini_failover.resilience.choice import ANY, ModelChoice
from gemini_failover.resilience.errors import Category
from gemini_failover.resilience.model import ModelState, role_of
from gemini_failover.resilience.profiles import ProfileFetcher
from gemini_failover.resilience.request import RequestContext
from gemini_failover.resilience.results import FailoverRecord, RequestFailed
from gemini_failover.state import CooldownKind

__all__ = ["Route", "role_of"]  # role_of: where observability.metrics imports it from


class Route:
    """Use: ``while (state := await route.next()) is not None``: try ``state``; on
    GiveUp ``route.gave_up(state, reason)``; on success ``route.served(state)``; on
    RequestFailed ``route.failed(exc)``; once ``next`` returns None, raise
    ``route.exhausted()``."""

    def __init__(
        self,
        chain: Chain,
        req: RequestContext,
        needs: Needs,
        profiles: ProfileFetcher,
        started: float,
        choice: ModelChoice = ANY,
    ) -> None:
        self._chain = chain
        self._req = req
        self._needs = needs
        self._profiles = profiles
        self._started = started
        self.left: ModelState | None = None  # the last model given up on
        self.left_reason = ""
        self._give_ups: list[str] = []
        self._misfits: list[str] = []
        # Model choice: start at the chosen model, fail over only to later ones.
        self._index = choice.start
        self._stop = choice.stop(len(chain))
        req.stop = self._stop  # what "a later model" means for this request's retries

    async def next(self) -> ModelState | None:
        """The next model to try, or None when the chain is used up. (A method, not an
        async generator: a generator left suspended by an early return would cost a
        finaliser task on every request.)"""
        chain, req = self._chain, self._req
        states = chain.states
        while self._index < self._stop:
            state = states[self._index]
            self._index += 1
            skip = await self.skip_reason(state)
            if skip is not None:
                req.provenance.skipped.append((state.name, skip))
                chain.events.publish(ev.ModelSkipped(req.id, state.name, skip))
                if skip.startswith("capability"):
                    self._misfits.append(f"{state.name}: {skip.removeprefix('capability: ')}")
                else:
                    self.gave_up(state, skip)
                continue
            if self.left is not None:
                self._failover(self.left.name, state.name, self.left_reason)
                if self.left_reason in ("rate_limited", "spill"):  # ramp up, no burst
                    state.gate.ramp(chain.clock.time(), chain.settings.rate_limit.spill_start_rate)
            return state
        return None

    async def skip_reason(self, state: ModelState) -> str | None:
        """Why ``state`` must be skipped for this request, or None."""
        now = self._chain.clock.time()
        if state.cooldown_left(CooldownKind.QUOTA_EXHAUSTED, now):
            return "quota_exhausted"
        if state.cooldown_left(CooldownKind.UNAVAILABLE, now):
            return "unavailable"
        if state.cooldown_left(CooldownKind.AUTH, now):
            return "endpoint_auth"  # its endpoint's credentials were rejected
        if state.breaker.state is BreakerState.OPEN:
            return "breaker_open"
        profile = await self._profiles.profile(state, self._needs, self._req.deadline)
        reason = misfit(profile, self._needs)
        return f"capability: {reason}" if reason else None

    def gave_up(self, state: ModelState, reason: str) -> None:
        # a 400 over the model's window (its limit now learned) is a misfit, not an outage
        too_long = misfit(state.profile, self._needs) if reason == Category.TOO_LONG else None
        if too_long:
            self._misfits.append(f"{state.name}: {too_long}")
        else:
            self._give_ups.append(f"{state.name}: {reason.replace('_', ' ')}")
        self.left, self.left_reason = state, reason

    def _failover(self, from_model: str, to_model: str, reason: str) -> None:
        record = FailoverRecord(from_model, to_model, reason)
        self._req.provenance.failovers.append(record)
        self._chain.note_failover(record)
        self._chain.events.publish(ev.FailoverEvent(self._req.id, from_model, to_model, reason))

    # -- how the request ended -----------------------------------------------------------

    def served(self, state: ModelState) -> None:
        self._req.provenance.served_by = state.name
        self._finish(state.name, "ok")

    def failed(self, exc: RequestFailed) -> None:
        exc.provenance = self._req.provenance
        self._finish(None, exc.category.value)

    def exhausted(self) -> RequestFailed:
        """The error for a request every model was out for (reported finished)."""
        req = self._req
        if self._misfits and not self._give_ups:
            failed = RequestFailed(
                Category.NO_CAPABLE_MODEL,
                "no model in the chain can serve this request: " + "; ".join(self._misfits),
                provenance=req.provenance,
            )
        else:
            retry_after = self._chain.earliest_recovery()
            detail = "; ".join(self._give_ups + self._misfits)
            hint = f"; retry after {retry_after:.0f} s" if retry_after else ""
            failed = RequestFailed(
                Category.UNAVAILABLE,
                f"every model in the chain failed ({detail}){hint}",
                provenance=req.provenance,
                retry_after=retry_after,
            )
        self._finish(None, failed.category.value)
        return failed

    def _finish(self, served_by: str | None, outcome: str) -> None:
        chain, req = self._chain, self._req
        if served_by is not None and served_by != chain.active:
            # a cool-down may have run out with no event to say so: re-derive it
            chain.refresh_active()
        for capability in self._needs.capabilities():
            chain.events.publish(ev.CapabilityRequested(req.id, capability, served_by, outcome))
        chain.events.publish(
            ev.RequestFinished(
                req.id,
                req.operation,
                served_by,
                outcome,
                chain.clock.monotonic() - self._started,
                len(req.provenance.failovers),
            )
        )
