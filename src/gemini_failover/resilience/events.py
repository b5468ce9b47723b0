"""State changes as events. Metrics and logs subscribe; the manager only publishes.

Polly v8 / Resilience4j style: the pipeline emits typed events and knows nothing of
Prometheus or structlog. Subscribers are called synchronously, in order, and must be
cheap; a subscriber that raises is a bug and propagates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gemini_failover.resilience.errors import Category


@dataclass(frozen=True, slots=True)
class AttemptFinished:
    """One upstream call ended (success or failure)."""

    request_id: str
    model: str
    status: str  # "ok", an HTTP code ("503"), "timeout", "network", "malformed", ...
    category: Category | None  # None on success
    latency: float  # seconds
    operation: str  # generate / stream / count_tokens / embed


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    request_id: str
    model: str
    category: Category
    wait: float  # seconds before the next attempt


@dataclass(frozen=True, slots=True)
class RetryBudgetExhausted:
    request_id: str
    model: str


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    model: str
    from_state: str  # closed / half_open / open
    to_state: str
    reason: str
    epoch: int
    remote: bool = False  # applied from another instance (shared state)


@dataclass(frozen=True, slots=True)
class FailoverEvent:
    request_id: str
    from_model: str
    to_model: str
    reason: str  # a Category value, or "breaker_open", "quota_exhausted", "spill", ...


@dataclass(frozen=True, slots=True)
class ModelSkipped:
    """A model in the chain was not tried for a request (and why)."""

    request_id: str
    model: str
    reason: str  # "breaker_open", "quota_exhausted", "unavailable", "capability: ..."


@dataclass(frozen=True, slots=True)
class RateLimitWait:
    request_id: str
    model: str
    seconds: float


@dataclass(frozen=True, slots=True)
class RequestShed:
    request_id: str
    model: str
    reason: str  # "rate_limited", "deadline", "overloaded", "retry_budget"
    retry_after: float | None


@dataclass(frozen=True, slots=True)
class QuotaExhausted:
    model: str
    until: float  # wall-clock time the quota resets


@dataclass(frozen=True, slots=True)
class ModelUnavailable:
    model: str
    until: float


@dataclass(frozen=True, slots=True)
class SemanticFailure:
    request_id: str
    model: str
    kind: str  # "empty", "schema", ...


@dataclass(frozen=True, slots=True)
class AuthFailure:
    model: str
    status: str  # "401" / "403"
    message: str


@dataclass(frozen=True, slots=True)
class ContinuationEvent:
    request_id: str
    from_model: str
    to_model: str
    at_char: int  # characters already sent when the stream broke
    reason: str
    overlap_trimmed: int  # characters of repeated text removed


@dataclass(frozen=True, slots=True)
class ActiveModelChanged:
    model: str
    previous: str | None


@dataclass(frozen=True, slots=True)
class StateBackendHealth:
    backend: str  # "memory" / "redis"
    healthy: bool
    detail: str


@dataclass(frozen=True, slots=True)
class RequestFinished:
    request_id: str
    operation: str
    served_by: str | None  # None when it failed
    outcome: str  # "ok" or a Category value
    duration: float
    failovers: int


Event = (
    AttemptFinished
    | RetryScheduled
    | RetryBudgetExhausted
    | BreakerTransition
    | FailoverEvent
    | ModelSkipped
    | RateLimitWait
    | RequestShed
    | QuotaExhausted
    | ModelUnavailable
    | SemanticFailure
    | AuthFailure
    | ContinuationEvent
    | ActiveModelChanged
    | StateBackendHealth
    | RequestFinished
)

Subscriber = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns a function that removes it."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def publish(self, event: Event) -> None:
        for subscriber in self._subscribers:
            subscriber(event)


#: The short name of each event type: a subscriber's handler for it is ``_on_<name>``.
HANDLER_NAMES: dict[type[Event], str] = {
    AttemptFinished: "attempt",
    RetryScheduled: "retry",
    RetryBudgetExhausted: "retry_budget",
    BreakerTransition: "breaker",
    FailoverEvent: "failover",
    ModelSkipped: "skipped",
    RateLimitWait: "rate_limit_wait",
    RequestShed: "shed",
    QuotaExhausted: "quota",
    ModelUnavailable: "unavailable",
    SemanticFailure: "semantic",
    AuthFailure: "auth",
    ContinuationEvent: "continuation",
    ActiveModelChanged: "active",
    StateBackendHealth: "backend",
    RequestFinished: "request_finished",
}


class EventHandler:
    """Base for subscribers that handle some event types: ``handle`` dispatches each
    event to the method ``_on_<name>`` (see HANDLER_NAMES) with one dict lookup, and
    ignores the types a subclass has no method for."""

    def __init__(self) -> None:
        self._handlers: dict[type[Event], Callable[[Any], None]] = {
            kind: getattr(self, f"_on_{name}")
            for kind, name in HANDLER_NAMES.items()
            if hasattr(self, f"_on_{name}")
        }

    def handle(self, event: Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)
