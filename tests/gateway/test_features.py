"""The real google-genai SDK through the gateway with the features beyond text: an
image, thinking with thought summaries, Google Search grounding and URL context. The
gateway's answer must be the one the same SDK call gets from the emulator directly
(text, thoughts, grounding offsets, thinking tokens), and a model that lacks a feature
is skipped with the reason rather than sent a request it would refuse."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from google import genai
from google.genai import errors, types

from gemini_failover.emulator import EmulatorServer
from gemini_failover.gateway.app import OFF_LOOP_BYTES
from tests.gateway.conftest import (
    FALLBACK,
    PRIMARY,
    UPSTREAM_KEY,
    Gateway,
    gateway_settings,
    run_gateway,
)

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
#: The emulator's answer starts by naming the pages it read: a non-ASCII URL makes the
#: grounding's byte offsets differ from character offsets.
QUESTION = "Who won the chess olympiad? See https://bücher.example/straße/größe and the picture."


def direct(emulator: EmulatorServer) -> genai.Client:
    options = types.HttpOptions(
        base_url=emulator.base_url, retry_options=types.HttpRetryOptions(attempts=1)
    )
    return genai.Client(api_key=UPSTREAM_KEY, http_options=options)


def config(**extra: Any) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(
        thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=1024),
        tools=[
            types.Tool(google_search=types.GoogleSearch()),
            types.Tool(url_context=types.UrlContext()),
        ],
        **extra,
    )


def contents() -> list[Any]:
    return [types.Part.from_bytes(data=PNG, mime_type="image/png"), QUESTION]


def thoughts_of(response: types.GenerateContentResponse) -> str:
    assert response.candidates and response.candidates[0].content
    parts = response.candidates[0].content.parts or []
    return "".join(p.text or "" for p in parts if p.thought)


def supports_of(response: types.GenerateContentResponse) -> list[tuple[int, int, str]]:
    assert response.candidates
    metadata = response.candidates[0].grounding_metadata
    assert metadata is not None
    return [
        (s.segment.start_index or 0, s.segment.end_index or 0, s.segment.text or "")
        for s in metadata.grounding_supports or ()
        if s.segment
    ]


async def test_an_image_thinking_and_search_come_back_as_gemini_sends_them(
    gateway: Gateway, emulator: EmulatorServer
) -> None:
    via = await gateway.client().aio.models.generate_content(
        model="auto", contents=contents(), config=config()
    )
    upstream = emulator.emulator.requests[-1]
    ref = await direct(emulator).aio.models.generate_content(
        model=PRIMARY, contents=contents(), config=config()
    )
    # what reached the model: the image's bytes, the search tool, the thinking config
    images = [p for p in upstream.parts if p["kind"] == "inline_data"]
    assert [(p["mimeType"], p["bytes"]) for p in images] == [("image/png", len(PNG))]
    assert upstream.tools == ("googleSearch", "urlContext")
    assert upstream.thinking == {"thinkingBudget": 1024, "includeThoughts": True}
    # what came back: the same answer the SDK gets from the model itself
    assert via.text == ref.text and "größe" in (via.text or "")
    assert thoughts_of(via) == thoughts_of(ref) != ""
    assert supports_of(via) == supports_of(ref) != []
    assert via.candidates and ref.candidates
    chunks = via.candidates[0].grounding_metadata.grounding_chunks  # type: ignore[union-attr]
    assert chunks == ref.candidates[0].grounding_metadata.grounding_chunks  # type: ignore[union-attr]
    assert via.usage_metadata and ref.usage_metadata
    assert via.usage_metadata.thoughts_token_count == ref.usage_metadata.thoughts_token_count
    assert via.usage_metadata.thoughts_token_count


async def test_a_stream_carries_the_thoughts_and_the_grounding_of_the_whole_answer(
    gateway: Gateway, emulator: EmulatorServer
) -> None:
    stream = await gateway.client().aio.models.generate_content_stream(
        model="auto", contents=contents(), config=config()
    )
    chunks = [c async for c in stream]
    ref = await direct(emulator).aio.models.generate_content(
        model=PRIMARY, contents=contents(), config=config()
    )
    assert "".join(c.text or "" for c in chunks) == ref.text
    assert "".join(thoughts_of(c) for c in chunks if c.candidates) == thoughts_of(ref)
    assert supports_of(chunks[-1]) == supports_of(ref)


async def test_a_model_without_a_feature_is_skipped_with_the_reason(
    emulator: EmulatorServer,
) -> None:
    emulator.emulator.configure(PRIMARY, {"input_modalities": ["text"], "google_search": False})
    overrides = {PRIMARY: {"input_modalities": ["text"], "google_search": False}}
    async with run_gateway(gateway_settings(emulator.base_url, model_overrides=overrides)) as gw:
        image = await gw.client().aio.models.generate_content(
            model="auto", contents=[types.Part.from_bytes(data=PNG, mime_type="image/png"), "?"]
        )
        search = await gw.client().aio.models.generate_content(
            model="auto",
            contents="news?",
            config=types.GenerateContentConfig(
                tools=[types.Tool(google_search=types.GoogleSearch())]
            ),
        )
        plain = await gw.client().aio.models.generate_content(model="auto", contents="hi")
    assert image.model_version == search.model_version == FALLBACK
    assert plain.model_version == PRIMARY
    assert emulator.emulator.count(model=PRIMARY, action="generate") == 1  # the plain call


async def test_url_context_reads_the_pages_named_in_the_prompt(
    gateway: Gateway, emulator: EmulatorServer
) -> None:
    prompt = "Summarise https://example.com/report and https://example.org/notes."
    url_tools = types.GenerateContentConfig(tools=[types.Tool(url_context=types.UrlContext())])
    via = await gateway.client().aio.models.generate_content(
        model="auto", contents=prompt, config=url_tools
    )
    assert emulator.emulator.requests[-1].tools == ("urlContext",)
    ref = await direct(emulator).aio.models.generate_content(
        model=PRIMARY, contents=prompt, config=url_tools
    )
    assert via.text == ref.text and "example.org/notes" in (via.text or "")


@pytest.mark.parametrize(
    ("part", "message"),
    [
        (types.Part.from_uri(file_uri="https://x/files/abc", mime_type="image/png"), "fileData"),
        (types.Part.from_function_response(name="f", response={"ok": 1}), "functionResponse"),
    ],
)
async def test_what_the_gateway_cannot_carry_is_a_400_naming_it(
    gateway: Gateway, emulator: EmulatorServer, part: types.Part, message: str
) -> None:
    with pytest.raises(errors.ClientError) as caught:
        await gateway.client().aio.models.generate_content(model="auto", contents=[part, "hi"])
    assert caught.value.code == 400
    assert message in (caught.value.message or "")
    assert emulator.emulator.count(action="generate") == 0


async def test_a_large_inline_file_is_mapped_off_the_event_loop_and_arrives_whole(
    gateway: Gateway, emulator: EmulatorServer
) -> None:
    audio = b"RIFF" + bytes(range(256)) * (OFF_LOOP_BYTES // 256 + 1)
    assert len(audio) * 4 // 3 > OFF_LOOP_BYTES  # its base64 body takes the thread path
    response = await gateway.client().aio.models.generate_content(
        model="auto", contents=[types.Part.from_bytes(data=audio, mime_type="audio/wav"), "?"]
    )
    assert response.model_version == PRIMARY
    [part] = [p for p in emulator.emulator.requests[-1].parts if p["kind"] == "inline_data"]
    assert (part["mimeType"], part["bytes"]) == ("audio/wav", len(audio))
