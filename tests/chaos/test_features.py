"""Search grounding, thinking and model choice survive a failover: a model that cannot
serve what the request asks for is skipped with the reason, citations stay right
across a mid-stream continuation, and a request can start at (or stay on) one model.
Through the real google-genai SDK against the emulator."""

from __future__ import annotations

import pytest

from gemini_failover.emulator.log import RequestRecord
from gemini_failover.protocol import GenerationRequest, Grounding, Thinking
from gemini_failover.resilience import events as ev
from gemini_failover.resilience.results import RequestFailed, Result
from tests.harness import Harness

PROMPT = "Who won the chess olympiad this year? Tell me the whole story."


def last_generation(h: Harness) -> RequestRecord:
    return [r for r in h.emulator.requests if r.action in ("generate", "stream")][-1]


def cut(after: int) -> dict[str, object]:
    return {"kind": "stream_cut", "after": after, "actions": ["stream"], "count": 1}


def cited(text: str, grounding: Grounding | None) -> list[tuple[str, tuple[str, ...]]]:
    """Each support's text and the URIs it cites."""
    assert grounding is not None
    return [
        (text[s.start : s.end], tuple(grounding.sources[i].uri for i in s.sources))
        for s in grounding.supports
    ]


def covered(result: Result) -> set[int]:
    assert result.grounding is not None
    return {i for s in result.grounding.supports for i in range(s.start, s.end)}


async def test_grounded_answer_cites_whole_sentences_of_its_text(h: Harness) -> None:
    m = await h.manager()
    result = await m.generate(GenerationRequest.from_prompt(PROMPT, google_search=True))
    assert last_generation(h).tools == ("googleSearch",)
    assert result.grounding is not None and result.grounding.queries
    spans = cited(result.text, result.grounding)
    assert spans
    for span, uris in spans:
        assert span.strip().endswith(".")  # one support per sentence of the answer
        assert uris and all(u.startswith("https://") for u in uris)


@pytest.mark.parametrize("overlap", [0, 3])
async def test_citations_stay_right_after_a_mid_stream_continuation(
    h: Harness, overlap: int
) -> None:
    m = await h.manager()
    whole = await m.generate(GenerationRequest.from_prompt(PROMPT, google_search=True))
    h.emulator.configure("primary", faults=[cut(3)])
    if overlap:
        h.emulator.configure("fallback", faults=[{"kind": "overlap", "words": overlap}])
    stream = m.stream(GenerationRequest.from_prompt(PROMPT, google_search=True))
    text = "".join([d async for d in stream])
    result = stream.result
    assert result is not None
    assert [s.model for s in result.provenance.spans] == ["primary", "fallback"]
    assert text == whole.text
    # Gemini sends a stream's grounding with its last chunk, so the broken segment has
    # none: the stitched citations cover exactly what the one-model answer's cover
    # from the continuation on (trimmed overlap included), and every one of them lies
    # inside a support of that answer, citing the same pages.
    continued_at = result.provenance.spans[1].start
    assert covered(result) == {i for i in covered(whole) if i >= continued_at}
    assert covered(result)
    assert whole.grounding is not None and result.grounding is not None
    for s in result.grounding.supports:
        uris = {result.grounding.sources[i].uri for i in s.sources}
        assert any(
            w.start <= s.start
            and s.end <= w.end
            and uris == {whole.grounding.sources[i].uri for i in w.sources}
            for w in whole.grounding.supports
        ), (text[s.start : s.end], s)


async def test_search_request_skips_a_model_without_grounding(h: Harness) -> None:
    h.emulator.configure("primary", faults=[{"kind": "status", "code": 503}])
    h.emulator.configure("fallback", profile={"google_search": False})
    m = await h.manager(model_overrides={"fallback": {"google_search": False}})
    with pytest.raises(RequestFailed) as info:
        await m.generate(GenerationRequest.from_prompt(PROMPT, google_search=True))
    assert "fallback: no Google Search grounding" in info.value.message
    assert h.calls("fallback") == 0
    plain = await m.generate(GenerationRequest.from_prompt(PROMPT))
    assert plain.provenance.served_by == "fallback"
    assert plain.grounding is None


async def test_thinking_on_a_model_that_thinks_reports_thought_tokens(h: Harness) -> None:
    m = await h.manager()
    thinking = Thinking(level="high", budget=2048, include_thoughts=True)
    result = await m.generate(GenerationRequest.from_prompt(PROMPT, thinking=thinking))
    assert last_generation(h).thinking == {"includeThoughts": True, "thinkingBudget": 2048}
    assert result.usage.thinking_tokens > 0
    assert result.thoughts
    assert result.thoughts not in result.text


async def test_thinking_is_a_misfit_on_a_model_that_does_not_think(h: Harness) -> None:
    h.emulator.configure("primary", faults=[{"kind": "status", "code": 503}])
    h.emulator.configure("fallback", profile={"thinking": "none"})
    m = await h.manager()
    with pytest.raises(RequestFailed) as info:
        await m.generate(GenerationRequest.from_prompt(PROMPT, thinking=Thinking("low")))
    assert "fallback: no thinking" in info.value.message
    assert h.calls("fallback") == 0
    skipped = [e for e in h.of(ev.ModelSkipped) if e.model == "fallback"]
    assert skipped and skipped[0].reason.startswith("capability: no thinking")


async def test_a_budget_outside_the_models_range_is_a_misfit(h: Harness) -> None:
    m = await h.manager(
        model_overrides={"primary": {"thinking_budget_max": 1000}},
    )
    result = await m.generate(GenerationRequest.from_prompt(PROMPT, thinking=Thinking(budget=4096)))
    assert result.provenance.served_by == "fallback"
    assert result.provenance.skipped == [
        ("primary", "capability: thinking budget 4,096 above its maximum 1,000")
    ]


async def test_model_choice_starts_at_the_chosen_model(h: Harness) -> None:
    models = ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite")
    m = await h.manager(models)
    result = await m.generate(GenerationRequest.from_prompt(PROMPT), start_at="flash")
    assert result.provenance.served_by == "gemini-2.5-flash"
    assert h.calls("gemini-2.5-pro") == 0
    # ... and fails over only to the models after it
    h.emulator.configure("gemini-2.5-flash", faults=[{"kind": "status", "code": 503}])
    result = await m.generate(GenerationRequest.from_prompt(PROMPT), start_at="flash")
    assert result.provenance.served_by == "gemini-2.5-flash-lite"
    assert h.calls("gemini-2.5-pro") == 0


async def test_failover_false_stays_on_the_chosen_model(h: Harness) -> None:
    h.emulator.configure("primary", faults=[{"kind": "status", "code": 503}])
    m = await h.manager()
    with pytest.raises(RequestFailed) as info:
        await m.generate(GenerationRequest.from_prompt(PROMPT), failover=False)
    assert info.value.category == "unavailable"
    assert h.calls("fallback") == 0
    stream = m.stream(GenerationRequest.from_prompt(PROMPT), start_at="fallback", failover=False)
    text = "".join([d async for d in stream])
    assert text and stream.result is not None
    assert stream.result.provenance.served_by == "fallback"


async def test_an_unknown_model_is_a_clear_error_listing_the_choices(h: Harness) -> None:
    m = await h.manager(
        ("gemini-2.5-pro", "gemini-2.5-flash"), model_aliases={"big": "gemini-2.5-pro"}
    )
    with pytest.raises(RequestFailed) as info:
        await m.generate(GenerationRequest.from_prompt(PROMPT), start_at="ultra")
    assert info.value.category == "bad_request"
    message = info.value.message
    assert "unknown model 'ultra'" in message
    for choice in ("gemini-2.5-pro", "gemini-2.5-flash", "pro (=", "flash (=", "big (="):
        assert choice in message
    assert m.choose("big").start == 0
    assert h.emulator.count() == 0


async def test_health_and_metrics_count_requests_per_capability(h: Harness) -> None:
    from gemini_failover.observability.metrics import ManagerMetrics
    from gemini_failover.server.health import health_document

    m = await h.manager()
    metrics = ManagerMetrics(("primary", "fallback"))
    m.events.subscribe(metrics.handle)
    h.emulator.configure("fallback", profile={"thinking": "none"})
    await m.generate(GenerationRequest.from_prompt(PROMPT, google_search=True))
    with pytest.raises(RequestFailed):
        await m.generate(
            GenerationRequest.from_prompt(PROMPT, thinking=Thinking("low")),
            start_at="fallback",
        )
    assert health_document(m)["capabilities"] == {
        "google_search": {"ok": 1},
        "thinking": {"no_capable_model": 1},
    }
    exposition = metrics.render()[0].decode()
    assert (
        'dualmodelmanager_capability_requests_total{capability="google_search",outcome="ok"} 1.0'
        in exposition
    )


async def test_a_broken_stream_with_failover_false_continues_on_the_chosen_model(
    h: Harness,
) -> None:
    """A healthy later model must not make the stream give up on the chosen one: the
    caller forbade using it, so the break is continued where it happened."""
    h.emulator.configure("primary", faults=[cut(3)])
    m = await h.manager()
    stream = m.stream(GenerationRequest.from_prompt(PROMPT), failover=False)
    text = "".join([d async for d in stream])
    assert stream.result is not None
    assert stream.result.provenance.served_by == "primary"
    assert {a.model for a in stream.result.provenance.attempts} == {"primary"}
    assert h.calls("fallback") == 0
    assert text == stream.result.text
