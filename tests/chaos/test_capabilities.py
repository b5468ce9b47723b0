"""Semantic drift: never fail over to a model that cannot serve the request."""

from __future__ import annotations

import pytest

from gemini_failover.protocol import GenerationRequest
from gemini_failover.resilience import events as ev
from gemini_failover.resilience.results import RequestFailed
from tests.harness import Harness

LONG = "word " * 30_000  # ~37,500 tokens: more than the small models take

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "stars": {"type": "integer", "minimum": 1}},
    "required": ["name", "stars"],
}


async def test_fallback_with_a_smaller_context_window_is_never_used_for_a_long_prompt(
    h: Harness,
) -> None:
    h.emulator.configure("primary", faults=[{"kind": "status", "code": 503}])
    h.emulator.configure("fallback", profile={"input_token_limit": 32_768})
    m = await h.manager()
    with pytest.raises(RequestFailed) as info:
        await m.generate(GenerationRequest.from_prompt(LONG))
    assert "fallback: context window 32,768 tokens" in info.value.message
    assert h.calls("fallback") == 0
    short = await m.generate(GenerationRequest.from_prompt("short question"))
    assert short.provenance.served_by == "fallback"


async def test_no_capable_model_names_the_missing_capability(h: Harness) -> None:
    for model in ("primary", "fallback"):
        h.emulator.configure(model, profile={"input_token_limit": 32_768})
    m = await h.manager()
    with pytest.raises(RequestFailed) as info:
        await m.generate(GenerationRequest.from_prompt(LONG))
    assert info.value.category == "no_capable_model"
    assert "primary: context window 32,768" in info.value.message
    assert h.calls("primary") == 0


async def test_structured_output_never_routed_to_a_model_without_json_schema(h: Harness) -> None:
    h.emulator.configure("primary", faults=[{"kind": "status", "code": 503}])
    m = await h.manager(model_overrides={"fallback": {"json_schema": False}})
    with pytest.raises(RequestFailed) as info:
        await m.generate(GenerationRequest.from_prompt("a repo", response_schema=SCHEMA))
    assert "fallback: no JSON-schema structured output" in info.value.message
    assert h.calls("fallback") == 0


async def test_structured_output_validates_against_the_schema(h: Harness) -> None:
    m = await h.manager()
    result = await m.generate(GenerationRequest.from_prompt("a repo", response_schema=SCHEMA))
    assert isinstance(result.parsed, dict)
    assert set(result.parsed) >= {"name", "stars"}
    assert result.parsed["stars"] >= 1


async def test_schema_violation_is_retried_once_then_fails_over(h: Harness) -> None:
    h.emulator.configure("primary", faults=[{"kind": "schema_violation"}])
    m = await h.manager()
    result = await m.generate(GenerationRequest.from_prompt("a repo", response_schema=SCHEMA))
    assert result.provenance.served_by == "fallback"
    assert [a.outcome for a in result.provenance.attempts] == ["schema", "schema", "ok"]
    assert [e.kind for e in h.of(ev.SemanticFailure)] == ["schema", "schema"]
    assert result.provenance.failovers[0].reason == "semantic"


async def test_schema_violation_everywhere_is_an_error_not_garbage(h: Harness) -> None:
    for model in ("primary", "fallback"):
        h.emulator.configure(model, faults=[{"kind": "schema_violation"}])
    m = await h.manager()
    with pytest.raises(RequestFailed) as info:
        await m.generate(GenerationRequest.from_prompt("a repo", response_schema=SCHEMA))
    assert "semantic" in info.value.message


async def test_invalid_schema_is_rejected_before_any_call(h: Harness) -> None:
    m = await h.manager()
    with pytest.raises(RequestFailed) as info:
        await m.generate(
            GenerationRequest.from_prompt("x", response_schema={"type": "no-such-type"})
        )
    assert info.value.category == "bad_request"
    assert h.calls("primary") == 0


async def test_models_get_limits_are_fetched_once(h: Harness) -> None:
    h.emulator.configure("primary", profile={"input_token_limit": 50_000})
    m = await h.manager()
    for _ in range(3):
        await m.generate(GenerationRequest.from_prompt("hi"))
    await h.emulator.wait_for(lambda log: any(r.action == "get" for r in log))
    assert h.calls("primary", "get") == 1
    assert m.chain[0].profile.input_token_limit == 50_000
    assert m.chain[0].profile.source == "models.get"


async def test_json_cut_off_at_the_callers_token_limit_blames_no_model(h: Harness) -> None:
    """The caller's own max_output_tokens cut the JSON short: no retry, no failover, no
    breaker charged (one caller must not open the breakers every caller shares)."""
    m = await h.manager()
    request = GenerationRequest.from_prompt("a repo", response_schema=SCHEMA, max_output_tokens=2)
    for _ in range(3):
        with pytest.raises(RequestFailed) as info:
            await m.generate(request)
        assert info.value.category == "bad_request"
        assert "cut off at max_output_tokens=2" in info.value.message
    assert h.calls("primary") == 3
    assert h.calls("fallback") == 0
    assert [s.breaker.failure_rate()[0] for s in m.chain] == [0.0, 0.0]
