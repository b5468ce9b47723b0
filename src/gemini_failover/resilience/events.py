"""State changes as events. Metrics and logs subscribe; the manager only publishes.

Polly v8 / Resilience4j style: the pipeline emits typed events and knows nothing of
Prometheus or structlog. The bus (:class:`EventBus`, see
:mod:`gemini_failover.resilience.bus`) calls subscribers in order; those that only
observe are called after the event loop's current step, off the path of an answer.

Each event declares once, in its ``spec``, the log line it produces and the metrics it
feeds (see :mod:`gemini_failover.resilience.event_spec`); the event logger and the
Prometheus metrics derive their handling from these declarations. Adding an event is
one class here with its ``spec`` (and, for a new metric, one row in the metrics table
of ``observability/metric_defs.py``).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import ClassVar, Final

from gemini_failover.resilience.bus import Bus
from gemini_failover.resilience.errors import Category
from gemini_failover.resilience.event_spec import (
    Activate,
    AsStr,
    ByValue,
    Const,
    Count,
    EventSpec,
    IsoTime,
    Log,
    Lookup,
    Observe,
    Rounded,
    Set,
    Text,
    Token,
    pair,
)

#: Breaker states as values of the ``circuit_breaker_state`` gauge.
BREAKER_STATE_VALUES: Final[dict[str, float]] = {
    "closed": 0.0,
    "half_open": 1.0,
    "half-open": 1.0,
    "open": 2.0,
}

AUTH_ACTION: Final = (
    "Gemini rejected the credentials (HTTP {e.status}) for {e.model}: the endpoint's key "
    "or token needs operator attention (check GEMINI_API_KEY / GOOGLE_API_KEY or the "
    "endpoint's api_key / access_token / Application Default Credentials, the key's API "
    "restrictions and the project's access to this model). With other endpoints in the "
    "chain, this endpoint is left out for endpoint_auth_cooldown seconds and requests "
    "fail over to them; with none, requests fail at once until it is fixed."
)


@dataclass(frozen=True, slots=True)
class AttemptFinished:
    """One upstream call ended (success or failure)."""

    request_id: str
    model: str
    status: str  # "ok", an HTTP code ("503"), "timeout", "network", "malformed", ...
    category: Category | None  # None on success
    latency: float  # seconds
    operation: str  # generate / stream / count_tokens / embed

    spec: ClassVar[EventSpec] = EventSpec(
        Log(
            "attempt_finished",
            "debug",
            request_id="request_id",
            model="model",
            status="status",
            category=AsStr("category"),
            latency_s=Rounded("latency", 4),
            operation="operation",
        ),
        (
            Count("requests_total", **pair("model"), status_code="status"),
            Observe("request_latency_seconds", "latency", **pair("model"), operation="operation"),
        ),
    )


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    request_id: str
    model: str
    category: Category
    wait: float  # seconds before the next attempt

    spec: ClassVar[EventSpec] = EventSpec(
        Log(
            "retry_scheduled",
            "debug",
            request_id="request_id",
            model="model",
            category=AsStr("category"),
            wait_s=Rounded("wait", 3),
        ),
        (Count("retries_total", **pair("model"), category=AsStr("category")),),
    )


@dataclass(frozen=True, slots=True)
class RetryBudgetExhausted:
    request_id: str
    model: str

    spec: ClassVar[EventSpec] = EventSpec(
        Log("retry_budget_exhausted", "warning", request_id="request_id", model="model"),
        (Count("retry_budget_exhausted_total", **pair("model")),),
    )


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    model: str
    from_state: str  # closed / half_open / open
    to_state: str
    reason: str
    epoch: int
    remote: bool = False  # applied from another instance (shared state)

    spec: ClassVar[EventSpec] = EventSpec(
        Log(
            "circuit_breaker_transition",
            ByValue("to_state", {"open": "warning"}, default="info"),
            model="model",
            from_state="from_state",
            to_state="to_state",
            reason="reason",
            epoch="epoch",
            remote="remote",
        ),
        (
            Set("circuit_breaker_state", Lookup("to_state", BREAKER_STATE_VALUES), **pair("model")),
            # Changes applied from shared state are counted by the instance that decided.
            Count(
                "circuit_breaker_transitions_total",
                unless="remote",
                **pair("model"),
                from_state="from_state",
                to_state="to_state",
            ),
        ),
    )


@dataclass(frozen=True, slots=True)
class FailoverEvent:
    request_id: str
    from_model: str
    to_model: str
    reason: str  # a Category value, or "breaker_open", "quota_exhausted", "spill", ...

    spec: ClassVar[EventSpec] = EventSpec(
        Log(
            "failover",
            "warning",
            request_id="request_id",
            from_model="from_model",
            to_model="to_model",
            reason="reason",
        ),
        (
            Count(
                "failover_events_total",
                **pair("from_model", "from_"),
                **pair("to_model", "to_"),
                reason=Token("reason"),
            ),
        ),
    )


@dataclass(frozen=True, slots=True)
class ModelSkipped:
    """A model in the chain was not tried for a request (and why)."""

    request_id: str
    model: str
    reason: str  # "breaker_open", "quota_exhausted", "unavailable", "capability: ..."

    spec: ClassVar[EventSpec] = EventSpec(
        Log("model_skipped", "debug", request_id="request_id", model="model", reason="reason"),
        (Count("skipped_models_total", **pair("model"), reason=Token("reason")),),
    )


@dataclass(frozen=True, slots=True)
class RateLimitWait:
    request_id: str
    model: str
    seconds: float

    spec: ClassVar[EventSpec] = EventSpec(
        Log(
            "rate_limit_wait",
            "debug",
            request_id="request_id",
            model="model",
            wait_s=Rounded("seconds", 3),
        ),
        (
            Count("rate_limit_waits_total", **pair("model")),
            Observe("rate_limit_wait_seconds", "seconds", **pair("model")),
        ),
    )


@dataclass(frozen=True, slots=True)
class AdmissionChanged:
    """A model's adaptive admission limit, or its queue for a slot, changed. Published
    only then (a decrease, a restart, growth while saturated, a request queuing or
    leaving the queue): never per call on a model whose limit holds its traffic."""

    model: str
    limit: int
    in_flight: int
    queued: int

    spec: ClassVar[EventSpec] = EventSpec(
        Log(
            "admission_changed",
            "debug",
            model="model",
            limit="limit",
            in_flight="in_flight",
            queued="queued",
        ),
        (
            Set("admission_limit", "limit", **pair("model")),
            Set("admission_in_flight", "in_flight", **pair("model")),
            Set("admission_queued", "queued", **pair("model")),
        ),
    )


@dataclass(frozen=True, slots=True)
class GateWaiters:
    """Requests waiting at a model's release gate (a rate-limit cool-down, the probe,
    or the paced release) changed: published as a wait starts and ends."""

    model: str
    waiters: int

    spec: ClassVar[EventSpec] = EventSpec(
        Log("gate_waiters", "debug", model="model", waiters="waiters"),
        (Set("release_gate_waiters", "waiters", **pair("model")),),
    )


@dataclass(frozen=True, slots=True)
class RequestShed:
    request_id: str
    model: str
    reason: str  # "rate_limited", "deadline", "overloaded", "retry_budget"
    retry_after: float | None

    spec: ClassVar[EventSpec] = EventSpec(
        Log(
            "request_shed",
            "warning",
            request_id="request_id",
            model="model",
            reason="reason",
            retry_after_s="retry_after",
        ),
        (Count("shed_requests_total", **pair("model"), reason=Token("reason")),),
    )


@dataclass(frozen=True, slots=True)
class QuotaExhausted:
    model: str
    until: float  # wall-clock time the quota resets

    spec: ClassVar[EventSpec] = EventSpec(
        Log("quota_exhausted", "warning", model="model", until=IsoTime("until")),
        (Count("quota_exhausted_total", **pair("model")),),
    )


@dataclass(frozen=True, slots=True)
class ModelUnavailable:
    model: str
    until: float

    spec: ClassVar[EventSpec] = EventSpec(
        Log("model_unavailable", "warning", model="model", until=IsoTime("until")),
        (Count("model_unavailable_total", **pair("model")),),
    )


@dataclass(frozen=True, slots=True)
class SemanticFailure:
    request_id: str
    model: str
    kind: str  # "empty", "schema", ...

    spec: ClassVar[EventSpec] = EventSpec(
        Log("semantic_failure", "info", request_id="request_id", model="model", kind="kind"),
        (Count("semantic_failures_total", **pair("model"), kind=Token("kind")),),
    )


@dataclass(frozen=True, slots=True)
class AuthFailure:
    model: str
    status: str  # "401" / "403"
    message: str

    spec: ClassVar[EventSpec] = EventSpec(
        Log(
            "auth_failure",
            "error",  # an operator must act
            model="model",
            status="status",
            category=Const("auth"),
            upstream_message="message",
            action=Text(AUTH_ACTION),
        ),
        (Count("auth_failures_total", **pair("model"), status_code="status"),),
    )


@dataclass(frozen=True, slots=True)
class ContinuationEvent:
    request_id: str
    from_model: str
    to_model: str
    at_char: int  # characters already sent when the stream broke
    reason: str
    overlap_trimmed: int  # characters of repeated text removed

    spec: ClassVar[EventSpec] = EventSpec(
        Log(
            "stream_continued",
            "info",
            request_id="request_id",
            from_model="from_model",
            to_model="to_model",
            at_char="at_char",
            reason="reason",
            overlap_trimmed="overlap_trimmed",
        ),
        (
            Count(
                "continuations_total",
                **pair("from_model", "from_"),
                **pair("to_model", "to_"),
                reason=Token("reason"),
            ),
            Count(
                "continuation_overlap_trimmed_characters_total",
                by="overlap_trimmed",
                **pair("to_model", "to_"),
            ),
        ),
    )


@dataclass(frozen=True, slots=True)
class ActiveModelChanged:
    model: str
    previous: str | None

    spec: ClassVar[EventSpec] = EventSpec(
        Log("active_model_changed", "info", model="model", previous="previous"),
        (Activate("active_model", model="model", previous="previous"),),
    )


@dataclass(frozen=True, slots=True)
class StateBackendHealth:
    backend: str  # "memory" / "redis"
    healthy: bool
    detail: str

    spec: ClassVar[EventSpec] = EventSpec(
        Log(
            "state_backend_health",
            ByValue("healthy", {True: "info"}, default="warning"),
            changes_only=("backend", "healthy"),
            backend="backend",
            healthy="healthy",
            detail="detail",
        ),
        (Set("state_backend_healthy", "healthy", backend="backend"),),
    )


@dataclass(frozen=True, slots=True)
class CapabilityRequested:
    """A finished request that asked for a capability (google_search, thinking,
    json_schema): one event per capability, so health and /metrics count them."""

    request_id: str
    capability: str
    served_by: str | None  # None when it failed
    outcome: str  # "ok" or a Category value

    spec: ClassVar[EventSpec] = EventSpec(
        Log(
            "capability_requested",
            "debug",
            request_id="request_id",
            capability="capability",
            served_by="served_by",
            outcome="outcome",
        ),
        (
            Count(
                "capability_requests_total",
                capability="capability",
                outcome=Token("outcome"),
            ),
        ),
    )


@dataclass(frozen=True, slots=True)
class RequestFinished:
    request_id: str
    operation: str
    served_by: str | None  # None when it failed
    outcome: str  # "ok" or a Category value
    duration: float
    failovers: int

    spec: ClassVar[EventSpec] = EventSpec(
        Log(
            "request_finished",
            "debug",
            request_id="request_id",
            operation="operation",
            served_by="served_by",
            outcome="outcome",
            duration_s=Rounded("duration", 4),
            failovers="failovers",
        ),
        (
            Observe(
                "call_duration_seconds", "duration", operation="operation", outcome=Token("outcome")
            ),
        ),
    )


Event = (
    AttemptFinished
    | RetryScheduled
    | RetryBudgetExhausted
    | BreakerTransition
    | FailoverEvent
    | ModelSkipped
    | RateLimitWait
    | AdmissionChanged
    | GateWaiters
    | RequestShed
    | QuotaExhausted
    | ModelUnavailable
    | SemanticFailure
    | AuthFailure
    | ContinuationEvent
    | ActiveModelChanged
    | StateBackendHealth
    | CapabilityRequested
    | RequestFinished
)


class EventBus(Bus[Event]):
    """The manager's event bus (see :mod:`gemini_failover.resilience.bus`)."""


#: Every event type, in declaration order.
EVENT_TYPES: Final[tuple[type[Event], ...]] = typing.get_args(Event)
