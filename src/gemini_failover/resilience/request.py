"""One request in flight through the engine, and the signal that moves it to the
next model. Shared by the route, the attempt bracket, the retry loop and streams."""

from __future__ import annotations

from dataclasses import dataclass, field

from gemini_failover.resilience.results import Provenance


@dataclass(slots=True)
class RequestContext:
    id: str
    operation: str  # generate / stream / count_tokens / embed
    deadline: float  # monotonic
    provenance: Provenance
    semantic_failures: dict[str, int] = field(default_factory=dict)  # per model
    #: One past the last chain index the request may use (model choice; None: all).
    stop: int | None = None


class GiveUp(Exception):
    """This model is out for this request; try the next one. ``reason`` is a Category
    value, or "breaker_open", "spill", ... (the failover's reason)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BreakerRejected(Exception):
    """The breaker opened between two attempts on the same model."""
