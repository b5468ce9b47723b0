"""Capability fit: which models may serve a request."""

from __future__ import annotations

from gemini_failover.config import ModelOverride
from gemini_failover.protocol import GenerationRequest, ModelInfo
from gemini_failover.resilience.capabilities import ModelProfile, Needs, misfit


def test_profile_merges_models_get_with_overrides() -> None:
    info = ModelInfo("m", input_token_limit=1000, output_token_limit=100)
    p = ModelProfile.build("m", info, ModelOverride(json_schema=False, output_token_limit=50))
    assert (p.input_token_limit, p.output_token_limit, p.json_schema) == (1000, 50, False)
    assert p.source == "models.get"
    assert ModelProfile.build("m", None, None).source == "defaults"


def test_context_window_misfit_names_the_limit() -> None:
    p = ModelProfile("small", input_token_limit=1000)
    needs = Needs.of(GenerationRequest.from_prompt("x" * 8000))
    reason = misfit(p, needs)
    assert reason is not None and "1,000" in reason and "2,000" in reason
    assert misfit(ModelProfile("big", input_token_limit=1_048_576), needs) is None


def test_structured_output_and_system_instruction_needs() -> None:
    req = GenerationRequest.from_prompt(
        "hi", response_schema={"type": "object"}, system_instruction="s"
    )
    needs = Needs.of(req)
    assert misfit(ModelProfile("m", json_schema=False), needs) == "no JSON-schema structured output"
    assert misfit(ModelProfile("m", system_instruction=False), needs) == "no system instructions"
    assert misfit(ModelProfile("m"), needs) is None


def test_output_limit_misfit() -> None:
    needs = Needs.of(GenerationRequest.from_prompt("hi", max_output_tokens=9000))
    assert misfit(ModelProfile("m", output_token_limit=8192), needs) is not None
    assert misfit(ModelProfile("m", output_token_limit=None), needs) is None
