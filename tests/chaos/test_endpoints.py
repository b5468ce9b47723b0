"""Endpoints: the same model on two quota pools (the Gemini API with one key, Vertex AI
in project mode with a fixed OAuth token), through the real google-genai SDK against
the emulator, which tells the endpoints apart by key and project/location and
addresses faults to one of them.

The chain is ``studio:gemini-2.5-pro, vertex:gemini-2.5-pro, studio:gemini-2.5-flash``:
a fault on studio's Pro is served by Pro on Vertex AI (no model change) unless the
error table says the request must end or wait."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gemini_failover.emulator import HANDLERS, expected_text
from gemini_failover.observability.metrics import ManagerMetrics
from gemini_failover.pairs import model_of
from gemini_failover.protocol import GenerationRequest
from gemini_failover.resilience import events as ev
from gemini_failover.resilience.errors import Category
from gemini_failover.resilience.manager import FailoverManager
from gemini_failover.resilience.results import RequestFailed
from gemini_failover.server.health import health_document
from tests.harness import Harness, harness

PRO, FLASH = "gemini-2.5-pro", "gemini-2.5-flash"
STUDIO_PRO, VERTEX_PRO, STUDIO_FLASH = f"studio:{PRO}", f"vertex:{PRO}", f"studio:{FLASH}"
CHAIN = (STUDIO_PRO, VERTEX_PRO, STUDIO_FLASH)
TOKEN = "vertex-test-token"
PROMPT = "Which quota pool serves this?"
SCENARIO: dict[str, Any] = {
    "vertex_token": TOKEN,
    "endpoints": [
        {"name": "studio", "kind": "gemini_api", "api_key": "studio-key"},
        {"name": "vertex-us", "kind": "vertex", "project": "proj", "location": "us-central1"},
    ],
}


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    async with harness(SCENARIO) as h:
        yield h


async def manager(h: Harness, chain: tuple[str, ...] = CHAIN, **overrides: Any) -> FailoverManager:
    url = h.server.base_url
    endpoints = {
        "studio": {"api_key": "studio-key", "base_url": url},
        "vertex": {
            "kind": "vertex",
            "project": "proj",
            "location": "us-central1",
            "access_token": TOKEN,
            "base_url": url,
        },
    }
    return await h.manager(chain, endpoints=endpoints, **overrides)


def req(prompt: str = PROMPT, **kw: Any) -> GenerationRequest:
    return GenerationRequest.from_prompt(prompt, **kw)


def generate_calls(h: Harness) -> list[tuple[str, str, int]]:
    """(endpoint, model, HTTP status) of every generation request the emulator saw."""
    return [
        (r.endpoint, r.model, r.status)
        for r in h.emulator.requests
        if r.action in ("generate", "stream")
    ]


async def test_a_per_day_quota_fails_over_to_the_same_model_on_another_endpoint(
    h: Harness,
) -> None:
    h.emulator.configure(
        PRO, faults=[{"kind": "rate_limit", "rpm": 0, "quota": "day", "endpoint": "studio"}]
    )
    m = await manager(h)
    first = await m.generate(req())
    assert first.text == expected_text(PROMPT)
    assert first.provenance.served_by == VERTEX_PRO
    assert model_of(first.provenance.served_by) == PRO  # no model change
    failovers = [(f.from_model, f.to_model, f.reason) for f in first.provenance.failovers]
    assert failovers == [(STUDIO_PRO, VERTEX_PRO, "quota_exhausted")]

    second = await m.generate(req("again"))
    assert second.provenance.served_by == VERTEX_PRO
    assert second.provenance.skipped == [(STUDIO_PRO, "quota_exhausted")]
    # the quota is the pair's: Flash on the same endpoint still serves (a bare name in
    # the model argument is the first chain entry with that model)
    flash = await m.generate(req("flash"), start_at=FLASH)
    assert flash.provenance.served_by == STUDIO_FLASH
    assert generate_calls(h) == [
        ("studio", PRO, 429),
        ("vertex-us", PRO, 200),
        ("vertex-us", PRO, 200),
        ("studio", FLASH, 200),
    ]
    rows = {row["model"]: row for row in m.model_status()}
    assert rows[STUDIO_PRO]["quota_exhausted_for_s"] > 0
    assert rows[VERTEX_PRO]["quota_exhausted_for_s"] == 0
    assert (rows[STUDIO_PRO]["endpoint"], rows[VERTEX_PRO]["endpoint"]) == ("studio", "vertex")


async def test_a_bad_key_cools_its_endpoint_down_and_alerts_once(h: Harness) -> None:
    h.emulator.configure("*", faults=[{"kind": "auth", "code": 400, "endpoint": "studio"}])
    m = await manager(h)
    metrics = ManagerMetrics(m.settings.models, initial_backend=None)
    m.events.subscribe(metrics.handle)

    # four requests in flight on the endpoint when its key is found bad: one alert
    concurrent = await asyncio.gather(*(m.generate(req(f"together {i}")) for i in range(4)))
    assert [r.provenance.failovers[0].reason for r in concurrent] == ["auth"] * 4
    results = [await m.generate(req(f"question {i}")) for i in range(5)]
    assert [r.provenance.served_by for r in concurrent + results] == [VERTEX_PRO] * 9
    assert all(r.provenance.skipped == [(STUDIO_PRO, "endpoint_auth")] for r in results)
    calls = generate_calls(h)
    assert sorted(calls[:8]) == [("studio", PRO, 400)] * 4 + [("vertex-us", PRO, 200)] * 4
    assert calls[8:] == [("vertex-us", PRO, 200)] * 5

    alerts = h.of(ev.AuthFailure)
    assert [(a.model, a.status) for a in alerts] == [(STUDIO_PRO, "400")]  # one, not five
    labels = {"model": PRO, "endpoint": "studio", "status_code": "400"}
    assert metrics.registry.get_sample_value("dualmodelmanager_auth_failures_total", labels) == 1

    rows = {row["model"]: row for row in m.model_status()}
    assert rows[STUDIO_PRO]["endpoint_down_for_s"] > 0
    assert rows[STUDIO_FLASH]["endpoint_down_for_s"] > 0  # every pair on the endpoint
    assert rows[VERTEX_PRO]["endpoint_down_for_s"] == 0
    document = health_document(m)
    assert document["status"] == "degraded"
    assert any(
        r.startswith(f"{STUDIO_PRO}: endpoint studio credentials rejected")
        for r in document["reasons"]
    )
    # a model only the cooled-down endpoint serves: refused without a call
    with pytest.raises(RequestFailed) as caught:
        await m.generate(req("flash"), start_at=FLASH)
    assert caught.value.category is Category.UNAVAILABLE
    assert "endpoint auth" in caught.value.message
    assert len(generate_calls(h)) == 13


async def test_bad_credentials_everywhere_fail_once_per_endpoint_then_at_once(
    h: Harness,
) -> None:
    h.emulator.configure("*", faults=[{"kind": "auth", "code": 401}])
    m = await manager(h)
    with pytest.raises(RequestFailed) as caught:
        await m.generate(req())
    assert caught.value.category is Category.AUTH
    assert "the operator has been alerted" in caught.value.message
    assert generate_calls(h) == [("studio", PRO, 401), ("vertex-us", PRO, 401)]
    assert [a.model for a in h.of(ev.AuthFailure)] == [STUDIO_PRO, VERTEX_PRO]


@pytest.mark.parametrize(
    "embedding_models",
    [["studio:embed"], ["vertex:embed"], ["studio:embed", "vertex:embed"]],
    ids=["embeddings on the same endpoint", "on another", "on both"],
)
async def test_with_one_endpoint_a_bad_key_still_fails_at_once_every_time(
    h: Harness, embedding_models: list[str]
) -> None:
    # The generation chain has studio alone: however many endpoints the embedding
    # chain uses, studio's pairs are not cooled down (nothing could take over).
    h.emulator.configure("*", faults=[{"kind": "auth", "code": 403, "endpoint": "studio"}])
    m = await manager(h, chain=(STUDIO_PRO, STUDIO_FLASH), embedding_models=embedding_models)
    if len(embedding_models) == 2:  # studio's embedding fails over; generation unaffected
        _, prov = await m.embed(("text",))
        assert prov.served_by == "vertex:embed"
    for _ in range(2):
        with pytest.raises(RequestFailed) as caught:
            await m.generate(req())
        assert caught.value.category is Category.AUTH
    assert generate_calls(h) == [("studio", PRO, 403)] * 2  # no cool-down hides the cause
    assert len(h.of(ev.AuthFailure)) == 2 + (len(embedding_models) == 2)


# -- every fault kind on studio's Pro, with the error table's action ---------------------

_SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}

#: kind -> (faults (on PRO, studio unless they say), how it is called, who serves, the
#: failover reason (None: none), extra settings)
CASES: dict[str, tuple[list[dict[str, Any]], str, str | None, str | None, dict[str, Any]]] = {
    "status": ([{"kind": "status", "code": 503}], "generate", VERTEX_PRO, "transient", {}),
    "rate_limit": (
        [{"kind": "rate_limit", "rpm": 0, "retry_after": 60}],
        "generate",
        VERTEX_PRO,
        "rate_limited",
        {},
    ),
    "flap": ([{"kind": "flap", "code": 503}], "generate", STUDIO_PRO, None, {}),
    "auth": ([{"kind": "auth", "code": 401}], "generate", VERTEX_PRO, "auth", {}),
    "latency": ([{"kind": "latency", "ms": 20}], "generate", STUDIO_PRO, None, {}),
    "hang": ([{"kind": "hang"}], "generate", VERTEX_PRO, "timeout", {"attempt_timeout": 0.2}),
    "stream_cut": ([{"kind": "stream_cut", "after": 2}], "stream", VERTEX_PRO, "transient", {}),
    "stream_truncate": (
        [{"kind": "stream_truncate", "after": 2}],
        "stream",
        VERTEX_PRO,
        "transient",
        {},
    ),
    "stream_error": (
        [{"kind": "stream_error", "after": 2}],
        "stream",
        VERTEX_PRO,
        "transient",
        {},
    ),
    "malformed": ([{"kind": "malformed"}], "generate", VERTEX_PRO, "transient", {}),
    "empty": ([{"kind": "empty"}], "generate", VERTEX_PRO, "semantic", {}),
    "blocked": ([{"kind": "blocked"}], "generate", None, None, {}),
    # overlap: the continuation on Vertex AI repeats words; the stitch trims them
    "overlap": (
        [
            {"kind": "stream_cut", "after": 2, "endpoint": "studio"},
            {"kind": "overlap", "words": 3, "endpoint": "vertex"},
        ],
        "stream",
        VERTEX_PRO,
        "transient",
        {},
    ),
    "schema_violation": (
        [{"kind": "schema_violation"}],
        "structured",
        VERTEX_PRO,
        "semantic",
        {},
    ),
}


def test_every_emulator_fault_kind_has_a_case() -> None:
    assert set(CASES) == set(HANDLERS)


@pytest.mark.parametrize("kind", sorted(CASES))
async def test_a_three_entry_chain_across_two_endpoints_survives(h: Harness, kind: str) -> None:
    faults, how, served_by, reason, overrides = CASES[kind]
    faults = [{"endpoint": "studio", **f} for f in faults]
    h.emulator.configure(PRO, faults=faults)
    m = await manager(h, **overrides)
    if served_by is None:  # the error table says: end the request, no failover
        with pytest.raises(RequestFailed) as caught:
            await m.generate(req())
        assert caught.value.category is Category.BLOCKED
        assert {e for e, _, _ in generate_calls(h)} == {"studio"}
        return
    if how == "stream":
        stream = m.stream(req())
        text = "".join([d async for d in stream])
        assert stream.result is not None
        assert text == stream.result.text == expected_text(PROMPT)
        provenance = stream.result.provenance
    else:
        schema = _SCHEMA if how == "structured" else None
        result = await m.generate(req(response_schema=schema))
        if schema is None:
            assert result.text == expected_text(PROMPT)
        else:
            assert isinstance(result.parsed, dict) and "answer" in result.parsed
        provenance = result.provenance
    assert provenance.served_by == served_by
    reasons = [f.reason for f in provenance.failovers]
    assert reasons == ([] if reason is None else [reason])
    # never Flash: the same model on the other endpoint took over
    assert all(model == PRO for _, model, _ in generate_calls(h))


async def test_a_stream_refused_by_an_endpoint_goes_to_another_before_any_text(
    h: Harness,
) -> None:
    h.emulator.configure(PRO, faults=[{"kind": "auth", "code": 403, "endpoint": "studio"}])
    m = await manager(h)
    stream = m.stream(req())
    text = "".join([d async for d in stream])
    assert stream.result is not None
    assert text == expected_text(PROMPT)
    assert stream.result.provenance.served_by == VERTEX_PRO
    assert [f.reason for f in stream.result.provenance.failovers] == ["auth"]
    assert len(h.of(ev.AuthFailure)) == 1


async def test_vertex_without_usable_default_credentials_is_an_endpoint_fault(
    h: Harness, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    # Project mode without access_token: google-auth loads ADC inside each call.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing-adc.json"))
    url = h.server.base_url
    endpoints = {
        "studio": {"api_key": "studio-key", "base_url": url},
        "vertex": {"kind": "vertex", "project": "proj", "location": "us-central1", "base_url": url},
    }
    m = await h.manager((VERTEX_PRO, STUDIO_PRO), endpoints=endpoints)
    result = await m.generate(req())
    assert result.provenance.served_by == STUDIO_PRO  # the same model, another endpoint
    [failover] = result.provenance.failovers
    assert (failover.from_model, failover.reason) == (VERTEX_PRO, "auth")
    [alert] = h.of(ev.AuthFailure)
    assert "Application Default Credentials" in alert.message
    assert generate_calls(h) == [("studio", PRO, 200)]  # nothing reached Vertex AI
