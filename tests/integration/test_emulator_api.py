"""The emulator speaks Gemini's wire format: the real google-genai SDK, over loopback HTTP."""

from __future__ import annotations

import math
from enum import StrEnum

import httpx2
import jsonschema
import pytest
from google import genai
from google.genai import errors, types
from pydantic import BaseModel, Field

from gemini_failover.emulator import (
    Emulator,
    EmulatorServer,
    expected_text,
    openapi_to_json_schema,
    stream_chunks_for,
)

PROMPT = "Explain circuit breakers in two paragraphs."


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def _candidate(response: types.GenerateContentResponse) -> types.Candidate:
    """The first candidate; the SDK types `candidates` as optional."""
    assert response.candidates is not None
    return response.candidates[0]


def _usage(response: types.GenerateContentResponse) -> types.GenerateContentResponseUsageMetadata:
    assert response.usage_metadata is not None
    return response.usage_metadata


def _values(embedding: types.ContentEmbedding) -> list[float]:
    assert embedding.values is not None
    return embedding.values


async def test_generate_answers_expected_text_with_usage(
    genai_client: genai.Client, emulator: Emulator
) -> None:
    response = await genai_client.aio.models.generate_content(model="gemini-a", contents=PROMPT)

    expected = expected_text(PROMPT)
    assert response.text == expected
    assert 40 <= len(expected.split()) <= 80
    candidate = _candidate(response)
    assert candidate.finish_reason == types.FinishReason.STOP
    assert candidate.content is not None
    assert candidate.content.role == "model"
    usage = _usage(response)
    assert usage.prompt_token_count == _tokens(PROMPT)
    assert usage.candidates_token_count == _tokens(expected)
    assert usage.prompt_token_count is not None and usage.candidates_token_count is not None
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    assert response.model_version == "gemini-a"
    assert [(r.model, r.action, r.status, r.outcome) for r in emulator.requests] == [
        ("gemini-a", "generate", 200, "ok")
    ]


async def test_answer_depends_only_on_first_user_turn(genai_client: genai.Client) -> None:
    models = genai_client.aio.models
    first = await models.generate_content(model="m", contents="alpha")
    again = await models.generate_content(
        model="m", contents="alpha", config=types.GenerateContentConfig(system_instruction="x")
    )
    other = await models.generate_content(model="m", contents="beta")
    assert first.text == again.text == expected_text("alpha")
    assert other.text == expected_text("beta") != first.text


async def test_stream_chunks_join_to_expected_text(
    genai_client: genai.Client, emulator: Emulator
) -> None:
    stream = await genai_client.aio.models.generate_content_stream(model="m", contents=PROMPT)
    chunks = [chunk async for chunk in stream]

    expected = expected_text(PROMPT)
    assert [c.text for c in chunks] == stream_chunks_for(expected, 8)
    assert "".join(c.text or "" for c in chunks) == expected
    assert [_candidate(c).finish_reason for c in chunks[:-1]] == [None] * 7
    assert _candidate(chunks[-1]).finish_reason == types.FinishReason.STOP
    assert _usage(chunks[-1]).candidates_token_count == _tokens(expected)
    assert all(c.usage_metadata is None for c in chunks[:-1])
    assert emulator.requests[-1].chunks_sent == 8


async def test_stream_chunk_count_comes_from_profile(
    genai_client: genai.Client, emulator: Emulator
) -> None:
    emulator.configure("three", {"stream_chunks": 3})
    stream = await genai_client.aio.models.generate_content_stream(model="three", contents="q")
    texts = [chunk.text async for chunk in stream]
    assert texts == stream_chunks_for(expected_text("q"), 3)
    assert len(texts) == 3


async def test_count_tokens(genai_client: genai.Client, emulator: Emulator) -> None:
    result = await genai_client.aio.models.count_tokens(model="m", contents="x" * 41)
    assert result.total_tokens == 11
    assert emulator.count(action="count_tokens", outcome="ok") == 1


async def test_embed_content_is_deterministic_unit_vectors(
    genai_client: genai.Client, emulator: Emulator
) -> None:
    models = genai_client.aio.models
    result = await models.embed_content(model="emb", contents=["hello", "world", "hello"])
    assert result.embeddings is not None
    vectors = [_values(e) for e in result.embeddings]
    assert [len(v) for v in vectors] == [768, 768, 768]
    assert vectors[0] == vectors[2] != vectors[1]
    for vector in vectors:
        assert math.isclose(math.fsum(x * x for x in vector), 1.0, rel_tol=1e-9)

    small = await models.embed_content(
        model="emb", contents="hello", config=types.EmbedContentConfig(output_dimensionality=16)
    )
    assert small.embeddings is not None
    assert len(_values(small.embeddings[0])) == 16

    emulator.configure("emb", {"embedding_dim": 32})
    sized = await models.embed_content(model="emb", contents="hello")
    assert sized.embeddings is not None
    assert len(_values(sized.embeddings[0])) == 32
    with pytest.raises(errors.ClientError) as too_big:
        await models.embed_content(
            model="emb",
            contents="hello",
            config=types.EmbedContentConfig(output_dimensionality=64),
        )
    assert too_big.value.code == 400


async def test_get_model_reports_profile(genai_client: genai.Client, emulator: Emulator) -> None:
    emulator.configure(
        "small",
        {
            "display_name": "Small",
            "input_token_limit": 1000,
            "output_token_limit": 50,
            "methods": ["generateContent", "countTokens"],
        },
    )
    model = await genai_client.aio.models.get(model="small")
    assert model.name == "models/small"
    assert model.display_name == "Small"
    assert model.input_token_limit == 1000
    assert model.output_token_limit == 50
    assert model.supported_actions == ["generateContent", "countTokens"]

    default = await genai_client.aio.models.get(model="models/anything")
    assert default.input_token_limit == 1_048_576
    assert default.output_token_limit == 65_536
    assert "streamGenerateContent" in (default.supported_actions or [])


async def test_list_models_lists_configured_models(
    genai_client: genai.Client, emulator: Emulator
) -> None:
    for name in ("a", "b", "c"):
        emulator.configure(name)
    emulator.configure("*", {"input_token_limit": 10})  # defaults, not a model
    pager = await genai_client.aio.models.list(config={"page_size": 2})
    names = [model.name async for model in pager]
    assert names == ["models/a", "models/b", "models/c"]
    assert emulator.count(action="list") == 2  # two pages


async def test_missing_api_key_is_401(emulator_server: EmulatorServer) -> None:
    url = f"{emulator_server.base_url}/v1beta/models/m:generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    async with httpx2.AsyncClient() as http:
        anonymous = await http.post(url, json=body)
        keyed = await http.post(url, json=body, headers={"x-goog-api-key": "k"})
    assert anonymous.status_code == 401
    error = anonymous.json()["error"]
    assert error["code"] == 401
    assert error["status"] == "UNAUTHENTICATED"
    assert keyed.status_code == 200
    assert emulator_server.emulator.requests[0].outcome == "error:UNAUTHENTICATED"


async def test_methods_missing_from_profile_are_not_found(
    genai_client: genai.Client, emulator: Emulator
) -> None:
    emulator.configure("gen-only", {"methods": ["generateContent"]})
    models = genai_client.aio.models
    assert (await models.generate_content(model="gen-only", contents="q")).text
    stream = await models.generate_content_stream(model="gen-only", contents="q")
    with pytest.raises(errors.ClientError) as streamed:
        await anext(stream)
    assert streamed.value.code == 404
    assert streamed.value.status == "NOT_FOUND"
    assert "not supported for streamGenerateContent" in (streamed.value.message or "")
    with pytest.raises(errors.ClientError) as embedded:
        await models.embed_content(model="gen-only", contents="q")
    assert embedded.value.code == 404

    emulator.configure("embedder", {"methods": ["embedContent"]})  # Gemini's own name
    assert (await models.embed_content(model="embedder", contents="q")).embeddings


async def test_unknown_models_can_be_refused(make_genai_client: object) -> None:
    emulator = Emulator({"models": {"known": {}}, "serve_unknown_models": False})
    async with EmulatorServer(emulator) as server:
        client = genai.Client(
            api_key="k",
            http_options=types.HttpOptions(
                base_url=server.base_url,
                api_version="v1beta",
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )
        assert (await client.aio.models.generate_content(model="known", contents="q")).text
        with pytest.raises(errors.ClientError) as unknown:
            await client.aio.models.generate_content(model="unknown", contents="q")
        with pytest.raises(errors.ClientError) as unknown_get:
            await client.aio.models.get(model="unknown")
        await client.aio.aclose()
    assert unknown.value.code == 404
    assert unknown_get.value.code == 404


async def test_input_token_limit(genai_client: genai.Client, emulator: Emulator) -> None:
    emulator.configure("tiny", {"input_token_limit": 10})
    models = genai_client.aio.models
    assert (await models.generate_content(model="tiny", contents="x" * 40)).text
    with pytest.raises(errors.ClientError) as exc_info:
        await models.generate_content(model="tiny", contents="x" * 44)
    error = exc_info.value
    assert error.code == 400
    assert error.status == "INVALID_ARGUMENT"
    assert error.message == (
        "The input token count (11) exceeds the maximum number of tokens allowed (10)."
    )
    assert emulator.requests[-1].outcome == "error:INVALID_ARGUMENT"


async def test_max_output_tokens_truncates_with_max_tokens(genai_client: genai.Client) -> None:
    config = types.GenerateContentConfig(max_output_tokens=10)
    response = await genai_client.aio.models.generate_content(
        model="m", contents=PROMPT, config=config
    )
    assert _candidate(response).finish_reason == types.FinishReason.MAX_TOKENS
    text = response.text or ""
    assert text and expected_text(PROMPT).startswith(text)
    assert _usage(response).candidates_token_count == _tokens(text) <= 10

    stream = await genai_client.aio.models.generate_content_stream(
        model="m", contents=PROMPT, config=config
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.text or "" for c in chunks) == text
    assert _candidate(chunks[-1]).finish_reason == types.FinishReason.MAX_TOKENS


def _continuation(prefix: str, first: str = PROMPT) -> list[types.Content]:
    return [
        types.Content(role="user", parts=[types.Part(text=first)]),
        types.Content(role="model", parts=[types.Part(text=prefix)]),
        types.Content(role="user", parts=[types.Part(text="Continue exactly where you left off.")]),
    ]


async def test_continuation_answers_the_rest(genai_client: genai.Client) -> None:
    expected = expected_text(PROMPT)
    prefix = "".join(stream_chunks_for(expected, 8)[:3])
    models = genai_client.aio.models
    response = await models.generate_content(model="m", contents=_continuation(prefix))
    assert response.text == expected[len(prefix) :]
    assert prefix + (response.text or "") == expected

    stream = await models.generate_content_stream(model="m", contents=_continuation(prefix))
    chunks = [chunk.text async for chunk in stream]
    assert chunks == stream_chunks_for(expected[len(prefix) :], 8)

    mid_word = expected[:17]  # a prefix that ends inside a word still continues exactly
    rest = await models.generate_content(model="m", contents=_continuation(mid_word))
    assert mid_word + (rest.text or "") == expected


async def test_model_turn_that_is_not_a_prefix_gets_a_normal_answer(
    genai_client: genai.Client,
) -> None:
    response = await genai_client.aio.models.generate_content(
        model="m", contents=_continuation("Something the emulator never said.")
    )
    assert response.text == expected_text(PROMPT)


async def test_overlap_fault_repeats_the_last_words(
    genai_client: genai.Client, emulator: Emulator
) -> None:
    emulator.configure("m", faults=[{"kind": "overlap", "words": 3, "count": 1}])
    expected = expected_text(PROMPT)
    prefix = "".join(stream_chunks_for(expected, 8)[:4])
    words = prefix.split()
    models = genai_client.aio.models

    overlapped = await models.generate_content(model="m", contents=_continuation(prefix))
    text = overlapped.text or ""
    repeated = " ".join(words[-3:])
    assert text.startswith(repeated)
    assert text == prefix[prefix.rindex(words[-3]) :] + expected[len(prefix) :]
    assert emulator.requests[-1].outcome == "fault:overlap"

    clean = await models.generate_content(model="m", contents=_continuation(prefix))
    assert clean.text == expected[len(prefix) :]  # count was 1


class Colour(StrEnum):
    RED = "red"
    GREEN = "green"


class Part(BaseModel):
    label: str = Field(min_length=3, max_length=20)
    weight: float = Field(ge=0.5, le=2.5)


class Report(BaseModel):
    title: str
    score: int = Field(ge=1, le=5)
    ratio: float = Field(gt=0)
    ok: bool
    colour: Colour
    tags: list[str] = Field(min_length=2)
    parts: list[Part]
    note: str | None = None


async def test_structured_output_json_schema_validates(
    genai_client: genai.Client, emulator: Emulator
) -> None:
    schema = Report.model_json_schema()  # $defs + $ref, anyOf with null, enums, bounds
    config = types.GenerateContentConfig(
        response_mime_type="application/json", response_json_schema=schema
    )
    response = await genai_client.aio.models.generate_content(
        model="m", contents="report", config=config
    )
    value = response.parsed
    jsonschema.validate(value, schema)
    assert isinstance(value, dict)  # a JSON schema (no response_schema) parses to plain JSON
    assert Report.model_validate(value).colour is Colour.RED  # enums take the first value
    assert len(value["tags"]) == 2

    emulator.configure("m", faults=[{"kind": "schema_violation"}])
    broken = await genai_client.aio.models.generate_content(
        model="m", contents="report", config=config
    )
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken.parsed, schema)
    assert emulator.requests[-1].outcome == "fault:schema_violation"


async def test_structured_output_openapi_schema_parses(
    genai_client: genai.Client, emulator: Emulator
) -> None:
    class Simple(BaseModel):
        name: str
        age: int = Field(ge=18, le=30)
        tags: list[str]

    config = types.GenerateContentConfig(
        response_mime_type="application/json", response_schema=Simple
    )
    response = await genai_client.aio.models.generate_content(
        model="m", contents="who", config=config
    )
    assert isinstance(response.parsed, Simple)
    assert 18 <= response.parsed.age <= 30

    stream = await genai_client.aio.models.generate_content_stream(
        model="m", contents="who", config=config
    )
    text = "".join([chunk.text or "" async for chunk in stream])
    assert Simple.model_validate_json(text) == response.parsed

    # The SDK sent Gemini's OpenAPI dialect (upper-case types); converted, it validates.
    sent = types.Schema.from_json_schema(
        json_schema=types.JSONSchema(**Simple.model_json_schema())
    ).model_dump(mode="json", exclude_none=True, by_alias=True)
    jsonschema.validate(response.parsed.model_dump(), openapi_to_json_schema(sent))

    emulator.configure("m", faults=[{"kind": "schema_violation"}])
    broken = await genai_client.aio.models.generate_content(
        model="m", contents="who", config=config
    )
    assert broken.parsed is None  # the SDK could not parse it into Simple


async def test_structured_output_refused_without_json_schema_support(
    genai_client: genai.Client, emulator: Emulator
) -> None:
    emulator.configure("old", {"json_schema": False})
    config = types.GenerateContentConfig(
        response_mime_type="application/json",
        response_json_schema={"type": "object", "properties": {"a": {"type": "string"}}},
    )
    with pytest.raises(errors.ClientError) as exc_info:
        await genai_client.aio.models.generate_content(model="old", contents="q", config=config)
    assert exc_info.value.code == 400
    assert exc_info.value.status == "INVALID_ARGUMENT"
    plain = await genai_client.aio.models.generate_content(model="old", contents="q")
    assert plain.text == expected_text("q")
