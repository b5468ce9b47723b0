"""GeminiBackend's Google Search grounding, URL context and thinking through the real
google-genai SDK against the emulator: what goes upstream (tools, thinking config),
what comes back (citations with character offsets, thoughts kept out of the text,
thinking tokens), in answers and in streams; and a model without a capability
answering 400, classified bad_request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from google import genai
from google.api_core import exceptions as gexc
from google.genai import types

from gemini_failover.emulator import Emulator, EmulatorServer
from gemini_failover.gemini.answers import grounding_of
from gemini_failover.gemini.backend import GeminiBackend
from gemini_failover.gemini.content import urls_text, uses_thinking_levels
from gemini_failover.protocol import (
    GenerationRequest,
    Grounding,
    Media,
    StreamChunk,
    Support,
    Thinking,
    Turn,
)
from gemini_failover.resilience.continuation import continuation_request
from gemini_failover.resilience.errors import Category, classify

MODEL = "gemini-2.5-flash"
LEVEL_MODEL = "gemini-3-pro-preview"
PROMPT = "Who won the chess olympiad this year?"
#: The emulator starts the answer with "Read <url> . ": non-ASCII there shifts every
#: support's byte offsets away from its character offsets.
NON_ASCII_URL = "https://bücher.example/straße/größe"


@pytest.fixture
def emulator() -> Emulator:
    emulator = Emulator()
    emulator.configure(LEVEL_MODEL, {"thinking": "level"})
    emulator.configure(
        "gemini-1.0-pro",
        {
            "thinking": "none",
            "google_search": False,
            "url_context": False,
            "input_modalities": ["text"],
        },
    )
    return emulator


@pytest.fixture
async def backend(emulator_server: EmulatorServer) -> AsyncIterator[GeminiBackend]:
    b = GeminiBackend(api_key="test-key", base_url=emulator_server.base_url)
    yield b
    await b.aclose()


async def raw_segments(client: genai.Client, request: GenerationRequest) -> list[str]:
    """The texts of the supports' segments, as the emulator sent them (the SDK, raw)."""
    parts = [{"text": request.contents[0].text}]
    if request.urls:
        parts.append({"text": urls_text(request.urls)})
    contents: Any = [{"role": "user", "parts": parts}]
    tools = [types.Tool(google_search=types.GoogleSearch())]
    if request.urls:
        tools.append(types.Tool(url_context=types.UrlContext()))
    response = await client.aio.models.generate_content(
        model=MODEL, contents=contents, config=types.GenerateContentConfig(tools=tools)
    )
    assert response.candidates
    metadata = response.candidates[0].grounding_metadata
    assert metadata is not None
    return [s.segment.text or "" for s in metadata.grounding_supports or () if s.segment]


def spans(text: str, grounding: Grounding | None) -> list[str]:
    assert grounding is not None
    return [text[s.start : s.end] for s in grounding.supports]


async def test_grounded_answer_carries_queries_sources_and_supports(
    backend: GeminiBackend, emulator: Emulator
) -> None:
    result = await backend.generate(
        MODEL, GenerationRequest.from_prompt(PROMPT, google_search=True), timeout=10
    )
    assert emulator.requests[-1].tools == ("googleSearch",)
    grounding = result.grounding
    assert grounding is not None
    assert grounding.queries == ("who won the chess olympiad this year",)
    assert 2 <= len(grounding.sources) <= 3
    assert all(
        s.uri.startswith("https://vertexaisearch.cloud.google.com/") for s in grounding.sources
    )
    assert all(s.title.endswith(".example.com") for s in grounding.sources)
    # one support per sentence, covering the answer from its first character
    assert grounding.supports[0].start == 0
    assert all(text.strip().endswith(".") for text in spans(result.text, grounding))
    assert all(s.sources and max(s.sources) < len(grounding.sources) for s in grounding.supports)


async def test_support_offsets_are_characters_where_bytes_differ(
    backend: GeminiBackend, genai_client: genai.Client
) -> None:
    request = GenerationRequest.from_prompt(PROMPT, google_search=True, urls=(NON_ASCII_URL,))
    result = await backend.generate(MODEL, request, timeout=10)

    assert result.text.startswith(f"Read {NON_ASCII_URL} . ")
    assert len(result.text.encode()) > len(result.text)
    expected = await raw_segments(genai_client, request)
    assert expected and spans(result.text, result.grounding) == expected


async def test_streamed_grounding_points_into_the_whole_streamed_text(
    backend: GeminiBackend, genai_client: genai.Client
) -> None:
    request = GenerationRequest.from_prompt(PROMPT, google_search=True, urls=(NON_ASCII_URL,))
    chunks = [c async for c in backend.stream(MODEL, request, timeout=10)]
    text = "".join(c.text for c in chunks)
    grounded = [c for c in chunks if c.grounding is not None]
    assert len(grounded) == 1 and grounded[0] is chunks[-1]  # with the finish reason
    assert spans(text, grounded[0].grounding) == await raw_segments(genai_client, request)
    generated = await backend.generate(MODEL, request, timeout=10)
    assert (text, grounded[0].grounding) == (generated.text, generated.grounding)


def test_grounding_conversion_of_byte_offsets() -> None:
    text = "Ünïcödé first. Then ascii. 日本語 last."
    sentences = ["Ünïcödé first. ", "Then ascii. ", "日本語 last."]
    segments, cursor = [], 0
    for sentence in sentences:
        size = len(sentence.encode())
        # proto3 JSON leaves out a zero startIndex: the first segment has none
        start = {"start_index": cursor} if cursor else {}
        segments.append({"segment": {**start, "end_index": cursor + size}})
        cursor += size
    metadata = types.GroundingMetadata.model_validate(
        {
            "web_search_queries": ["q"],
            "grounding_chunks": [{"web": {"uri": "https://a", "title": "a"}}],
            "grounding_supports": [
                {**s, "grounding_chunk_indices": [0, 7]}  # 7: out of range, dropped
                for s in segments
            ],
        }
    )
    grounding = grounding_of(metadata, text)
    assert grounding is not None
    assert spans(text, grounding) == sentences
    assert grounding.supports[0] == Support(0, len(sentences[0]), (0,))
    assert grounding_of(None, text) is None


async def test_url_context_tool_and_the_urls_in_the_prompt(
    backend: GeminiBackend, emulator: Emulator
) -> None:
    request = GenerationRequest.from_prompt(
        "Compare these pages.", urls=("https://example.com/a", "https://x.invalid/b")
    )
    result = await backend.generate(MODEL, request, timeout=10)
    assert result.text.startswith(
        "Read https://example.com/a . Could not read https://x.invalid/b . "
    )
    record = emulator.requests[-1]
    assert record.tools == ("urlContext",)
    assert [p["kind"] for p in record.parts] == ["text", "text"]


@pytest.mark.parametrize(
    ("model", "thinking", "sent", "tokens"),
    [
        (MODEL, Thinking("low", include_thoughts=True), {"thinkingBudget": 1024}, 512),
        (MODEL, Thinking("off"), {"thinkingBudget": 0}, 0),
        (MODEL, Thinking("high", budget=300), {"thinkingBudget": 300}, 300),
        (LEVEL_MODEL, Thinking("low", include_thoughts=True), {"thinkingLevel": "LOW"}, 128),
        (LEVEL_MODEL, Thinking("high"), {"thinkingLevel": "HIGH"}, 1024),
        (LEVEL_MODEL, Thinking("high", budget=300), {"thinkingBudget": 300}, 300),
    ],
)
async def test_thinking_config_per_model_family(
    backend: GeminiBackend,
    emulator: Emulator,
    model: str,
    thinking: Thinking,
    sent: dict[str, Any],
    tokens: int,
) -> None:
    plain = await backend.generate(model, GenerationRequest.from_prompt(PROMPT), timeout=10)
    result = await backend.generate(
        model, GenerationRequest.from_prompt(PROMPT, thinking=thinking), timeout=10
    )
    assert emulator.requests[-1].thinking == {"includeThoughts": thinking.include_thoughts, **sent}
    assert result.text == plain.text  # thoughts never in the text
    assert result.usage.thinking_tokens == tokens
    assert result.usage.total_tokens == (
        result.usage.prompt_tokens + result.usage.output_tokens + tokens
    )
    if thinking.include_thoughts:
        assert result.thoughts.startswith("**") and result.thoughts not in result.text
    else:
        assert result.thoughts == ""


def test_thinking_family_by_model_name() -> None:
    assert not uses_thinking_levels("gemini-2.5-pro")
    assert not uses_thinking_levels("models/gemini-2.0-flash")
    assert not uses_thinking_levels("gemini-flash-latest")  # unknown: budgets (3 takes them)
    assert uses_thinking_levels("gemini-3-pro-preview")
    assert uses_thinking_levels("models/gemini-3.5-flash")


async def test_streamed_thoughts_stay_out_of_the_text_deltas(
    backend: GeminiBackend,
) -> None:
    plain = await backend.generate(MODEL, GenerationRequest.from_prompt(PROMPT), timeout=10)
    request = GenerationRequest.from_prompt(PROMPT, thinking=Thinking("low", include_thoughts=True))
    chunks: list[StreamChunk] = [c async for c in backend.stream(MODEL, request, timeout=10)]
    assert chunks[0].thoughts.startswith("**") and chunks[0].text == ""
    assert all(c.thoughts == "" for c in chunks[1:])
    assert "".join(c.text for c in chunks) == plain.text
    usage = chunks[-1].usage
    assert usage is not None and usage.thinking_tokens == 512


async def test_model_info_says_whether_a_model_thinks(backend: GeminiBackend) -> None:
    assert (await backend.model_info(MODEL, timeout=10)).thinking is True
    # Gemini leaves a false boolean out (proto3 JSON): "not said", for the profile's
    # overrides to decide
    assert (await backend.model_info("gemini-1.0-pro", timeout=10)).thinking is None


PNG = Media("/shot.png", "image/png", 4, "0" * 64, data=b"\x89PNG")


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (GenerationRequest.from_prompt("q", google_search=True), "Search Grounding"),
        (GenerationRequest.from_prompt("q", urls=("https://example.com",)), "Url context"),
        (GenerationRequest.from_prompt("q", thinking=Thinking("low")), "Thinking"),
        (
            GenerationRequest(contents=(Turn("user", "q", (PNG,)),)),
            "Image input",
        ),
    ],
    ids=["google_search", "url_context", "thinking", "image"],
)
async def test_a_model_without_the_capability_is_a_bad_request(
    backend: GeminiBackend, request_: GenerationRequest, message: str
) -> None:
    with pytest.raises(gexc.BadRequest, match=message) as caught:
        await backend.generate("gemini-1.0-pro", request_, timeout=10)
    assert classify(caught.value).category is Category.BAD_REQUEST
    with pytest.raises(gexc.BadRequest, match=message):
        async for _ in backend.stream("gemini-1.0-pro", request_, timeout=10):
            pass


async def test_urls_are_listed_in_the_turn_they_came_with(
    backend: GeminiBackend, emulator: Emulator
) -> None:
    # A continued conversation: its history, then the new question with the URLs.
    history = (Turn("user", "Name a river."), Turn("model", "The Rhine."))
    request = GenerationRequest(
        contents=(*history, Turn("user", "Summarise this page.")), urls=(NON_ASCII_URL,)
    )
    assert request.urls_turn == 2
    await backend.generate(MODEL, request, timeout=10)
    text_parts = [
        sum(1 for p in emulator.requests[-1].parts if p["turn"] == i and p["kind"] == "text")
        for i in range(3)
    ]
    assert text_parts == [1, 1, 2]  # the question and the URL listing
    assert emulator.requests[-1].tools == ("urlContext",)

    # A stream continuation appends the partial answer and "continue": the URLs stay.
    continued = continuation_request(request, "Partial answer")
    assert continued.urls_turn == 2 and len(continued.contents) == 5
    await backend.generate(MODEL, continued, timeout=10)
    text_parts = [
        sum(1 for p in emulator.requests[-1].parts if p["turn"] == i and p["kind"] == "text")
        for i in range(5)
    ]
    assert text_parts == [1, 1, 2, 1, 1]


def test_urls_turn_must_be_a_user_turn() -> None:
    turns = (Turn("user", "q"), Turn("model", "a"), Turn("user", "q2"))
    assert GenerationRequest(contents=turns).urls_turn is None  # no URLs: nothing to place
    assert (
        GenerationRequest(contents=turns, urls=("https://a.example",), urls_turn=0).urls_turn == 0
    )
    with pytest.raises(ValueError, match="not a user turn"):
        GenerationRequest(contents=turns, urls=("https://a.example",), urls_turn=1)
