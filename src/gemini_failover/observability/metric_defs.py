"""The Prometheus metrics of a failover manager, as a table, and the check that the
events' declarations (``spec.metrics``) match it.

Metric names are a public interface: operators paste them into dashboards and the
alert rules in ``deploy/prometheus/alerts.yml`` use them. Do not rename them. The
table's order is the exposition's order.

Label values are only model names (``model`` is the bare model, ``endpoint`` the quota
pool serving it), status codes, categories, operation names and
short reason tokens, never free text from upstream (see ``Token`` in
:mod:`gemini_failover.resilience.event_spec`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from gemini_failover.resilience.event_spec import (
    Activate,
    Const,
    EventSpec,
    Text,
    Update,
    attrs_read,
)
from gemini_failover.resilience.events import EVENT_TYPES

PREFIX: Final = "dualmodelmanager"

#: Upstream attempt latency: a cached embedding answers in ~50 ms, a long Pro
#: generation with thinking can take two minutes.
ATTEMPT_BUCKETS: Final[tuple[float, ...]] = (
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0,
)  # fmt: skip
#: End-to-end duration also includes backoff, rate-limit waits and failovers.
REQUEST_BUCKETS: Final[tuple[float, ...]] = (*ATTEMPT_BUCKETS, 180.0, 300.0)
#: Rate-limit waits follow Retry-After / RetryInfo.retryDelay (seconds to a minute).
WAIT_BUCKETS: Final[tuple[float, ...]] = (
    0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
)  # fmt: skip

MetricKind = Literal["counter", "histogram", "gauge"]


@dataclass(frozen=True, slots=True)
class MetricDef:
    """One metric. *name* is its sample name without :data:`PREFIX` (counters end in
    ``_total``), as alert rules and the events' declarations spell it."""

    name: str
    kind: MetricKind
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] | None = None
    #: Series created at 0 for every model of the chains, given as the values of the
    #: labels after the first two (``model``, ``endpoint``): a counter series that is born at 1 is
    #: invisible to ``rate``/``increase``, so the first event would go unseen.
    per_model: tuple[tuple[str, ...], ...] = ()


M = MetricDef

METRICS: Final[tuple[MetricDef, ...]] = (
    # -- which model takes traffic ------------------------------------------------------
    M(
        "active_model",
        "gauge",
        "1 for the model currently taking traffic, 0 for the other models of the chain.",
        ("model", "endpoint", "role"),
    ),
    # -- failover and upstream requests -------------------------------------------------
    M(
        "failover_events_total",
        "counter",
        "Requests moved from one model to the next, by reason "
        "(an error category, breaker_open, quota_exhausted, spill, ...).",
        ("from_model", "from_endpoint", "to_model", "to_endpoint", "reason"),
    ),
    M(
        "requests_total",
        "counter",
        "Upstream Gemini requests (one per attempt), by model and outcome status "
        '("ok", an HTTP code, "timeout", "network", "malformed", "truncated", '
        '"empty", "schema", "blocked").',
        ("model", "endpoint", "status_code"),
        per_model=(("ok",),),
    ),
    M(
        "request_latency_seconds",
        "histogram",
        "Latency of one upstream Gemini request (one attempt), by model and operation.",
        ("model", "endpoint", "operation"),
        buckets=ATTEMPT_BUCKETS,
    ),
    M(
        "capability_requests_total",
        "counter",
        "Finished requests that asked for a capability (google_search, thinking, "
        'json_schema), by capability and outcome ("ok" or an error category).',
        ("capability", "outcome"),
    ),
    M(
        "call_duration_seconds",
        "histogram",
        "End-to-end duration of a manager call (a tool call) including retries, "
        "rate-limit waits and failovers, by operation and outcome "
        '("ok" or an error category).',
        ("operation", "outcome"),
        buckets=REQUEST_BUCKETS,
    ),
    M(
        "retries_total",
        "counter",
        "Same-model retries scheduled, by model and error category.",
        ("model", "endpoint", "category"),
    ),
    M(
        "retry_budget_exhausted_total",
        "counter",
        "Retries refused because the retry budget was spent (retry-storm guard).",
        ("model", "endpoint"),
    ),
    # -- circuit breakers ---------------------------------------------------------------
    M(
        "circuit_breaker_state",
        "gauge",
        "Circuit breaker state per model: 0 closed, 1 half-open, 2 open.",
        ("model", "endpoint"),
        per_model=((),),
    ),
    M(
        "circuit_breaker_transitions_total",
        "counter",
        "Circuit breaker state changes decided by this instance (changes applied "
        "from shared state are not counted, so a sum over instances counts each "
        "change once).",
        ("model", "endpoint", "from_state", "to_state"),
        per_model=(("closed", "open"), ("half_open", "open")),
    ),
    # -- rate limits, shedding, quotas, availability ------------------------------------
    M(
        "rate_limit_waits_total",
        "counter",
        "Waits on the same model after a per-minute rate limit (429).",
        ("model", "endpoint"),
    ),
    M(
        "rate_limit_wait_seconds",
        "histogram",
        "Time spent waiting for a rate limit to clear (Retry-After / retryDelay).",
        ("model", "endpoint"),
        buckets=WAIT_BUCKETS,
    ),
    M(
        "admission_limit",
        "gauge",
        "Adaptive admission limit per model: calls allowed in flight (slow start from "
        "concurrency.per_model, +1 per success while calls queue, x decrease_factor on a "
        "429 or a slow call). Updated when it changes.",
        ("model", "endpoint"),
        per_model=((),),
    ),
    M(
        "admission_in_flight",
        "gauge",
        "Calls in flight on the model when its admission limit or queue last changed "
        "(while requests queue, the limit is full).",
        ("model", "endpoint"),
        per_model=((),),
    ),
    M(
        "admission_queued",
        "gauge",
        "Requests queued for a slot of the model's admission limit (more than "
        "concurrency.max_waiting are spilled to a later model or shed as overloaded).",
        ("model", "endpoint"),
        per_model=((),),
    ),
    M(
        "release_gate_waiters",
        "gauge",
        "Requests waiting at the model's release gate: a rate-limit cool-down, its probe, "
        "or the paced release after it.",
        ("model", "endpoint"),
        per_model=((),),
    ),
    M(
        "shed_requests_total",
        "counter",
        "Requests refused with a retry-after error instead of being queued, "
        "by model and reason (rate_limited, deadline, overloaded).",
        ("model", "endpoint", "reason"),
        per_model=(("rate_limited",), ("deadline",), ("overloaded",)),
    ),
    M(
        "quota_exhausted_total",
        "counter",
        "Per-day quota exhaustions (the model is skipped until its quota resets).",
        ("model", "endpoint"),
    ),
    M(
        "model_unavailable_total",
        "counter",
        "Times a model was marked unavailable (404 on the model).",
        ("model", "endpoint"),
    ),
    M(
        "skipped_models_total",
        "counter",
        "Chain models not tried for a request, by reason "
        "(breaker_open, quota_exhausted, unavailable, capability).",
        ("model", "endpoint", "reason"),
    ),
    M(
        "auth_failures_total",
        "counter",
        "Credential faults (401/403, an invalid key, missing credentials): the credentials "
        "need an operator. Once per endpoint outage when other endpoints take over.",
        ("model", "endpoint", "status_code"),
        per_model=(("401",), ("403",)),
    ),
    M(
        "semantic_failures_total",
        "counter",
        "200 answers that were not answers (empty candidates, schema-invalid JSON).",
        ("model", "endpoint", "kind"),
    ),
    # -- stream continuation ------------------------------------------------------------
    M(
        "continuations_total",
        "counter",
        "Broken streams continued on another model.",
        ("from_model", "from_endpoint", "to_model", "to_endpoint", "reason"),
    ),
    M(
        "continuation_overlap_trimmed_characters_total",
        "counter",
        "Characters of repeated text removed when stitching a continued stream.",
        ("to_model", "to_endpoint"),
    ),
    # -- shared state backend -----------------------------------------------------------
    M(
        "state_backend_healthy",
        "gauge",
        "1 when the model-state backend (memory / redis) is healthy, 0 when degraded.",
        ("backend",),
    ),
)

METRICS_BY_NAME: Final[dict[str, MetricDef]] = {m.name: m for m in METRICS}

#: The labels of the gauge an :class:`Activate` update drives.
ACTIVE_LABELS: Final = ("model", "endpoint", "role")


def update_problems(update: Update, metrics: dict[str, MetricDef]) -> list[str]:
    """What is wrong with one metric update of a declaration (nothing: ``[]``)."""
    definition = metrics.get(update.metric)
    if definition is None:
        return [f"names {update.metric!r}, which is not in the metrics table"]
    problems = []
    if definition.kind != update.kind:
        kinds = (type(update).__name__, update.kind, definition.kind)
        problems.append(f"{kinds[0]} needs a {kinds[1]}, {update.metric!r} is a {kinds[2]}")
    fixed = [n for n, s in update.labels.items() if isinstance(s, Const | Text)]
    if fixed:
        problems.append(f"labels {fixed} of {update.metric!r} read no event attribute")
    wanted = ACTIVE_LABELS if isinstance(update, Activate) else tuple(sorted(update.labels))
    if tuple(sorted(definition.labels)) != tuple(sorted(wanted)):
        have = sorted(definition.labels)
        problems.append(f"labels {sorted(wanted)} do not match {update.metric!r}'s {have}")
    return problems


def declaration_problems(
    event_types: Iterable[type] = EVENT_TYPES,
    metrics: Sequence[MetricDef] = METRICS,
) -> list[str]:
    """Every mismatch between the events' declarations and the metrics table: a metric
    that does not exist, has another kind or other labels, an event attribute that
    does not exist, and a metric that no event feeds."""
    by_name = {m.name: m for m in metrics}
    fed: set[str] = set()
    problems = []
    for kind in event_types:
        spec = vars(kind).get("spec")
        if not isinstance(spec, EventSpec):
            problems.append(f"{kind.__name__}: no spec declared")
            continue
        if not dataclasses.is_dataclass(kind):
            problems.append(f"{kind.__name__}: not a dataclass")
            continue
        fields = {f.name for f in dataclasses.fields(kind)}
        problems += [
            f"{kind.__name__}: reads {a!r}, which is not a field" for a in attrs_read(spec) - fields
        ]
        for update in spec.metrics:
            fed.add(update.metric)
            problems += [f"{kind.__name__}: {p}" for p in update_problems(update, by_name)]
    problems += [f"{name!r}: no event feeds it" for name in by_name.keys() - fed]
    return problems
