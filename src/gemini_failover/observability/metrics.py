"""Prometheus metrics for one failover manager, fed by its :class:`EventBus`.

``ManagerMetrics`` owns a private ``CollectorRegistry`` (never the global one), so two
managers in one process (tests, benchmarks, a server and its self-check) never collide
and a test can assert exact values. It is an EventBus subscriber: the manager publishes
typed events and knows nothing about Prometheus.

Metric names are a public interface: operators paste them into dashboards and the
alert rules in ``deploy/prometheus/alerts.yml`` use them. Do not rename them.

Label values are only model names, status codes, categories, operation names and
short reason tokens, never free text from upstream: reasons such as
``"capability: input too long"`` are cut at the first colon (``"capability"``) so that
the label set stays small and no message text can ever become a label.

``handle`` runs synchronously on the hot path of every request, so it dispatches by
event type through a dict and caches the labelled child of every metric it touches.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from gemini_failover.resilience.errors import Category
from gemini_failover.resilience.events import (
    ActiveModelChanged,
    AttemptFinished,
    AuthFailure,
    BreakerTransition,
    ContinuationEvent,
    Event,
    EventHandler,
    FailoverEvent,
    ModelSkipped,
    ModelUnavailable,
    QuotaExhausted,
    RateLimitWait,
    RequestFinished,
    RequestShed,
    RetryBudgetExhausted,
    RetryScheduled,
    SemanticFailure,
    StateBackendHealth,
)
from gemini_failover.resilience.routing import role_of as role_for

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

#: Breaker states as gauge values (the manager uses closed / half_open / open).
BREAKER_STATE_VALUES: Final[dict[str, float]] = {
    "closed": 0.0,
    "half_open": 1.0,
    "half-open": 1.0,
    "open": 2.0,
}

#: Role names by chain position; beyond these a model is ``fallback-N`` (N = 1-based
#: position in the chain).
#: Role of a model that becomes active without being in the configured chain.
UNLISTED_ROLE: Final = "unlisted"

#: Series created at construction so that ``increase()`` sees the first event (a
#: counter series that is born at 1 is invisible to ``rate``/``increase``).
_AUTH_STATUSES: Final = ("401", "403")
_SHED_REASONS: Final = ("rate_limited", "deadline", "overloaded")
_OPEN_TRANSITIONS: Final = (("closed", "open"), ("half_open", "open"))

_MAX_LABEL_LEN: Final = 64


class _Children:
    """Cache of labelled children of one metric (``labels()`` validates and locks)."""

    __slots__ = ("_cache", "_metric")

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._cache: dict[tuple[str, ...], Any] = {}

    def get(self, *values: str) -> Any:
        child = self._cache.get(values)
        if child is None:
            child = self._metric.labels(*values)
            self._cache[values] = child
        return child


class _WithoutCreated(Collector):
    """The registry minus ``*_created`` samples, for the classic text format.

    prometheus_client exports a ``_created`` gauge next to every counter and
    histogram; in the 0.0.4 text format Prometheus stores those as separate series,
    doubling the series count for nothing a dashboard uses. OpenMetrics keeps them
    (there they are metadata, not series).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        for family in self._registry.collect():
            if family.type in ("counter", "histogram", "summary"):
                trimmed = Metric(family.name, family.documentation, family.type, family.unit)
                trimmed.samples = [s for s in family.samples if not s.name.endswith("_created")]
                yield trimmed
            else:
                yield family


class ManagerMetrics(EventHandler):
    """Prometheus metrics of one failover manager; subscribe ``handle`` to its EventBus."""

    def __init__(
        self,
        chain: Sequence[str],
        registry: CollectorRegistry | None = None,
        *,
        initial_backend: str | None = "memory",
        extra_chains: Sequence[Sequence[str]] = (),
    ) -> None:
        """*chain* is the model chain, primary first. *extra_chains* are further chains
        whose events reach the same metrics (e.g. the embedding chain): each has its own
        active model and its own roles. *initial_backend* is the state backend reported
        healthy until the first :class:`StateBackendHealth` event (None: no series)."""
        chains = [tuple(chain), *(tuple(c) for c in extra_chains)]
        if any(not c for c in chains):
            raise ValueError("a model chain is empty")
        every = [m for c in chains for m in c]
        if len(set(every)) != len(every):
            raise ValueError(f"a model is listed twice in the chains: {every}")
        self.chain: tuple[str, ...] = chains[0]
        self.registry: CollectorRegistry = (
            registry if registry is not None else CollectorRegistry(auto_describe=True)
        )
        self._exposed = _WithoutCreated(self.registry)
        self._roles: dict[str, str] = {m: role_for(i) for c in chains for i, m in enumerate(c)}
        self._chain_of: dict[str, int] = {m: n for n, c in enumerate(chains) for m in c}
        self._reason_cache: dict[str, str] = {}
        reg = self.registry
        p = PREFIX

        # -- which model takes traffic ------------------------------------------------
        self._active_model = Gauge(
            f"{p}_active_model",
            "1 for the model currently taking traffic, 0 for the other models of the chain.",
            ["model", "role"],
            registry=reg,
        )
        self._active_children: dict[str, Any] = {}
        for model in every:
            self._active_children[model] = self._active_model.labels(model, self._roles[model])
        # The active model of each chain; every chain starts on its primary.
        self._active: list[str] = [c[0] for c in chains]
        for primary in self._active:
            self._active_children[primary].set(1)

        # -- failover and upstream requests -------------------------------------------
        self._failovers = _Children(
            Counter(
                f"{p}_failover_events_total",
                "Requests moved from one model to the next, by reason "
                "(an error category, breaker_open, quota_exhausted, spill, ...).",
                ["from_model", "to_model", "reason"],
                registry=reg,
            )
        )
        self._requests = _Children(
            Counter(
                f"{p}_requests_total",
                "Upstream Gemini requests (one per attempt), by model and outcome status "
                '("ok", an HTTP code, "timeout", "network", "malformed", "truncated", '
                '"empty", "schema", "blocked").',
                ["model", "status_code"],
                registry=reg,
            )
        )
        self._attempt_latency = _Children(
            Histogram(
                f"{p}_request_latency_seconds",
                "Latency of one upstream Gemini request (one attempt), by model and operation.",
                ["model", "operation"],
                buckets=ATTEMPT_BUCKETS,
                registry=reg,
            )
        )
        self._call_duration = _Children(
            Histogram(
                f"{p}_call_duration_seconds",
                "End-to-end duration of a manager call (a tool call) including retries, "
                "rate-limit waits and failovers, by operation and outcome "
                '("ok" or an error category).',
                ["operation", "outcome"],
                buckets=REQUEST_BUCKETS,
                registry=reg,
            )
        )
        self._retries = _Children(
            Counter(
                f"{p}_retries_total",
                "Same-model retries scheduled, by model and error category.",
                ["model", "category"],
                registry=reg,
            )
        )
        self._retry_budget_exhausted = _Children(
            Counter(
                f"{p}_retry_budget_exhausted_total",
                "Retries refused because the retry budget was spent (retry-storm guard).",
                ["model"],
                registry=reg,
            )
        )

        # -- circuit breakers ---------------------------------------------------------
        breaker_state = Gauge(
            f"{p}_circuit_breaker_state",
            "Circuit breaker state per model: 0 closed, 1 half-open, 2 open.",
            ["model"],
            registry=reg,
        )
        self._breaker_state = _Children(breaker_state)
        self._breaker_transitions = _Children(
            Counter(
                f"{p}_circuit_breaker_transitions_total",
                "Circuit breaker state changes decided by this instance (changes applied "
                "from shared state are not counted, so a sum over instances counts each "
                "change once).",
                ["model", "from_state", "to_state"],
                registry=reg,
            )
        )

        # -- rate limits, shedding, quotas, availability ------------------------------
        self._rate_limit_waits = _Children(
            Counter(
                f"{p}_rate_limit_waits_total",
                "Waits on the same model after a per-minute rate limit (429).",
                ["model"],
                registry=reg,
            )
        )
        self._rate_limit_wait_seconds = _Children(
            Histogram(
                f"{p}_rate_limit_wait_seconds",
                "Time spent waiting for a rate limit to clear (Retry-After / retryDelay).",
                ["model"],
                buckets=WAIT_BUCKETS,
                registry=reg,
            )
        )
        self._sheds = _Children(
            Counter(
                f"{p}_shed_requests_total",
                "Requests refused with a retry-after error instead of being queued, "
                "by model and reason (rate_limited, deadline, overloaded).",
                ["model", "reason"],
                registry=reg,
            )
        )
        self._quota_exhausted = _Children(
            Counter(
                f"{p}_quota_exhausted_total",
                "Per-day quota exhaustions (the model is skipped until its quota resets).",
                ["model"],
                registry=reg,
            )
        )
        self._model_unavailable = _Children(
            Counter(
                f"{p}_model_unavailable_total",
                "Times a model was marked unavailable (404 on the model).",
                ["model"],
                registry=reg,
            )
        )
        self._skipped = _Children(
            Counter(
                f"{p}_skipped_models_total",
                "Chain models not tried for a request, by reason "
                "(breaker_open, quota_exhausted, unavailable, capability).",
                ["model", "reason"],
                registry=reg,
            )
        )
        self._auth_failures = _Children(
            Counter(
                f"{p}_auth_failures_total",
                "Upstream 401/403 answers: the credentials need an operator.",
                ["model", "status_code"],
                registry=reg,
            )
        )
        self._semantic_failures = _Children(
            Counter(
                f"{p}_semantic_failures_total",
                "200 answers that were not answers (empty candidates, schema-invalid JSON).",
                ["model", "kind"],
                registry=reg,
            )
        )

        # -- stream continuation ------------------------------------------------------
        self._continuations = _Children(
            Counter(
                f"{p}_continuations_total",
                "Broken streams continued on another model.",
                ["from_model", "to_model", "reason"],
                registry=reg,
            )
        )
        self._overlap_trimmed = _Children(
            Counter(
                f"{p}_continuation_overlap_trimmed_characters_total",
                "Characters of repeated text removed when stitching a continued stream.",
                ["to_model"],
                registry=reg,
            )
        )

        # -- shared state backend -----------------------------------------------------
        self._backend_health = _Children(
            Gauge(
                f"{p}_state_backend_healthy",
                "1 when the model-state backend (memory / redis) is healthy, 0 when degraded.",
                ["backend"],
                registry=reg,
            )
        )

        # -- series that must exist from the start ------------------------------------
        for model in every:
            self._breaker_state.get(model).set(0)
            self._requests.get(model, "ok")
            for status in _AUTH_STATUSES:
                self._auth_failures.get(model, status)
            for reason in _SHED_REASONS:
                self._sheds.get(model, reason)
            for from_state, to_state in _OPEN_TRANSITIONS:
                self._breaker_transitions.get(model, from_state, to_state)
        if initial_backend is not None:
            self._backend_health.get(initial_backend).set(1)

        super().__init__()

    # -- public API -------------------------------------------------------------------

    @property
    def active_model(self) -> str:
        """The model the gauge reports as taking traffic (of the first chain)."""
        return self._active[0]

    @property
    def active_models(self) -> tuple[str, ...]:
        """The active model of every chain, in the order the chains were given."""
        return tuple(self._active)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """Exposition of this registry and its content type.

        Without *accept* this is the classic Prometheus text format (0.0.4); with an
        ``Accept`` header the best format the client asked for (OpenMetrics included).
        """
        if accept:
            encoder, content_type = choose_encoder(accept)
            if content_type.startswith("application/openmetrics-text"):
                return encoder(self.registry), content_type
        return generate_latest(self._exposed), CONTENT_TYPE_PLAIN_0_0_4

    # -- label hygiene ----------------------------------------------------------------

    def _reason(self, reason: str) -> str:
        """A short reason token: text after the first colon is dropped, length capped."""
        cached = self._reason_cache.get(reason)
        if cached is None:
            cached = reason.split(":", 1)[0].strip()[:_MAX_LABEL_LEN] or "unknown"
            if len(self._reason_cache) < 1024:
                self._reason_cache[reason] = cached
        return cached

    # -- handlers ---------------------------------------------------------------------

    def _on_attempt(self, e: AttemptFinished) -> None:
        self._requests.get(e.model, e.status).inc()
        self._attempt_latency.get(e.model, e.operation).observe(e.latency)

    def _on_retry(self, e: RetryScheduled) -> None:
        self._retries.get(e.model, str(e.category)).inc()

    def _on_retry_budget(self, e: RetryBudgetExhausted) -> None:
        self._retry_budget_exhausted.get(e.model).inc()

    def _on_breaker(self, e: BreakerTransition) -> None:
        value = BREAKER_STATE_VALUES.get(e.to_state)
        if value is not None:
            self._breaker_state.get(e.model).set(value)
        if not e.remote:
            self._breaker_transitions.get(e.model, e.from_state, e.to_state).inc()

    def _on_failover(self, e: FailoverEvent) -> None:
        self._failovers.get(e.from_model, e.to_model, self._reason(e.reason)).inc()

    def _on_skipped(self, e: ModelSkipped) -> None:
        self._skipped.get(e.model, self._reason(e.reason)).inc()

    def _on_rate_limit_wait(self, e: RateLimitWait) -> None:
        self._rate_limit_waits.get(e.model).inc()
        self._rate_limit_wait_seconds.get(e.model).observe(e.seconds)

    def _on_shed(self, e: RequestShed) -> None:
        self._sheds.get(e.model, self._reason(e.reason)).inc()

    def _on_quota(self, e: QuotaExhausted) -> None:
        self._quota_exhausted.get(e.model).inc()

    def _on_unavailable(self, e: ModelUnavailable) -> None:
        self._model_unavailable.get(e.model).inc()

    def _on_semantic(self, e: SemanticFailure) -> None:
        self._semantic_failures.get(e.model, self._reason(e.kind)).inc()

    def _on_auth(self, e: AuthFailure) -> None:
        self._auth_failures.get(e.model, e.status).inc()

    def _on_continuation(self, e: ContinuationEvent) -> None:
        self._continuations.get(e.from_model, e.to_model, self._reason(e.reason)).inc()
        if e.overlap_trimmed > 0:
            self._overlap_trimmed.get(e.to_model).inc(e.overlap_trimmed)

    def _on_active(self, e: ActiveModelChanged) -> None:
        new = e.model
        # A model outside every chain joins the chain of the model it replaces.
        index = self._chain_of.get(new)
        if index is None:
            index = self._chain_of.get(e.previous, 0) if e.previous is not None else 0
        current = self._active[index]
        if new == current:
            return
        self._active_children[current].set(0)
        if e.previous is not None and e.previous != current:
            previous_child = self._active_children.get(e.previous)
            if previous_child is not None:
                previous_child.set(0)
        child = self._active_children.get(new)
        if child is None:
            child = self._active_model.labels(new, self._roles.get(new, UNLISTED_ROLE))
            self._active_children[new] = child
        child.set(1)
        self._active[index] = new

    def _on_backend(self, e: StateBackendHealth) -> None:
        self._backend_health.get(e.backend).set(1 if e.healthy else 0)

    def _on_request_finished(self, e: RequestFinished) -> None:
        self._call_duration.get(e.operation, self._reason(e.outcome)).observe(e.duration)


def sample_events(chain: Sequence[str] = ("gemini-2.5-pro", "gemini-2.5-flash")) -> list[Event]:
    """One event of every type, for exposition checks (``promtool check metrics``)."""
    primary, secondary = chain[0], chain[1] if len(chain) > 1 else chain[0]
    return [
        AttemptFinished("r1", primary, "503", Category.TRANSIENT, 1.2, "generate"),
        RetryScheduled("r1", primary, Category.TRANSIENT, 0.4),
        AttemptFinished("r1", primary, "ok", None, 0.8, "generate"),
        RetryBudgetExhausted("r2", primary),
        BreakerTransition(primary, "closed", "open", "failure rate 0.6 >= 0.5", 1),
        FailoverEvent("r2", primary, secondary, "breaker_open"),
        ModelSkipped("r3", primary, "capability: input too long"),
        RateLimitWait("r4", secondary, 2.0),
        RequestShed("r5", secondary, "deadline", 3.0),
        QuotaExhausted(primary, 1_900_000_000.0),
        ModelUnavailable(primary, 1_900_000_000.0),
        SemanticFailure("r6", secondary, "schema"),
        AuthFailure(secondary, "403", "API key not valid"),
        ContinuationEvent("r7", primary, secondary, 120, "transient", 14),
        ActiveModelChanged(secondary, primary),
        StateBackendHealth("redis", False, "connection refused"),
        RequestFinished("r1", "generate", primary, "ok", 2.4, 0),
    ]


def sample_exposition(chain: Sequence[str] = ("gemini-2.5-pro", "gemini-2.5-flash")) -> str:
    """Text exposition of a ManagerMetrics that has seen one event of every type."""
    metrics = ManagerMetrics(chain)
    for event in sample_events(chain):
        metrics.handle(event)
    return metrics.render()[0].decode("utf-8")


if __name__ == "__main__":  # pragma: no cover - used by .ci/promtool-checks.sh
    import sys

    sys.stdout.write(sample_exposition())
