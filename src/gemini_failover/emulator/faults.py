"""A configured fault at run time: its settings, remaining count and handler state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .decisions import Decision, Delay
from .fault_kinds import HANDLERS, FaultHandler, RequestFacts
from .spec import Fault
from .wire.errors import ErrorReply

__all__ = ["ActiveFault", "Delay", "ErrorReply", "RequestFacts"]


@dataclass(slots=True)
class ActiveFault:
    """A configured fault with its live state: the remaining ``count`` and the handler
    (from the fault table) that holds the kind's own state (token bucket, flap phase)."""

    spec: Fault
    remaining: int | None = None
    handler: FaultHandler[Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.handler = HANDLERS[self.spec.kind](self.spec)

    @classmethod
    def of(cls, spec: Fault) -> ActiveFault:
        return cls(spec=spec, remaining=spec.count)

    @property
    def kind(self) -> str:
        return self.spec.kind

    def applies(self, facts: RequestFacts) -> bool:
        """Whether this fault is considered for the request at all (and so uses a count)."""
        actions = self.spec.actions
        if actions is not None and facts.action not in actions:
            return False
        endpoint = self.spec.endpoint
        if endpoint is not None and endpoint not in (facts.endpoint, facts.endpoint_kind):
            return False
        return self.handler.applies(facts)

    def use_count(self) -> bool:
        """Use one count; False when there is none left. Faults without a count always
        have one."""
        if self.remaining is None:
            return True
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True

    @property
    def used_up(self) -> bool:
        return self.remaining is not None and self.remaining <= 0

    def to_dict(self) -> dict[str, Any]:
        data = self.spec.model_dump(exclude_none=True)
        if self.remaining is not None:
            data["count"] = self.remaining
        return data

    def evaluate(self, facts: RequestFacts, now: float, now_wall: float) -> Decision | Delay | None:
        """What the fault does to this request; None when it does not fire."""
        return self.handler.fire(facts, now, now_wall)
