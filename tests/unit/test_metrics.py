"""ManagerMetrics: exact sample values after event sequences, and the exposition."""

from __future__ import annotations

import re
import shutil
import subprocess
import typing
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from gemini_failover.observability.metrics import (
    ManagerMetrics,
    sample_events,
    sample_exposition,
)
from gemini_failover.resilience.errors import Category
from gemini_failover.resilience.events import (
    ActiveModelChanged,
    AttemptFinished,
    AuthFailure,
    BreakerTransition,
    ContinuationEvent,
    Event,
    EventBus,
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

PRO, FLASH, LITE = "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite"
CHAIN = (PRO, FLASH, LITE)
P = "dualmodelmanager"
ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"

#: The names operators paste into dashboards (families as the parser reports them:
#: counters without their ``_total`` suffix).
EXPECTED_FAMILIES = {
    f"{P}_active_model": "gauge",
    f"{P}_failover_events": "counter",
    f"{P}_requests": "counter",
    f"{P}_request_latency_seconds": "histogram",
    f"{P}_call_duration_seconds": "histogram",
    f"{P}_capability_requests": "counter",
    f"{P}_retries": "counter",
    f"{P}_retry_budget_exhausted": "counter",
    f"{P}_circuit_breaker_state": "gauge",
    f"{P}_circuit_breaker_transitions": "counter",
    f"{P}_rate_limit_waits": "counter",
    f"{P}_rate_limit_wait_seconds": "histogram",
    f"{P}_admission_limit": "gauge",
    f"{P}_admission_in_flight": "gauge",
    f"{P}_admission_queued": "gauge",
    f"{P}_release_gate_waiters": "gauge",
    f"{P}_shed_requests": "counter",
    f"{P}_quota_exhausted": "counter",
    f"{P}_model_unavailable": "counter",
    f"{P}_skipped_models": "counter",
    f"{P}_auth_failures": "counter",
    f"{P}_semantic_failures": "counter",
    f"{P}_continuations": "counter",
    f"{P}_continuation_overlap_trimmed_characters": "counter",
    f"{P}_state_backend_healthy": "gauge",
}


@pytest.fixture
def metrics() -> ManagerMetrics:
    return ManagerMetrics(CHAIN)


def value(m: ManagerMetrics, name: str, **labels: str) -> float | None:
    """A sample; a model label without its endpoint means the default endpoint's."""
    for prefix in ("", "from_", "to_"):
        if f"{prefix}model" in labels:
            labels.setdefault(f"{prefix}endpoint", "gemini")
    return m.registry.get_sample_value(name, labels)


def actives(m: ManagerMetrics) -> list[float | None]:
    return [value(m, f"{P}_active_model", model=x, role=role_for(i)) for i, x in enumerate(CHAIN)]


# -- construction -------------------------------------------------------------------------


def test_initial_series_exist_with_primary_active(metrics: ManagerMetrics) -> None:
    assert value(metrics, f"{P}_active_model", model=PRO, role="primary") == 1
    assert value(metrics, f"{P}_active_model", model=FLASH, role="secondary") == 0
    assert value(metrics, f"{P}_active_model", model=LITE, role="tertiary") == 0
    for model in CHAIN:
        assert value(metrics, f"{P}_circuit_breaker_state", model=model) == 0
        assert value(metrics, f"{P}_requests_total", model=model, status_code="ok") == 0
        for status in ("401", "403"):
            assert value(metrics, f"{P}_auth_failures_total", model=model, status_code=status) == 0
        for reason in ("rate_limited", "deadline", "overloaded"):
            assert value(metrics, f"{P}_shed_requests_total", model=model, reason=reason) == 0
        labels = {"model": model, "from_state": "closed", "to_state": "open"}
        assert value(metrics, f"{P}_circuit_breaker_transitions_total", **labels) == 0
    assert value(metrics, f"{P}_state_backend_healthy", backend="memory") == 1
    assert metrics.active_model == PRO


def test_roles_by_chain_position() -> None:
    chain = [f"m{i}" for i in range(7)]
    m = ManagerMetrics(chain, initial_backend=None)
    expected = ["primary", "secondary", "tertiary", "quaternary", "fallback-5", "fallback-6"]
    for model, role in zip(chain, expected, strict=False):
        assert value(m, f"{P}_active_model", model=model, role=role) is not None
    assert role_for(6) == "fallback-7"
    assert value(m, f"{P}_state_backend_healthy", backend="memory") is None
    with pytest.raises(ValueError, match="position"):
        role_for(-1)


def test_each_instance_has_its_own_registry() -> None:
    a, b = ManagerMetrics(CHAIN), ManagerMetrics(CHAIN)
    a.handle(AttemptFinished("r", PRO, "503", Category.TRANSIENT, 0.1, "generate"))
    assert value(a, f"{P}_requests_total", model=PRO, status_code="503") == 1
    assert value(b, f"{P}_requests_total", model=PRO, status_code="503") is None
    # nothing leaks into the process-global registry
    assert REGISTRY.get_sample_value(f"{P}_active_model", {"model": PRO, "role": "primary"}) is None


def test_explicit_registry_is_used() -> None:
    registry = CollectorRegistry()
    m = ManagerMetrics(CHAIN, registry)
    assert m.registry is registry
    primary = {"model": PRO, "endpoint": "gemini", "role": "primary"}
    assert registry.get_sample_value(f"{P}_active_model", primary) == 1


@pytest.mark.parametrize("chain", [[], [PRO, FLASH, PRO]])
def test_bad_chains_are_rejected(chain: list[str]) -> None:
    with pytest.raises(ValueError, match="chain"):
        ManagerMetrics(chain)


# -- active model -------------------------------------------------------------------------


def test_active_model_switch_sets_old_to_0_and_new_to_1(metrics: ManagerMetrics) -> None:
    metrics.handle(ActiveModelChanged(FLASH, PRO))
    assert value(metrics, f"{P}_active_model", model=PRO, role="primary") == 0
    assert value(metrics, f"{P}_active_model", model=FLASH, role="secondary") == 1
    assert value(metrics, f"{P}_active_model", model=LITE, role="tertiary") == 0
    metrics.handle(ActiveModelChanged(LITE, FLASH))
    assert value(metrics, f"{P}_active_model", model=FLASH, role="secondary") == 0
    assert value(metrics, f"{P}_active_model", model=LITE, role="tertiary") == 1
    metrics.handle(ActiveModelChanged(PRO, LITE))
    assert actives(metrics) == [1, 0, 0]
    assert metrics.active_model == PRO


def test_active_model_uses_own_state_when_previous_is_wrong(metrics: ManagerMetrics) -> None:
    metrics.handle(ActiveModelChanged(FLASH, None))
    metrics.handle(ActiveModelChanged(LITE, PRO))  # stale "previous": FLASH must still go to 0
    assert actives(metrics) == [0, 0, 1]


def test_repeated_active_model_is_a_no_op(metrics: ManagerMetrics) -> None:
    metrics.handle(ActiveModelChanged(PRO, None))
    assert value(metrics, f"{P}_active_model", model=PRO, role="primary") == 1


def test_model_outside_the_chain_is_unlisted(metrics: ManagerMetrics) -> None:
    metrics.handle(ActiveModelChanged("gemini-exp", PRO))
    assert value(metrics, f"{P}_active_model", model="gemini-exp", role="unlisted") == 1
    assert value(metrics, f"{P}_active_model", model=PRO, role="primary") == 0


def test_extra_chain_keeps_its_own_active_model() -> None:
    m = ManagerMetrics(CHAIN, extra_chains=[["gemini-embedding-001", "text-embedding-004"]])
    assert value(m, f"{P}_active_model", model="gemini-embedding-001", role="primary") == 1
    m.handle(ActiveModelChanged("text-embedding-004", "gemini-embedding-001"))
    assert value(m, f"{P}_active_model", model="text-embedding-004", role="secondary") == 1
    assert value(m, f"{P}_active_model", model="gemini-embedding-001", role="primary") == 0
    # the generation chain is untouched
    assert value(m, f"{P}_active_model", model=PRO, role="primary") == 1
    assert m.active_models == (PRO, "text-embedding-004")


# -- counters and histograms -------------------------------------------------------------


def test_attempts_count_by_model_and_status_and_observe_latency(metrics: ManagerMetrics) -> None:
    metrics.handle(AttemptFinished("r1", PRO, "503", Category.TRANSIENT, 1.5, "generate"))
    metrics.handle(AttemptFinished("r1", PRO, "503", Category.TRANSIENT, 0.7, "generate"))
    metrics.handle(AttemptFinished("r1", PRO, "ok", None, 3.0, "generate"))
    metrics.handle(AttemptFinished("r2", FLASH, "timeout", Category.TIMEOUT, 30.0, "stream"))
    assert value(metrics, f"{P}_requests_total", model=PRO, status_code="503") == 2
    assert value(metrics, f"{P}_requests_total", model=PRO, status_code="ok") == 1
    assert value(metrics, f"{P}_requests_total", model=FLASH, status_code="timeout") == 1
    assert value(metrics, f"{P}_requests_total", model=FLASH, status_code="ok") == 0
    h = f"{P}_request_latency_seconds"
    assert value(metrics, f"{h}_count", model=PRO, operation="generate") == 3
    assert value(metrics, f"{h}_sum", model=PRO, operation="generate") == pytest.approx(5.2)
    assert value(metrics, f"{h}_bucket", model=PRO, operation="generate", le="1.0") == 1
    assert value(metrics, f"{h}_bucket", model=PRO, operation="generate", le="2.5") == 2
    assert value(metrics, f"{h}_bucket", model=FLASH, operation="stream", le="20.0") == 0
    assert value(metrics, f"{h}_bucket", model=FLASH, operation="stream", le="30.0") == 1
    assert value(metrics, f"{h}_bucket", model=FLASH, operation="stream", le="120.0") == 1


def test_latency_buckets_span_50ms_to_120s(metrics: ManagerMetrics) -> None:
    metrics.handle(AttemptFinished("r", PRO, "ok", None, 0.01, "embed"))
    h = f"{P}_request_latency_seconds_bucket"
    assert value(metrics, h, model=PRO, operation="embed", le="0.05") == 1
    assert value(metrics, h, model=PRO, operation="embed", le="120.0") == 1
    assert value(metrics, h, model=PRO, operation="embed", le="180.0") is None


def test_failovers_by_from_to_and_reason(metrics: ManagerMetrics) -> None:
    metrics.handle(FailoverEvent("r1", PRO, FLASH, "transient"))
    metrics.handle(FailoverEvent("r2", PRO, FLASH, "transient"))
    metrics.handle(FailoverEvent("r3", FLASH, LITE, "quota_exhausted"))
    c = f"{P}_failover_events_total"
    assert value(metrics, c, from_model=PRO, to_model=FLASH, reason="transient") == 2
    assert value(metrics, c, from_model=FLASH, to_model=LITE, reason="quota_exhausted") == 1
    assert value(metrics, c, from_model=PRO, to_model=LITE, reason="transient") is None


def test_free_text_reasons_are_cut_to_a_token(metrics: ManagerMetrics) -> None:
    metrics.handle(ModelSkipped("r1", PRO, "capability: input of 2,000,000 tokens > limit"))
    metrics.handle(ModelSkipped("r2", PRO, "capability: needs structured output"))
    metrics.handle(ModelSkipped("r3", FLASH, "breaker_open"))
    c = f"{P}_skipped_models_total"
    assert value(metrics, c, model=PRO, reason="capability") == 2
    assert value(metrics, c, model=FLASH, reason="breaker_open") == 1
    exposition = metrics.render()[0].decode()
    assert "2,000,000" not in exposition
    assert "structured output" not in exposition


def test_breaker_gauge_and_transitions(metrics: ManagerMetrics) -> None:
    g, c = f"{P}_circuit_breaker_state", f"{P}_circuit_breaker_transitions_total"
    metrics.handle(BreakerTransition(PRO, "closed", "open", "5 consecutive failures", 1))
    assert value(metrics, g, model=PRO) == 2
    metrics.handle(BreakerTransition(PRO, "open", "half_open", "break elapsed", 1))
    assert value(metrics, g, model=PRO) == 1
    metrics.handle(BreakerTransition(PRO, "half_open", "open", "probe failed", 2))
    assert value(metrics, g, model=PRO) == 2
    metrics.handle(BreakerTransition(PRO, "open", "half_open", "break elapsed", 2))
    metrics.handle(BreakerTransition(PRO, "half_open", "closed", "probes ok", 2))
    assert value(metrics, g, model=PRO) == 0
    assert value(metrics, g, model=FLASH) == 0
    assert value(metrics, c, model=PRO, from_state="closed", to_state="open") == 1
    assert value(metrics, c, model=PRO, from_state="half_open", to_state="open") == 1
    assert value(metrics, c, model=PRO, from_state="open", to_state="half_open") == 2
    assert value(metrics, c, model=PRO, from_state="half_open", to_state="closed") == 1


def test_remote_breaker_transition_moves_gauge_but_is_not_counted(metrics: ManagerMetrics) -> None:
    metrics.handle(BreakerTransition(FLASH, "closed", "open", "remote", 3, remote=True))
    assert value(metrics, f"{P}_circuit_breaker_state", model=FLASH) == 2
    labels = {"model": FLASH, "from_state": "closed", "to_state": "open"}
    assert value(metrics, f"{P}_circuit_breaker_transitions_total", **labels) == 0


def test_unknown_breaker_state_leaves_the_gauge(metrics: ManagerMetrics) -> None:
    metrics.handle(BreakerTransition(PRO, "closed", "open", "x", 1))
    metrics.handle(BreakerTransition(PRO, "open", "forced_weird", "x", 1))
    assert value(metrics, f"{P}_circuit_breaker_state", model=PRO) == 2


def test_retries_and_budget(metrics: ManagerMetrics) -> None:
    metrics.handle(RetryScheduled("r", PRO, Category.TRANSIENT, 0.2))
    metrics.handle(RetryScheduled("r", PRO, Category.TRANSIENT, 0.4))
    metrics.handle(RetryScheduled("r", PRO, Category.SEMANTIC, 0.1))
    metrics.handle(RetryBudgetExhausted("r", FLASH))
    assert value(metrics, f"{P}_retries_total", model=PRO, category="transient") == 2
    assert value(metrics, f"{P}_retries_total", model=PRO, category="semantic") == 1
    assert value(metrics, f"{P}_retry_budget_exhausted_total", model=FLASH) == 1


def test_rate_limit_waits_and_sheds(metrics: ManagerMetrics) -> None:
    metrics.handle(RateLimitWait("r", PRO, 7.0))
    metrics.handle(RateLimitWait("r", PRO, 0.3))
    metrics.handle(RequestShed("r2", PRO, "deadline", 12.0))
    metrics.handle(RequestShed("r3", PRO, "rate_limited", None))
    assert value(metrics, f"{P}_rate_limit_waits_total", model=PRO) == 2
    assert value(metrics, f"{P}_rate_limit_wait_seconds_count", model=PRO) == 2
    assert value(metrics, f"{P}_rate_limit_wait_seconds_sum", model=PRO) == pytest.approx(7.3)
    assert value(metrics, f"{P}_rate_limit_wait_seconds_bucket", model=PRO, le="5.0") == 1
    assert value(metrics, f"{P}_shed_requests_total", model=PRO, reason="deadline") == 1
    assert value(metrics, f"{P}_shed_requests_total", model=PRO, reason="rate_limited") == 1
    assert value(metrics, f"{P}_shed_requests_total", model=PRO, reason="overloaded") == 0


def test_quota_unavailable_semantic_and_auth(metrics: ManagerMetrics) -> None:
    metrics.handle(QuotaExhausted(PRO, 1.9e9))
    metrics.handle(ModelUnavailable(LITE, 1.9e9))
    metrics.handle(SemanticFailure("r", FLASH, "empty"))
    metrics.handle(SemanticFailure("r", FLASH, "schema"))
    metrics.handle(SemanticFailure("r", FLASH, "schema"))
    metrics.handle(AuthFailure(PRO, "401", "API key not valid"))
    assert value(metrics, f"{P}_quota_exhausted_total", model=PRO) == 1
    assert value(metrics, f"{P}_model_unavailable_total", model=LITE) == 1
    assert value(metrics, f"{P}_semantic_failures_total", model=FLASH, kind="empty") == 1
    assert value(metrics, f"{P}_semantic_failures_total", model=FLASH, kind="schema") == 2
    assert value(metrics, f"{P}_auth_failures_total", model=PRO, status_code="401") == 1
    assert value(metrics, f"{P}_auth_failures_total", model=PRO, status_code="403") == 0
    # the upstream message is never a label
    assert "not valid" not in metrics.render()[0].decode()


def test_continuations(metrics: ManagerMetrics) -> None:
    metrics.handle(ContinuationEvent("r", PRO, FLASH, 300, "transient", 25))
    metrics.handle(ContinuationEvent("r", PRO, FLASH, 900, "transient", 0))
    c = f"{P}_continuations_total"
    assert value(metrics, c, from_model=PRO, to_model=FLASH, reason="transient") == 2
    trimmed = f"{P}_continuation_overlap_trimmed_characters_total"
    assert value(metrics, trimmed, to_model=FLASH) == 25


def test_state_backend_health(metrics: ManagerMetrics) -> None:
    metrics.handle(StateBackendHealth("redis", False, "connection refused"))
    assert value(metrics, f"{P}_state_backend_healthy", backend="redis") == 0
    metrics.handle(StateBackendHealth("redis", True, "ok"))
    assert value(metrics, f"{P}_state_backend_healthy", backend="redis") == 1


def test_request_finished_observes_end_to_end_duration(metrics: ManagerMetrics) -> None:
    metrics.handle(RequestFinished("r1", "generate", FLASH, "ok", 4.0, 1))
    metrics.handle(RequestFinished("r2", "generate", None, "transient", 95.0, 2))
    h = f"{P}_call_duration_seconds"
    assert value(metrics, f"{h}_count", operation="generate", outcome="ok") == 1
    assert value(metrics, f"{h}_count", operation="generate", outcome="transient") == 1
    assert value(metrics, f"{h}_bucket", operation="generate", outcome="transient", le="90.0") == 0
    assert value(metrics, f"{h}_bucket", operation="generate", outcome="transient", le="120.0") == 1
    assert value(metrics, f"{h}_bucket", operation="generate", outcome="transient", le="300.0") == 1


def test_works_as_an_event_bus_subscriber(metrics: ManagerMetrics) -> None:
    bus = EventBus()
    unsubscribe = bus.subscribe(metrics.handle)
    bus.publish(FailoverEvent("r", PRO, FLASH, "timeout"))
    unsubscribe()
    bus.publish(FailoverEvent("r", PRO, FLASH, "timeout"))
    c = f"{P}_failover_events_total"
    assert value(metrics, c, from_model=PRO, to_model=FLASH, reason="timeout") == 1


def test_unknown_event_types_are_ignored(metrics: ManagerMetrics) -> None:
    before = metrics.render()[0]
    metrics.handle(object())  # type: ignore[arg-type]  # deliberately not an event
    assert metrics.render()[0] == before


# -- every event type, and the exposition -----------------------------------------------


def test_sample_events_cover_every_event_type() -> None:
    assert {type(e) for e in sample_events()} == set(typing.get_args(Event))


@pytest.mark.parametrize("event", sample_events(), ids=lambda e: type(e).__name__)
def test_every_event_type_changes_the_exposition(event: Event) -> None:
    m = ManagerMetrics(("gemini-2.5-pro", "gemini-2.5-flash"))
    before = m.render()[0]
    m.handle(event)
    assert m.render()[0] != before


def test_exposition_names_types_and_help() -> None:
    families = {f.name: f for f in text_string_to_metric_families(sample_exposition())}
    assert {name: f.type for name, f in families.items()} == EXPECTED_FAMILIES
    for family in families.values():
        assert family.documentation, family.name
        if family.type == "histogram":
            assert family.name.endswith("_seconds")
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples), family.name


def test_render_text_format_without_created_series() -> None:
    m = ManagerMetrics(CHAIN)
    m.handle(FailoverEvent("r", PRO, FLASH, "transient"))
    body, content_type = m.render()
    assert content_type.startswith("text/plain")
    assert "version=0.0.4" in content_type
    text = body.decode()
    assert "_created" not in text
    labels = (
        f'from_endpoint="gemini",from_model="{PRO}",reason="transient",'
        f'to_endpoint="gemini",to_model="{FLASH}"'
    )
    assert f"{P}_failover_events_total{{{labels}}} 1.0" in text


def test_render_openmetrics_when_asked() -> None:
    body, content_type = ManagerMetrics(CHAIN).render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.decode().rstrip().endswith("# EOF")


def test_label_values_are_only_names_and_codes() -> None:
    secret = "AIzaSyD-not-a-real-key-0123456789abcdef"
    m = ManagerMetrics(CHAIN)
    m.handle(AuthFailure(PRO, "403", f"API key {secret} not valid"))
    m.handle(StateBackendHealth("redis", False, "redis://:hunter2@cache:6379 refused"))
    m.handle(ModelSkipped("r", PRO, f"capability: {secret}"))
    text = m.render()[0].decode()
    assert secret not in text
    assert "hunter2" not in text


def test_handle_is_cheap() -> None:
    """A generous bound (measured ~1 us per event): catches an accidental O(n) path."""
    import time

    m = ManagerMetrics(CHAIN)
    events = sample_events(CHAIN) * 500
    start = time.perf_counter()
    for event in events:
        m.handle(event)
    assert (time.perf_counter() - start) / len(events) < 50e-6


def test_alert_rules_only_use_exported_metrics() -> None:
    families = {f.name: f.type for f in text_string_to_metric_families(sample_exposition())}
    exported: set[str] = set()
    for name, kind in families.items():
        if kind == "counter":
            exported.add(f"{name}_total")
        elif kind == "histogram":
            exported |= {name, f"{name}_bucket", f"{name}_count", f"{name}_sum"}
        else:
            exported.add(name)
    used = set(re.findall(r"\bdualmodelmanager_[a-z_]+", ALERTS.read_text()))
    assert used, "no metric found in alerts.yml"
    assert used <= exported, used - exported


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_check_metrics_accepts_the_exposition() -> None:
    result = subprocess.run(
        ["promtool", "check", "metrics"],
        input=sample_exposition(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_classic_text_format_has_no_created_series_whatever_the_accept_header() -> None:
    metrics = ManagerMetrics([FLASH, "other"])
    for accept in (None, "*/*", "text/plain", "text/plain;version=0.0.4"):
        body, content_type = metrics.render(accept)
        assert content_type.startswith("text/plain")
        assert b"_created" not in body, accept
    body, content_type = metrics.render("application/openmetrics-text;version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")
