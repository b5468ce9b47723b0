"""The vocabulary an event uses to declare its log line and the metrics it feeds.

Every event class in :mod:`gemini_failover.resilience.events` carries
``spec: ClassVar[EventSpec]``: the log line (event name, level, fields) and the metric
updates (counter, histogram, gauge, with their labels). The structlog event logger and
the Prometheus metrics compile these declarations once, when they are built, into one
handler per event type; neither knows any event by name. This module is plain data:
it imports neither structlog nor prometheus_client.

A field or label value is a :data:`Source`: an attribute name (the value as it is) or
one of the small transforms below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, Final, Literal

from gemini_failover import pairs

Level = Literal["debug", "info", "warning", "error"]

#: Longest label value a :class:`Token` produces.
MAX_TOKEN_LEN: Final = 64


# -- sources: where a log field or a metric label value comes from ----------------------


@dataclass(frozen=True, slots=True)
class Rounded:
    """A number rounded to *digits* decimals."""

    attr: str
    digits: int


@dataclass(frozen=True, slots=True)
class AsStr:
    """``str()`` of the value (an enum's value); None stays None."""

    attr: str


@dataclass(frozen=True, slots=True)
class IsoTime:
    """A wall-clock timestamp (seconds since the epoch) as ISO 8601 UTC text."""

    attr: str


@dataclass(frozen=True, slots=True)
class Token:
    """A short label token: the text before the first colon, at most
    :data:`MAX_TOKEN_LEN` characters, ``"unknown"`` when empty. Reasons such as
    ``"capability: input too long"`` become ``"capability"``, so no free text from
    upstream ever becomes a metric label."""

    attr: str


@dataclass(frozen=True, slots=True)
class Lookup:
    """The value of *attr* looked up in *table*; None (no update) when absent."""

    attr: str
    table: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class Const:
    """A fixed value."""

    value: object


@dataclass(frozen=True, slots=True)
class Text:
    """*template* formatted with the event as ``e`` (``"HTTP {e.status}"``)."""

    template: str


@dataclass(frozen=True, slots=True)
class ModelName:
    """The bare model of a chain key (``vertex:gemini-2.5-pro`` -> ``gemini-2.5-pro``)."""

    attr: str


@dataclass(frozen=True, slots=True)
class EndpointName:
    """The endpoint of a chain key; a bare key is the default endpoint's (the metrics
    registry is told which that is; else ``gemini``)."""

    attr: str


Source = str | Rounded | AsStr | IsoTime | Token | Lookup | Const | Text | ModelName | EndpointName


def pair(attr: str, prefix: str = "") -> dict[str, Any]:
    """The ``model`` and ``endpoint`` labels (each after *prefix*) of the chain key in
    *attr*: metrics say which endpoint beside which model. (``Any``: the values are
    label sources, passed as ``**pair(...)`` beside keyword-only options.)"""
    return {f"{prefix}model": ModelName(attr), f"{prefix}endpoint": EndpointName(attr)}


def token(text: str) -> str:
    """See :class:`Token`."""
    return text.split(":", 1)[0].strip()[:MAX_TOKEN_LEN] or "unknown"


def iso_time(ts: float) -> str:
    try:
        return datetime.fromtimestamp(ts, tz=UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return str(ts)


def _as_str(value: object) -> str | None:
    return None if value is None else str(value)


def transform(source: Source) -> Callable[[Any], Any] | None:
    """What *source* does to the value of its attribute (None: nothing), for a
    source that reads one attribute."""
    if isinstance(source, str):
        return None
    if isinstance(source, Rounded):
        digits = source.digits
        return lambda v: round(v, digits)
    if isinstance(source, AsStr):
        return _as_str
    if isinstance(source, IsoTime):
        return iso_time
    if isinstance(source, Token):
        return token
    if isinstance(source, Lookup):
        return source.table.get
    if isinstance(source, ModelName):
        return pairs.model_of
    if isinstance(source, EndpointName):
        return lambda key: pairs.endpoint_of(key, pairs.IMPLICIT_ENDPOINT)
    raise TypeError(f"{source!r} reads no attribute")


def reader(source: Source) -> Callable[[Any], Any]:
    """A function that reads *source* from an event (built once, called per event)."""
    if isinstance(source, Const):
        value = source.value
        return lambda _e: value
    if isinstance(source, Text):
        template = source.template
        return lambda e: template.format(e=e)
    get = attrgetter(attr_of(source))
    fn = transform(source)
    return get if fn is None else (lambda e: fn(get(e)))


def source_attr(source: Source) -> str | None:
    """The event attribute *source* reads, if any (for checking declarations)."""
    if isinstance(source, str):
        return source
    if isinstance(source, Const | Text):
        return None
    return source.attr


def attr_of(source: Source) -> str:
    """The event attribute *source* reads; TypeError for a source that reads none."""
    attr = source_attr(source)
    if attr is None:
        raise TypeError(f"{source!r} reads no event attribute")
    return attr


# -- the log line -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ByValue:
    """A log level chosen by the value of one attribute."""

    attr: str
    levels: Mapping[object, Level]
    default: Level


class Log:
    """One structured log line per event: ``Log("failover", "warning", model="model")``.

    *changes_only* ``(key, value)`` logs an event only when its *value* attribute
    differs from the last one logged for the same *key* attribute (a repeated report
    is not a change). Events declared at ``debug`` cost nothing when debug is off.
    """

    __slots__ = ("changes_only", "event", "fields", "level")

    def __init__(
        self,
        event: str,
        level: Level | ByValue,
        /,
        *,
        changes_only: tuple[str, str] | None = None,
        **fields: Source,
    ) -> None:
        self.event: Final = event
        self.level: Final = level
        self.changes_only: Final = changes_only
        self.fields: Final[Mapping[str, Source]] = fields


# -- metric updates ---------------------------------------------------------------------


class _Update:
    """A metric update: the metric's sample name (without the prefix) and its labels,
    each label name mapped to the :data:`Source` of its value."""

    __slots__ = ("labels", "metric")
    kind: str = ""

    def __init__(self, metric: str, labels: Mapping[str, Source]) -> None:
        self.metric: Final = metric
        self.labels: Final = labels


class Count(_Update):
    """Increment a counter by one, or by the value of *by* (no series when it is 0).
    *unless* names a boolean attribute that, when true, skips the update."""

    __slots__ = ("by", "unless")
    kind = "counter"

    def __init__(
        self, metric: str, /, *, by: str | None = None, unless: str | None = None, **labels: Source
    ) -> None:
        super().__init__(metric, labels)
        self.by: Final = by
        self.unless: Final = unless


class Observe(_Update):
    """Observe the value of *value* in a histogram."""

    __slots__ = ("value",)
    kind = "histogram"

    def __init__(self, metric: str, value: str, /, **labels: Source) -> None:
        super().__init__(metric, labels)
        self.value: Final = value


class Set(_Update):
    """Set a gauge to *value* (a number or a bool); a value of None skips the update."""

    __slots__ = ("value",)
    kind = "gauge"

    def __init__(self, metric: str, value: Source, /, **labels: Source) -> None:
        super().__init__(metric, labels)
        self.value: Final = value


class Activate(_Update):
    """Make *model* the one model at 1 in its chain of a one-hot ``model``/``role``
    gauge (the other models of that chain go to 0); *previous* is the model it
    replaces, which places a model outside every chain."""

    __slots__ = ("model", "previous")
    kind = "gauge"

    def __init__(self, metric: str, /, *, model: str, previous: str) -> None:
        super().__init__(metric, {})
        self.model: Final = model
        self.previous: Final = previous


Update = Count | Observe | Set | Activate


@dataclass(frozen=True, slots=True)
class EventSpec:
    """What one event type logs and which metrics it feeds."""

    log: Log | None
    metrics: tuple[Update, ...] = ()


def attrs_read(spec: EventSpec) -> set[str]:
    """Every event attribute *spec* reads (to check it against the event's fields)."""
    sources: list[Source] = []
    if spec.log is not None:
        sources += spec.log.fields.values()
        if isinstance(spec.log.level, ByValue):
            sources.append(spec.log.level.attr)
        if spec.log.changes_only is not None:
            sources += spec.log.changes_only
    for update in spec.metrics:
        sources += update.labels.values()
        if isinstance(update, Count):
            sources += [a for a in (update.by, update.unless) if a is not None]
        elif isinstance(update, Observe | Set):
            sources.append(update.value)
        else:
            sources += [update.model, update.previous]
    return {a for s in sources if (a := source_attr(s)) is not None}
