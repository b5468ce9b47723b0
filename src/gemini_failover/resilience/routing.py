"""The pieces a request's walk down the chain is made of, shared by the manager's
unary path (manager.py) and its streams (streaming.py): per-model state, the request
context, the route (which model next, and why others were skipped), and the two
internal signals that move a request to the next model.

Internal to ``gemini_failover.resilience``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gemini_failover.config import Settings
from gemini_failover.protocol import ModelInfo
from gemini_failover.resilience import events as ev
from gemini_failover.resilience.breaker import CircuitBreaker
from gemini_failover.resilience.capabilities import ModelProfile, Needs
from gemini_failover.resilience.clock import Clock
from gemini_failover.resilience.errors import Classification
from gemini_failover.resilience.results import Provenance, RequestFailed
from gemini_failover.state import CooldownKind

if TYPE_CHECKING:
    from gemini_failover.resilience.manager import FailoverManager

ROLES = ("primary", "secondary", "tertiary", "quaternary")


def role_of(position: int) -> str:
    """Role of the model at 0-based *position* in a chain: primary, secondary,
    tertiary, quaternary, then fallback-N with N the 1-based position. The health
    document and the metrics' ``role`` label both use it."""
    if position < 0:
        raise ValueError(f"position must be >= 0, got {position}")
    return ROLES[position] if position < len(ROLES) else f"fallback-{position + 1}"


class GiveUp(Exception):
    """This model is out for this request; try the next one."""

    def __init__(self, reason: str, classification: Classification | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.classification = classification


class BreakerRejected(Exception):
    """The breaker opened between two attempts on the same model."""


class ModelState:
    def __init__(
        self, name: str, index: int, manager: FailoverManager, settings: Settings, clock: Clock
    ) -> None:
        self.name = name
        self.index = index
        self.role = role_of(index)
        self.breaker = CircuitBreaker(
            name, settings.breaker, clock, on_transition=manager._breaker_changed(name)
        )
        self.cooldowns: dict[CooldownKind, float] = {}
        self.info: ModelInfo | None = None
        self.info_retry_at = 0.0
        self.info_task: asyncio.Task[None] | None = None
        self.profile = ModelProfile.build(name, None, settings.model_overrides.get(name))
        self.slots = asyncio.Semaphore(settings.concurrency.per_model)
        self.waiting = 0

    def cooldown_left(self, kind: CooldownKind, now: float) -> float:
        until = self.cooldowns.get(kind, 0.0)
        return until - now if until > now else 0.0


@dataclass(slots=True)
class RequestContext:
    id: str
    operation: str
    deadline: float  # monotonic
    provenance: Provenance
    semantic_failures: dict[str, int] = field(default_factory=dict)


class Route:
    """One request's walk down the chain: skips the models that cannot take it (and
    records why), reports each failover, and builds the error when every model is out.
    Shared by unary calls and streams."""

    def __init__(
        self, manager: FailoverManager, req: RequestContext, chain: list[ModelState], needs: Needs
    ) -> None:
        self._m = manager
        self._req = req
        self._chain = chain
        self._needs = needs
        self.left: ModelState | None = None  # the last model given up on
        self.left_reason = ""
        self._give_ups: list[str] = []
        self._misfits: list[str] = []
        self._index = 0

    async def next(self) -> ModelState | None:
        """The next model to try, or None when the chain is used up. (A method, not an
        async generator: a generator left suspended by an early return would cost a
        finaliser task on every request.)"""
        m, req = self._m, self._req
        while self._index < len(self._chain):
            state = self._chain[self._index]
            self._index += 1
            skip = await m._eligible(req, state, self._needs)
            if skip is not None:
                req.provenance.skipped.append((state.name, skip))
                m.events.publish(ev.ModelSkipped(req.id, state.name, skip))
                if skip.startswith("capability"):
                    self._misfits.append(f"{state.name}: {skip.removeprefix('capability: ')}")
                else:
                    self.gave_up(state, skip)
                continue
            if self.left is not None:
                m._failover(req, self.left.name, state.name, self.left_reason)
            return state
        return None

    def gave_up(self, state: ModelState, reason: str) -> None:
        self._give_ups.append(f"{state.name}: {reason.replace('_', ' ')}")
        self.left, self.left_reason = state, reason

    def exhausted(self) -> RequestFailed:
        req = self._req
        if self._misfits and not self._give_ups:
            return RequestFailed(
                "no_capable_model",
                "no model in the chain can serve this request: " + "; ".join(self._misfits),
                provenance=req.provenance,
            )
        retry_after = self._m._earliest_recovery(self._chain)
        detail = "; ".join(self._give_ups + self._misfits)
        hint = f"; retry after {retry_after:.0f} s" if retry_after else ""
        return RequestFailed(
            "unavailable",
            f"every model in the chain failed ({detail}){hint}",
            provenance=req.provenance,
            retry_after=retry_after,
        )


async def aclose(iterator: AsyncIterator[Any]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()
