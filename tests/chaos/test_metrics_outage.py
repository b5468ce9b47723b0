"""Metrics are produced by the manager's events: a primary outage and its recovery
leave exact counter and gauge values behind."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest

from gemini_failover.observability.metrics import ManagerMetrics
from gemini_failover.protocol import GenerationRequest
from gemini_failover.resilience.breaker import BreakerState
from gemini_failover.resilience.results import RequestFailed
from tests.harness import Harness


async def test_outage_then_recovery_exact_metrics(h: Harness) -> None:
    h.emulator.configure(
        "primary",
        faults=[{"kind": "status", "code": 503, "count": 3, "actions": ["generate"]}],
    )
    m = await h.manager(breaker={"break_seconds": 0.05, "sustained_health_seconds": 0.1})
    metrics = ManagerMetrics(m.settings.models)
    m.events.subscribe(metrics.handle)

    def value(name: str, labels: dict[str, str]) -> float | None:
        for prefix in ("", "from_", "to_"):  # every chain entry is on the default endpoint
            if f"{prefix}model" in labels:
                labels = {f"{prefix}endpoint": "gemini", **labels}
        return metrics.registry.get_sample_value(name, labels)

    def active(model: str, role: str) -> float | None:
        return value("dualmodelmanager_active_model", {"model": model, "role": role})

    request = GenerationRequest.from_prompt("metrics please")
    first = await m.generate(request)  # three 503s, breaker opens, served by fallback
    assert first.provenance.served_by == "fallback"
    assert value("dualmodelmanager_requests_total", {"model": "primary", "status_code": "503"}) == 3
    assert value("dualmodelmanager_requests_total", {"model": "fallback", "status_code": "ok"}) == 1
    assert value("dualmodelmanager_circuit_breaker_state", {"model": "primary"}) == 2
    assert active("primary", "primary") == 0
    assert active("fallback", "secondary") == 1
    assert (
        value(
            "dualmodelmanager_failover_events_total",
            {"from_model": "primary", "to_model": "fallback", "reason": "transient"},
        )
        == 1
    )
    assert (
        value("dualmodelmanager_retries_total", {"model": "primary", "category": "transient"}) == 2
    )

    # steady traffic until the primary has been healthy long enough to close
    deadline = time.monotonic() + 5
    while m.chain[0].breaker.snapshot.state is not BreakerState.CLOSED:
        await m.generate(request)
        await asyncio.sleep(0.01)  # steady traffic while it heals, not a wait for a condition
        assert time.monotonic() < deadline

    assert value("dualmodelmanager_circuit_breaker_state", {"model": "primary"}) == 0
    assert active("primary", "primary") == 1
    assert active("fallback", "secondary") == 0
    for from_state, to_state in [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]:
        labels = {"model": "primary", "from_state": from_state, "to_state": to_state}
        assert value("dualmodelmanager_circuit_breaker_transitions_total", labels) == 1
    primary_ok = value("dualmodelmanager_requests_total", {"model": "primary", "status_code": "ok"})
    assert primary_ok == h.emulator.count(model="primary", action="generate", status=200)
    assert value("dualmodelmanager_requests_total", {"model": "primary", "status_code": "503"}) == 3
    body, content_type = metrics.render()
    assert b"dualmodelmanager_failover_events_total" in body
    assert content_type.startswith("text/plain")


ALERTS = (Path(__file__).resolve().parents[2] / "deploy/prometheus/alerts.yml").read_text()


async def test_a_total_outage_is_what_the_all_models_down_alert_counts(h: Harness) -> None:
    for model in ("primary", "fallback"):
        h.emulator.configure(model, faults=[{"kind": "status", "code": 503}])
    m = await h.manager()
    metrics = ManagerMetrics(m.settings.models)
    m.events.subscribe(metrics.handle)
    with pytest.raises(RequestFailed) as info:
        await m.generate(GenerationRequest.from_prompt("anyone there?"))
    outcome = info.value.category
    assert outcome == "unavailable"
    labels = {"operation": "generate", "outcome": outcome}
    assert (
        metrics.registry.get_sample_value("dualmodelmanager_call_duration_seconds_count", labels)
        == 1
    )

    rule = ALERTS[ALERTS.index("alert: GeminiFailoverAllModelsDown") :]
    failing = re.search(r'outcome=~"([^"]+)"', rule)
    assert failing is not None
    assert re.fullmatch(failing.group(1), outcome)  # the alert sees this outage
