"""Events declared once: every event class carries its log line and metric updates,
the declarations match the metrics table, and the logger and the metrics follow them."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from gemini_failover.observability.event_log import EventLogger
from gemini_failover.observability.metric_defs import (
    METRICS,
    PREFIX,
    MetricDef,
    declaration_problems,
)
from gemini_failover.observability.metrics import ManagerMetrics, sample_events
from gemini_failover.resilience import events
from gemini_failover.resilience.event_spec import (
    MAX_TOKEN_LEN,
    Activate,
    Const,
    Count,
    EventSpec,
    Log,
    Observe,
    Set,
    Token,
    token,
)
from gemini_failover.resilience.events import (
    EVENT_TYPES,
    AttemptFinished,
    Event,
    ModelSkipped,
)

PRO, FLASH = "gemini-2.5-pro", "gemini-2.5-flash"


def test_every_event_class_in_events_is_an_event_type() -> None:
    """A new event class left out of the ``Event`` union would never be dispatched."""
    classes = {
        cls
        for _, cls in inspect.getmembers(events, inspect.isclass)
        if cls.__module__ == events.__name__ and dataclasses.is_dataclass(cls)
    }
    assert classes == set(EVENT_TYPES) == set(typing.get_args(Event))


@pytest.mark.parametrize("kind", EVENT_TYPES, ids=lambda k: k.__name__)
def test_every_event_class_declares_its_log_line_and_metrics(kind: type[Event]) -> None:
    spec = vars(kind).get("spec")  # declared on the class itself, not inherited
    assert isinstance(spec, EventSpec)
    assert spec.log is not None
    assert spec.metrics, f"{kind.__name__} feeds no metric"


def test_declarations_match_the_metrics_table() -> None:
    assert declaration_problems() == []


def test_log_event_names_and_metric_names_are_unique() -> None:
    names = [k.spec.log.event for k in EVENT_TYPES if k.spec.log is not None]
    assert len(names) == len(set(names))
    assert len({m.name for m in METRICS}) == len(METRICS)


# -- the check fails when a declaration is wrong --------------------------------------------


@dataclass(frozen=True, slots=True)
class Forgotten:
    """An event whose declaration names a metric nobody added to the table."""

    model: str

    spec: ClassVar[EventSpec] = EventSpec(
        Log("forgotten", "info", model="model"),
        (Count("forgotten_total", model="model"),),
    )


@dataclass(frozen=True, slots=True)
class Mislabelled:
    model: str
    seconds: float

    spec: ClassVar[EventSpec] = EventSpec(
        Log("mislabelled", "info", modle="modle"),
        (
            Count("requests_total", model="model"),  # status_code missing
            Observe("quota_exhausted_total", "seconds", model="model"),  # not a histogram
            Set("state_backend_healthy", "seconds", backend=Const("redis")),
        ),
    )


@dataclass(frozen=True, slots=True)
class Undeclared:
    model: str


def test_the_check_names_every_kind_of_mistake() -> None:
    unfed = MetricDef("never_fed_total", "counter", "Nothing feeds it.", ("model",))
    problems = declaration_problems([Forgotten, Mislabelled, Undeclared], (*METRICS, unfed))
    text = "\n".join(problems)
    assert "Forgotten: names 'forgotten_total', which is not in the metrics table" in text
    assert "Mislabelled: reads 'modle', which is not a field" in text
    assert "Mislabelled: labels ['model'] do not match 'requests_total'" in text
    assert "Observe needs a histogram, 'quota_exhausted_total' is a counter" in text
    assert "labels ['backend'] of 'state_backend_healthy' read no event attribute" in text
    assert "Undeclared: no spec declared" in text
    assert "'never_fed_total': no event feeds it" in text


def test_a_declaration_naming_a_missing_metric_fails_construction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(AttemptFinished, "spec", Forgotten.spec)
    with pytest.raises(ValueError, match="forgotten_total"):
        ManagerMetrics([PRO, FLASH])


def test_activate_needs_the_model_and_role_gauge() -> None:
    @dataclass
    class Switched:
        model: str
        previous: str
        spec: ClassVar[EventSpec] = EventSpec(
            None, (Activate("circuit_breaker_state", model="model", previous="x"),)
        )

    problems = declaration_problems([Switched], METRICS)
    assert any("do not match 'circuit_breaker_state'" in p for p in problems)
    assert any("reads 'x', which is not a field" in p for p in problems)


# -- the logger and the metrics follow the declarations -------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **kw: self.calls.append((level, event, kw))


@pytest.mark.parametrize("event", sample_events(), ids=lambda e: type(e).__name__)
def test_the_logger_writes_the_declared_name_and_fields(event: Event) -> None:
    recorder = Recorder()
    EventLogger(recorder).handle(event)
    log = type(event).spec.log
    assert log is not None
    [(_, name, fields)] = recorder.calls
    assert name == log.event
    assert list(fields) == list(log.fields)


@pytest.mark.parametrize("event", sample_events(), ids=lambda e: type(e).__name__)
def test_each_declared_counter_or_histogram_moves(event: Event) -> None:
    m = ManagerMetrics([PRO, FLASH])
    families = {f.name: f for f in m.registry.collect()}

    def total(name: str) -> float:
        family = families[f"{PREFIX}_{name}".removesuffix("_total")]
        return sum(s.value for s in family.samples if s.name.endswith(("_total", "_count", "_sum")))

    counted = [u.metric for u in type(event).spec.metrics if isinstance(u, Count | Observe)]
    before = {name: total(name) for name in counted}
    m.handle(event)
    families = {f.name: f for f in m.registry.collect()}
    for name in counted:
        assert total(name) > before[name], name


# -- label tokens --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("capability: input of 2,000,000 tokens > limit", "capability"),
        ("breaker_open", "breaker_open"),
        ("  spill  ", "spill"),
        ("", "unknown"),
        (": nothing before the colon", "unknown"),
        ("x" * 100, "x" * MAX_TOKEN_LEN),
    ],
)
def test_token(text: str, expected: str) -> None:
    assert token(text) == expected


def test_many_distinct_free_text_reasons_make_one_series() -> None:
    """The per-update cache of children is bounded; past its bound events still count."""
    m = ManagerMetrics([PRO, FLASH])
    n = 5000
    for i in range(n):
        m.handle(ModelSkipped(f"r{i}", PRO, f"capability: input of {i} tokens > limit"))
    name = f"{PREFIX}_skipped_models_total"
    assert (
        m.registry.get_sample_value(
            name, {"model": PRO, "endpoint": "gemini", "reason": "capability"}
        )
        == n
    )
    text = m.render()[0].decode()
    assert text.count(f"{name}{{") == 1


def test_token_declaration_is_used_for_free_text_labels() -> None:
    """Every label fed from a free-text attribute (reason, kind, outcome) is a Token."""
    free_text = {"reason", "kind", "outcome"}
    for kind in EVENT_TYPES:
        for update in kind.spec.metrics:
            for label, source in update.labels.items():
                if isinstance(source, str) and source in free_text:
                    pytest.fail(f"{kind.__name__}: label {label} takes {source!r} verbatim")
                if isinstance(source, Token):
                    assert source.attr in free_text
