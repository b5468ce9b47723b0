"""Inline data, file data and URL context through the real google-genai SDK: what the
emulator answers, refuses and records."""

from __future__ import annotations

import pytest
from google import genai
from google.genai import errors, types

from gemini_failover.emulator import Emulator, expected_text

PROMPT = "Describe what I sent."
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 60
PDF = (
    b"%PDF-1.4\n1 0 obj << /Type /Pages >>\n2 0 obj << /Type /Page >>\n3 0 obj << /Type /Page >>\n"
)


def _candidate(response: types.GenerateContentResponse) -> types.Candidate:
    assert response.candidates is not None
    return response.candidates[0]


async def test_inline_parts_are_answered_counted_and_recorded(
    genai_client: genai.Client, emulator: Emulator
) -> None:
    response = await genai_client.aio.models.generate_content(
        model="gemini-2.5-flash",
        contents=[
            types.Part.from_bytes(data=PNG, mime_type="image/png"),
            types.Part.from_bytes(data=PDF, mime_type="application/pdf"),
            PROMPT,
        ],
    )

    assert response.text == (
        f"Received image/png, {len(PNG)} bytes. Received application/pdf, {len(PDF)} bytes. "
        + expected_text(PROMPT)
    )
    usage = response.usage_metadata
    assert usage is not None and usage.prompt_tokens_details is not None
    details = {
        str(d.modality.value if d.modality else ""): d.token_count
        for d in usage.prompt_tokens_details
    }
    assert details == {"TEXT": 6, "IMAGE": 258, "DOCUMENT": 2 * 258}  # two /Type /Page objects
    assert usage.prompt_token_count == 6 + 258 + 516
    [record] = emulator.requests
    assert record.endpoint == "gemini_api"
    assert [(p["kind"], p.get("mimeType"), p.get("bytes")) for p in record.parts] == [
        ("inline_data", "image/png", len(PNG)),
        ("inline_data", "application/pdf", len(PDF)),
        ("text", "text/plain", len(PROMPT)),
    ]


async def test_count_tokens_counts_media(genai_client: genai.Client) -> None:
    counted = await genai_client.aio.models.count_tokens(
        model="m", contents=[types.Part.from_bytes(data=PNG, mime_type="image/jpeg"), "hi"]
    )
    assert counted.total_tokens == 1 + 258


@pytest.fixture
def emulator() -> Emulator:
    return Emulator(
        {
            "models": {
                "text-only": {"profile": {"input_modalities": ["text"], "url_context": False}},
                "no-audio": {"profile": {"input_modalities": ["text", "image", "pdf", "video"]}},
            }
        }
    )


@pytest.mark.parametrize(
    ("model", "mime", "message"),
    [
        ("text-only", "image/png", "Image input modality is not enabled for models/text-only"),
        ("text-only", "application/pdf", "PDF input modality is not enabled"),
        ("no-audio", "audio/mpeg", "Audio input modality is not enabled for models/no-audio"),
        ("no-audio", "application/zip", "Unsupported MIME type: application/zip"),
    ],
)
async def test_a_model_without_the_modality_answers_400(
    genai_client: genai.Client, emulator: Emulator, model: str, mime: str, message: str
) -> None:
    with pytest.raises(errors.ClientError) as caught:
        await genai_client.aio.models.generate_content(
            model=model, contents=[types.Part.from_bytes(data=b"abc", mime_type=mime), "x"]
        )
    assert caught.value.code == 400
    assert caught.value.status == "INVALID_ARGUMENT"
    assert message in (caught.value.message or "")
    [record] = emulator.requests
    assert record.outcome == "error:INVALID_ARGUMENT"
    assert record.parts[0]["kind"] == "inline_data"


async def test_url_context_reads_the_prompts_urls(
    genai_client: genai.Client, emulator: Emulator
) -> None:
    prompt = "Compare https://example.com/a and https://down.invalid/b please."
    response = await genai_client.aio.models.generate_content(
        model="gemini-2.5-pro",
        contents=prompt,
        config=types.GenerateContentConfig(tools=[types.Tool(url_context=types.UrlContext())]),
    )

    assert response.text == (
        "Read https://example.com/a . Could not read https://down.invalid/b . "
        + expected_text(prompt)
    )
    metadata = _candidate(response).url_context_metadata
    assert metadata is not None and metadata.url_metadata is not None
    assert [(m.retrieved_url, m.url_retrieval_status) for m in metadata.url_metadata] == [
        ("https://example.com/a", types.UrlRetrievalStatus.URL_RETRIEVAL_STATUS_SUCCESS),
        ("https://down.invalid/b", types.UrlRetrievalStatus.URL_RETRIEVAL_STATUS_ERROR),
    ]
    assert emulator.requests[-1].tools == ("urlContext",)

    with pytest.raises(errors.ClientError, match="Url context is not supported"):
        await genai_client.aio.models.generate_content(
            model="text-only",
            contents=prompt,
            config=types.GenerateContentConfig(tools=[types.Tool(url_context=types.UrlContext())]),
        )


async def test_without_the_tool_urls_are_just_text(genai_client: genai.Client) -> None:
    prompt = "See https://example.com/a"
    response = await genai_client.aio.models.generate_content(model="m", contents=prompt)
    assert response.text == expected_text(prompt)
    assert _candidate(response).url_context_metadata is None


async def test_a_continuation_of_an_answer_with_inputs_is_the_rest(
    genai_client: genai.Client,
) -> None:
    image = types.Part.from_bytes(data=PNG, mime_type="image/png")
    full = f"Received image/png, {len(PNG)} bytes. " + expected_text(PROMPT)
    prefix = full[:50]
    response = await genai_client.aio.models.generate_content(
        model="m",
        contents=[
            types.Content(role="user", parts=[image, types.Part(text=PROMPT)]),
            types.Content(role="model", parts=[types.Part(text=prefix)]),
            types.Content(role="user", parts=[types.Part(text="Continue.")]),
        ],
    )
    assert response.text == full[len(prefix) :]
