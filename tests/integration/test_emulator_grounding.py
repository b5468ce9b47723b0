"""Google Search grounding and thinking through the real google-genai SDK: citations
whose offsets point at the right text (also streamed and continued), thought parts and
thought tokens, and models without the capability."""

from __future__ import annotations

import pytest
from google import genai
from google.genai import errors, types

from gemini_failover.emulator import Emulator, expected_text

PROMPT = "What changed in circuit breaker design recently?"
SEARCH = types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch())])


@pytest.fixture
def emulator() -> Emulator:
    return Emulator(
        {
            "models": {
                "old": {"profile": {"google_search": False, "thinking": "none"}},
                "pro": {"profile": {"thinking_budget_min": 128, "thinking_budget_max": 32768}},
                "next": {"profile": {"thinking": "level"}},
            }
        }
    )


def _grounding(response: types.GenerateContentResponse) -> types.GroundingMetadata:
    assert response.candidates is not None
    metadata = response.candidates[0].grounding_metadata
    assert metadata is not None
    return metadata


def _spans(metadata: types.GroundingMetadata) -> list[tuple[int, int, str, list[int]]]:
    spans = []
    for support in metadata.grounding_supports or []:
        segment = support.segment
        assert segment is not None and segment.end_index is not None
        spans.append(
            (
                segment.start_index or 0,  # proto3 JSON leaves out a 0 start, as Gemini does
                segment.end_index,
                segment.text or "",
                list(support.grounding_chunk_indices or []),
            )
        )
    return spans


async def test_grounded_answer_has_queries_sources_and_exact_supports(
    genai_client: genai.Client, emulator: Emulator
) -> None:
    response = await genai_client.aio.models.generate_content(
        model="gemini-2.5-flash", contents=PROMPT, config=SEARCH
    )
    text = expected_text(PROMPT)
    assert response.text == text
    metadata = _grounding(response)
    assert metadata.web_search_queries == ["what changed in circuit breaker design recently"]
    chunks = metadata.grounding_chunks or []
    assert 2 <= len(chunks) <= 3
    for chunk in chunks:
        assert chunk.web is not None and chunk.web.uri and chunk.web.title
        assert chunk.web.uri.startswith("https://vertexaisearch.cloud.google.com/")
    spans = _spans(metadata)
    assert len(spans) == text.count(".")  # one support per sentence
    assert spans[0][0] == 0
    for start, end, segment, indices in spans:
        assert text.encode()[start:end].decode() == segment
        assert segment.endswith(".")
        assert all(0 <= i < len(chunks) for i in indices)
    assert metadata.search_entry_point is not None
    assert "circuit breaker" in (metadata.search_entry_point.rendered_content or "")
    assert emulator.requests[-1].tools == ("googleSearch",)

    again = await genai_client.aio.models.generate_content(
        model="gemini-2.5-flash", contents=PROMPT, config=SEARCH
    )
    assert _grounding(again) == metadata  # deterministic


async def test_streamed_grounding_comes_on_the_last_chunk(genai_client: genai.Client) -> None:
    chunks = [
        c
        async for c in await genai_client.aio.models.generate_content_stream(
            model="m", contents=PROMPT, config=SEARCH
        )
    ]
    assert len(chunks) > 2
    assert all(c.candidates and c.candidates[0].grounding_metadata is None for c in chunks[:-1])
    text = "".join(c.text or "" for c in chunks)
    spans = _spans(_grounding(chunks[-1]))
    assert spans and all(text[s:e] == segment for s, e, segment, _ in spans)


async def test_a_continued_answer_is_grounded_in_the_continuation(
    genai_client: genai.Client,
) -> None:
    full = expected_text(PROMPT)
    prefix = full[: full.index(".") + 20]  # the cut falls inside the second sentence
    whole = _spans(
        _grounding(
            await genai_client.aio.models.generate_content(
                model="m", contents=PROMPT, config=SEARCH
            )
        )
    )
    response = await genai_client.aio.models.generate_content(
        model="m",
        contents=[
            types.Content(role="user", parts=[types.Part(text=PROMPT)]),
            types.Content(role="model", parts=[types.Part(text=prefix)]),
            types.Content(role="user", parts=[types.Part(text="Continue.")]),
        ],
        config=SEARCH,
    )
    rest = full[len(prefix) :]
    assert response.text == rest
    spans = _spans(_grounding(response))
    assert all(rest[s:e] == segment for s, e, segment, _ in spans)
    # Shifted by the prefix, they are the full answer's supports clipped at the cut.
    shifted = [(s + len(prefix), e + len(prefix), idx) for s, e, _, idx in spans]
    expected = [(max(s, len(prefix)), e, idx) for s, e, _, idx in whole if e > len(prefix)]
    assert shifted == expected


async def test_a_model_without_search_answers_400(genai_client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as caught:
        await genai_client.aio.models.generate_content(model="old", contents=PROMPT, config=SEARCH)
    assert caught.value.code == 400
    assert "Search Grounding is not supported for models/old" in (caught.value.message or "")


def _thinking(**kwargs: object) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(thinking_config=types.ThinkingConfig(**kwargs))


async def test_thoughts_and_thought_tokens(genai_client: genai.Client, emulator: Emulator) -> None:
    response = await genai_client.aio.models.generate_content(
        model="gemini-2.5-flash",
        contents=PROMPT,
        config=_thinking(thinking_budget=300, include_thoughts=True),
    )
    assert response.candidates is not None and response.candidates[0].content is not None
    parts = response.candidates[0].content.parts or []
    assert [bool(p.thought) for p in parts] == [True, False]
    assert parts[0].text and parts[0].text.startswith("**Planning the answer**")
    assert response.text == expected_text(PROMPT)  # thoughts are not the answer
    usage = response.usage_metadata
    assert usage is not None
    assert usage.thoughts_token_count == 300
    assert usage.prompt_token_count is not None and usage.candidates_token_count is not None
    assert usage.total_token_count == (
        usage.prompt_token_count + usage.candidates_token_count + 300
    )
    assert emulator.requests[-1].thinking == {"includeThoughts": True, "thinkingBudget": 300}

    quiet = await genai_client.aio.models.generate_content(
        model="gemini-2.5-flash", contents=PROMPT, config=_thinking(thinking_budget=-1)
    )
    assert quiet.usage_metadata is not None and quiet.usage_metadata.thoughts_token_count == 256
    assert quiet.candidates is not None and quiet.candidates[0].content is not None
    assert not any(p.thought for p in quiet.candidates[0].content.parts or [])


async def test_streamed_thoughts_come_first(genai_client: genai.Client) -> None:
    chunks = [
        c
        async for c in await genai_client.aio.models.generate_content_stream(
            model="next",
            contents=PROMPT,
            config=_thinking(thinking_level=types.ThinkingLevel.HIGH, include_thoughts=True),
        )
    ]
    first = chunks[0].candidates[0].content.parts  # type: ignore[index, union-attr]
    assert first is not None and [p.thought for p in first] == [True]
    assert "".join(c.text or "" for c in chunks[1:]) == expected_text(PROMPT)
    assert chunks[-1].usage_metadata is not None
    assert chunks[-1].usage_metadata.thoughts_token_count == 1024


@pytest.mark.parametrize(
    ("model", "config", "message"),
    [
        ("old", {"thinking_budget": 1024}, "Thinking is not supported for models/old"),
        ("m", {"thinking_level": "LOW"}, "Thinking level is not supported for models/m"),
        ("pro", {"thinking_budget": 0}, "Budget 0 is invalid"),
        ("pro", {"thinking_budget": 40000}, "between 128 and 32768"),
        ("next", {"thinking_level": "LOW", "thinking_budget": 10}, "only one of"),
    ],
)
async def test_thinking_a_model_cannot_do_answers_400(
    genai_client: genai.Client, model: str, config: dict[str, object], message: str
) -> None:
    with pytest.raises(errors.ClientError) as caught:
        await genai_client.aio.models.generate_content(
            model=model, contents=PROMPT, config=_thinking(**config)
        )
    assert caught.value.code == 400
    assert message in (caught.value.message or "")


async def test_models_get_says_which_models_think(genai_client: genai.Client) -> None:
    assert (await genai_client.aio.models.get(model="pro")).thinking is True
    assert (await genai_client.aio.models.get(model="old")).thinking is None
