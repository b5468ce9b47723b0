"""What the manager returns and raises: results with provenance, and one error type."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gemini_failover.protocol import Grounding, Usage
from gemini_failover.resilience.errors import Category


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    model: str
    outcome: str  # "ok" or the status label ("503", "timeout", "429", ...)
    category: str | None = None


@dataclass(frozen=True, slots=True)
class FailoverRecord:
    from_model: str
    to_model: str
    reason: str


@dataclass(frozen=True, slots=True)
class SpanRecord:
    model: str
    start: int
    end: int


@dataclass(slots=True)
class Provenance:
    request_id: str
    served_by: str | None = None
    attempts: list[AttemptRecord] = field(default_factory=list)
    failovers: list[FailoverRecord] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (model, reason)
    spans: list[SpanRecord] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "served_by": self.served_by,
            "attempts": [{"model": a.model, "outcome": a.outcome} for a in self.attempts],
            "failovers": [
                {"from": f.from_model, "to": f.to_model, "reason": f.reason} for f in self.failovers
            ],
            "skipped": [{"model": m, "reason": r} for m, r in self.skipped],
            "spans": [{"model": s.model, "start": s.start, "end": s.end} for s in self.spans],
        }


@dataclass(frozen=True, slots=True)
class Result:
    text: str
    finish_reason: str
    usage: Usage
    provenance: Provenance
    parsed: Any = None  # the validated JSON value for structured output
    #: Search grounding, offsets into ``text`` (a continued stream's are shifted).
    grounding: Grounding | None = None
    #: Thought summaries (when asked for), never part of ``text``.
    thoughts: str = ""


class RequestFailed(Exception):
    """Every expected failure of a request, with a message meant for a person.

    ``category`` says what kind (a :class:`Category`, a StrEnum: it compares equal to
    its value, "rate_limited", "auth", ...); ``retry_after``
    is set when waiting would help; ``partial_text`` holds what a broken stream had
    already produced (policy ``fail``).
    """

    def __init__(
        self,
        category: Category,
        message: str,
        *,
        provenance: Provenance | None = None,
        retry_after: float | None = None,
        partial_text: str = "",
    ) -> None:
        super().__init__(message)
        self.category = category
        self.message = message
        self.provenance = provenance
        self.retry_after = retry_after
        self.partial_text = partial_text
