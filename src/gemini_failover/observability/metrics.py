"""Prometheus metrics for one failover manager, fed by its :class:`EventBus`.

``ManagerMetrics`` owns a private ``CollectorRegistry`` (never the global one), so two
managers in one process (tests, benchmarks, a server and its self-check) never collide
and a test can assert exact values. It is an EventBus subscriber: the manager publishes
typed events and knows nothing about Prometheus.

The metrics are the table in :mod:`~gemini_failover.observability.metric_defs`; what
each event does to them is the event's own declaration (``spec.metrics``).
``handle`` runs synchronously on the hot path of every request, so the declarations
are compiled once, at construction, into one function per event type that reads the
label values with ``operator.attrgetter`` and caches the labelled child of every
metric it touches (``labels()`` validates and locks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import attrgetter
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from gemini_failover import pairs
from gemini_failover.observability.metric_defs import (
    ATTEMPT_BUCKETS,
    METRICS,
    METRICS_BY_NAME,
    PREFIX,
    REQUEST_BUCKETS,
    WAIT_BUCKETS,
    MetricDef,
    update_problems,
)
from gemini_failover.resilience.errors import Category
from gemini_failover.resilience.event_spec import (
    Activate,
    EndpointName,
    Observe,
    Set,
    Source,
    Update,
    attr_of,
    reader,
    transform,
)
from gemini_failover.resilience.events import (
    BREAKER_STATE_VALUES,
    EVENT_TYPES,
    ActiveModelChanged,
    AdmissionChanged,
    AttemptFinished,
    AuthFailure,
    BreakerTransition,
    CapabilityRequested,
    ContinuationEvent,
    Event,
    FailoverEvent,
    GateWaiters,
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

__all__ = [
    "ATTEMPT_BUCKETS",
    "BREAKER_STATE_VALUES",
    "PREFIX",
    "REQUEST_BUCKETS",
    "UNLISTED_ROLE",
    "WAIT_BUCKETS",
    "ManagerMetrics",
    "sample_events",
    "sample_exposition",
]

#: Role of a model that becomes active without being in the configured chain.
UNLISTED_ROLE: Final = "unlisted"

_KINDS: Final = {"counter": Counter, "histogram": Histogram, "gauge": Gauge}

_Handler = Callable[[Any], None]


class _Family:
    """One metric and the cache of its labelled children, by label values."""

    __slots__ = ("cache", "definition", "metric")

    def __init__(self, definition: MetricDef, registry: CollectorRegistry) -> None:
        extra = {} if definition.buckets is None else {"buckets": definition.buckets}
        self.definition: Final = definition
        self.metric: Final[Any] = _KINDS[definition.kind](
            f"{PREFIX}_{definition.name}",
            definition.help,
            definition.labels,
            registry=registry,
            **extra,
        )
        self.cache: Final[dict[tuple[str, ...], Any]] = {}

    def child(self, key: tuple[str, ...]) -> Any:
        child = self.cache.get(key)
        if child is None:
            child = self.cache[key] = self.metric.labels(*key)
        return child


class _ActiveModels:
    """The one-hot ``active_model`` gauge: one model at 1 in each chain."""

    def __init__(
        self, family: _Family, chains: Sequence[tuple[str, ...]], default_endpoint: str
    ) -> None:
        self._family = family
        self._default_endpoint = default_endpoint
        self._roles = {m: role_for(i) for c in chains for i, m in enumerate(c)}
        self._chain_of = {m: n for n, c in enumerate(chains) for m in c}
        for model in self._roles:
            family.child(self._key(model))
        # The active model of each chain; every chain starts on its primary.
        self.active: list[str] = [c[0] for c in chains]
        for primary in self.active:
            family.child(self._key(primary)).set(1)

    def _key(self, key: str) -> tuple[str, str, str]:
        endpoint = pairs.endpoint_of(key, self._default_endpoint)
        return (pairs.model_of(key), endpoint, self._roles.get(key, UNLISTED_ROLE))

    def switch(self, new: str, previous: str | None) -> None:
        # A model outside every chain joins the chain of the model it replaces.
        index = self._chain_of.get(new)
        if index is None:
            index = self._chain_of.get(previous, 0) if previous is not None else 0
        current = self.active[index]
        if new == current:
            return
        self._family.child(self._key(current)).set(0)
        if previous is not None and previous != current:
            stale = self._family.cache.get(self._key(previous))  # no series for a stranger
            if stale is not None:
                stale.set(0)
        self._family.child(self._key(new)).set(1)
        self.active[index] = new


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


class ManagerMetrics:
    """Prometheus metrics of one failover manager; subscribe ``handle`` to its EventBus."""

    def __init__(
        self,
        chain: Sequence[str],
        registry: CollectorRegistry | None = None,
        *,
        initial_backend: str | None = "memory",
        extra_chains: Sequence[Sequence[str]] = (),
        default_endpoint: str = pairs.IMPLICIT_ENDPOINT,
    ) -> None:
        """*chain* is the model chain, primary first. *extra_chains* are further chains
        whose events reach the same metrics (e.g. the embedding chain): each has its own
        active model and its own roles. *initial_backend* is the state backend reported
        healthy until the first :class:`StateBackendHealth` event (None: no series).
        Chain entries are keys (``endpoint:model``, or a bare model on
        *default_endpoint*): metrics label the bare model and its endpoint apart."""
        self._default_endpoint = default_endpoint
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
        self._families = {d.name: _Family(d, self.registry) for d in METRICS}
        self._active = _ActiveModels(self._families["active_model"], chains, default_endpoint)
        for family in self._families.values():
            for key in every:
                pair = (pairs.model_of(key), pairs.endpoint_of(key, default_endpoint))
                for tail in family.definition.per_model:
                    family.child((*pair, *tail))
        if initial_backend is not None:
            self._families["state_backend_healthy"].child((initial_backend,)).set(1)
        self._handlers: dict[type[Event], _Handler] = {}
        for kind in EVENT_TYPES:
            updates = [self._compile(kind, u) for u in kind.spec.metrics]
            if updates:
                self._handlers[kind] = _all(updates)

    @property
    def kinds(self) -> tuple[type[Event], ...]:
        """The events that feed a metric (the others need not be delivered)."""
        return tuple(self._handlers)

    def handle(self, event: Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    @property
    def active_model(self) -> str:
        """The model the gauge reports as taking traffic (of the first chain)."""
        return self._active.active[0]

    @property
    def active_models(self) -> tuple[str, ...]:
        """The active model of every chain, in the order the chains were given."""
        return tuple(self._active.active)

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

    def _compile(self, kind: type[Event], update: Update) -> _Handler:
        """The function that applies one declared update to an event (built once)."""
        problems = update_problems(update, METRICS_BY_NAME)
        if problems:
            raise ValueError(f"{kind.__name__} declares a bad metric update: {problems}")
        if isinstance(update, Activate):
            switch = self._active.switch
            model_of, previous_of = attrgetter(update.model), attrgetter(update.previous)
            return lambda e: switch(model_of(e), previous_of(e))
        raw_of, known = _children(
            self._families[update.metric], update.labels, self._default_endpoint
        )
        if isinstance(update, Observe):
            value_of = attrgetter(update.value)

            def observe(e: Any) -> None:
                known[raw_of(e)].observe(value_of(e))

            return observe
        if isinstance(update, Set):
            gauge_value = reader(update.value)

            def set_gauge(e: Any) -> None:
                value = gauge_value(e)
                if value is not None:
                    known[raw_of(e)].set(value)

            return set_gauge
        if update.by is None and update.unless is None:

            def inc(e: Any) -> None:
                known[raw_of(e)].inc()

            return inc
        skip = attrgetter(update.unless) if update.unless is not None else (lambda _e: False)
        if update.by is None:

            def inc_unless(e: Any) -> None:
                if not skip(e):
                    known[raw_of(e)].inc()

            return inc_unless
        amount_of = attrgetter(update.by)

        def inc_by(e: Any) -> None:
            amount = amount_of(e)
            if amount > 0 and not skip(e):  # no update, and no series, for 0
                known[raw_of(e)].inc(amount)

        return inc_by


#: Children cached per update by the raw attribute values, so that the label
#: transforms (reason tokens, ...) run once per distinct value; bounded, since a raw
#: value may be free text ("capability: input of 2,000,000 tokens").
_MAX_KNOWN: Final = 4096


class _Known(dict[Any, Any]):
    """The children of one update, by the raw attribute values its labels come from;
    a miss (``__missing__``, so a hit is one dict subscript) applies the label
    transforms and finds the child."""

    __slots__ = ("_family", "_single", "_transforms")

    def __init__(self, family: _Family, transforms: list[Callable[[Any], Any] | None]) -> None:
        super().__init__()
        self._family = family
        self._transforms = transforms
        self._single = len(transforms) == 1

    def __missing__(self, raw: Any) -> Any:
        values = (raw,) if self._single else raw
        key = tuple(v if f is None else f(v) for f, v in zip(self._transforms, values, strict=True))
        child = self._family.child(key)
        if len(self) < _MAX_KNOWN:
            self[raw] = child
        return child


def _children(
    family: _Family, labels: Mapping[str, Source], default_endpoint: str
) -> tuple[Callable[[Any], Any], _Known]:
    """For one update of *family*: a reader of the raw attribute values its labels
    come from (one ``attrgetter``) and the cache of children by those values."""
    ordered = [labels[name] for name in family.definition.labels]
    attrs = [attr_of(s) for s in ordered]

    def endpoint(key: str) -> str:
        return pairs.endpoint_of(key, default_endpoint)

    transforms = [endpoint if isinstance(s, EndpointName) else transform(s) for s in ordered]
    return attrgetter(*attrs), _Known(family, transforms)


def _all(handlers: list[_Handler]) -> _Handler:
    if len(handlers) == 1:
        return handlers[0]
    first, *rest = handlers
    if len(rest) == 1:
        second = rest[0]

        def both(e: Any) -> None:
            first(e)
            second(e)

        return both

    def each(e: Any) -> None:
        for handler in handlers:
            handler(e)

    return each


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
        AdmissionChanged(secondary, 8, 8, 3),
        GateWaiters(secondary, 5),
        RequestShed("r5", secondary, "deadline", 3.0),
        QuotaExhausted(primary, 1_900_000_000.0),
        ModelUnavailable(primary, 1_900_000_000.0),
        SemanticFailure("r6", secondary, "schema"),
        AuthFailure(secondary, "403", "API key not valid"),
        ContinuationEvent("r7", primary, secondary, 120, "transient", 14),
        ActiveModelChanged(secondary, primary),
        StateBackendHealth("redis", False, "connection refused"),
        CapabilityRequested("r1", "google_search", primary, "ok"),
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
