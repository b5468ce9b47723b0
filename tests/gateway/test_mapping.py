"""The mapping between Gemini JSON and the manager's requests, and the error table,
without sockets."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from gemini_failover.gateway import mapping
from gemini_failover.gateway.errors import STATUS_FOR, blocked_response, failure_reply
from gemini_failover.gateway.mapping import MappingError
from gemini_failover.gateway.routing import ChainRouter
from gemini_failover.inputs.media import IMAGE_TOKENS
from gemini_failover.protocol import Media, Thinking, Turn
from gemini_failover.resilience.capabilities import Needs
from gemini_failover.resilience.errors import Category
from gemini_failover.resilience.results import RequestFailed

USER = {"role": "user", "parts": [{"text": "Hi "}, {"text": "there"}]}
#: A 1x1 PNG, as the SDK sends bytes: URL-safe base64 (no padding needed).
_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
_PNG_PART = {
    "inlineData": {"mimeType": "image/png", "data": base64.urlsafe_b64encode(_PNG).decode()}
}


def test_a_full_request_maps_onto_the_managers_request() -> None:
    request = mapping.generation_request(
        {
            "contents": [USER, {"role": "model", "parts": [{"text": "Hello"}]}, USER],
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "generationConfig": {
                "temperature": 0.5,
                "topP": 0.9,
                "maxOutputTokens": 100,
                "stopSequences": ["END"],
                "responseMimeType": "application/json",
                "responseJsonSchema": {"type": "object"},
            },
        },
        "pro",
    )
    assert request.contents == (
        Turn("user", "Hi there"),
        Turn("model", "Hello"),
        Turn("user", "Hi there"),
    )
    assert request.system_instruction == "Be brief."
    assert (request.temperature, request.top_p, request.max_output_tokens) == (0.5, 0.9, 100)
    assert request.stop_sequences == ("END",)
    assert request.response_schema == {"type": "object"}


def test_snake_case_fields_and_a_string_system_instruction_are_read() -> None:
    request = mapping.generation_request(
        {
            "contents": [USER],
            "system_instruction": "Short answers.",
            "generation_config": {"max_output_tokens": 7, "response_mime_type": "text/plain"},
        }
    )
    assert request.system_instruction == "Short answers."
    assert request.max_output_tokens == 7
    assert request.response_schema is None


def test_openapi_response_schema_becomes_json_schema_and_json_mode_any_json() -> None:
    openapi = {"type": "OBJECT", "properties": {"n": {"type": "INTEGER", "nullable": True}}}
    request = mapping.generation_request(
        {
            "contents": [USER],
            "generationConfig": {"responseMimeType": "application/json", "responseSchema": openapi},
        }
    )
    assert request.response_schema == {
        "type": "object",
        "properties": {"n": {"type": ["integer", "null"]}},
    }
    bare = mapping.generation_request(
        {"contents": [USER], "generationConfig": {"responseMimeType": "application/json"}}
    )
    assert bare.response_schema == {}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"contents": [USER], "model": "models/flash"}, "does not match the model in the URL"),
        (
            {"contents": [USER], "generationConfig": {"responseSchema": {"type": "OBJECT"}}},
            "response_mime_type must be application/json",
        ),
        (
            {"contents": [USER], "generationConfig": {"responseMimeType": "text/x.enum"}},
            "only text/plain and application/json",
        ),
        ({"contents": [USER], "cachedContent": "cachedContents/1"}, "cachedContent is not"),
        (
            {"contents": [{"parts": [{"fileData": {"fileUri": "files/x"}}]}]},
            "fileData is a file in one API key's Files API storage",
        ),
        ({"contents": [USER], "tools": [{"codeExecution": {}}]}, "codeExecution (code execution)"),
        ({"contents": [USER], "tools": [{"noSuchTool": {}}]}, 'Unknown name "noSuchTool"'),
        (
            {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "@@"}}]}]},
            "Base64 decoding failed",
        ),
        (
            {"contents": [{"parts": [{"inlineData": {"data": "AAAA"}}]}]},
            "mime_type: a MIME type is required",
        ),
        (
            {"contents": [{"parts": [{"text": "a"}, _PNG_PART, {"text": "b"}]}]},
            "interleaved in one turn",
        ),
        (
            {"contents": [{"parts": [_PNG_PART, {"text": "first or second?"}, _PNG_PART]}]},
            "interleaved in one turn",
        ),
        (
            {
                "contents": [USER],
                "generationConfig": {
                    "thinkingConfig": {"thinkingBudget": 8, "thinkingLevel": "LOW"}
                },
            },
            "cannot both be set",
        ),
        (
            {"contents": [USER], "generationConfig": {"thinkingConfig": {"thinkingLevel": "HUGE"}}},
            "thinking_level",
        ),
        ({"contents": [{"parts": [{"functionCall": {"name": "f"}}]}]}, "functionCall is not"),
        ({"contents": "hello"}, "Invalid value at 'contents'"),
        ({"contents": [USER], "generationConfig": {"maxOutputTokens": 0}}, "positive integer"),
    ],
)
def test_requests_the_manager_cannot_carry_are_refused_naming_the_field(
    body: dict[str, Any], message: str
) -> None:
    with pytest.raises(MappingError) as caught:
        mapping.generation_request(body, "pro")
    assert caught.value.reply.code == 400
    assert message in caught.value.reply.body["error"]["message"]


def test_an_explicit_null_for_an_unsupported_field_is_as_good_as_absent() -> None:
    request = mapping.generation_request({"contents": [USER], "tools": None})
    assert request.contents == (Turn("user", "Hi there"),)


def test_count_tokens_reads_contents_or_a_generate_request() -> None:
    assert mapping.count_tokens_contents({"contents": [USER]}) == (Turn("user", "Hi there"),)
    inner = {"generateContentRequest": {"model": "models/pro", "contents": [USER]}}
    assert mapping.count_tokens_contents(inner, "pro") == (Turn("user", "Hi there"),)
    with pytest.raises(MappingError, match="systemInstruction is not supported"):
        mapping.count_tokens_contents(
            {"generateContentRequest": {"contents": [USER], "systemInstruction": "x"}}
        )


def test_embed_bodies_single_and_batch() -> None:
    single = mapping.embed_call({"content": USER}, "e", batch=False)
    assert single == mapping.EmbedCall(("Hi there",), False)
    batch = mapping.embed_call(
        {"requests": [{"model": "models/e", "content": USER}, {"content": USER}]}, "e", batch=True
    )
    assert batch.texts == ("Hi there", "Hi there") and batch.batch
    with pytest.raises(MappingError, match="outputDimensionality is not supported"):
        mapping.embed_call(
            {"requests": [{"content": USER, "outputDimensionality": 8}]}, "e", batch=True
        )
    with pytest.raises(MappingError, match="taskType is not supported"):
        mapping.embed_call({"content": USER, "taskType": "RETRIEVAL_QUERY"}, "e", batch=False)


def test_the_unsupported_table_lists_what_is_refused_today() -> None:
    assert "toolConfig" in mapping.UNSUPPORTED["GenerateContentRequest"]
    assert "tools" not in mapping.UNSUPPORTED["GenerateContentRequest"]
    assert "topK" in mapping.UNSUPPORTED["GenerationConfig"]
    assert "thinkingConfig" not in mapping.UNSUPPORTED["GenerationConfig"]
    assert "fileData" in mapping.UNSUPPORTED["Part"]
    assert not {"text", "inlineData", "thought"} & set(mapping.UNSUPPORTED["Part"])


@pytest.mark.parametrize(
    ("category", "retry_after", "status", "retry_delay"),
    [
        (Category.RATE_LIMITED, 12.0, 429, "12s"),
        (Category.OVERLOADED, 1.0, 429, "1s"),
        (Category.NO_CAPABLE_MODEL, None, 400, None),
        (Category.BAD_REQUEST, None, 400, None),
        (Category.TIMEOUT, None, 504, None),
        (Category.UNAVAILABLE, 2.5, 503, "2.5s"),
        (Category.BUG, None, 500, None),
    ],
)
def test_the_error_table(
    category: Category, retry_after: float | None, status: int, retry_delay: str | None
) -> None:
    reply = failure_reply(RequestFailed(category, "what happened", retry_after=retry_after))
    assert reply.code == status
    details = reply.body["error"].get("details", [])
    delays = [d["retryDelay"] for d in details if d["@type"].endswith("RetryInfo")]
    assert delays == ([retry_delay] if retry_delay else [])
    assert bool(dict(reply.headers).get("retry-after")) == (retry_delay is not None)


def test_every_category_has_a_status() -> None:
    assert set(STATUS_FOR) == set(Category)


def test_an_upstream_auth_failure_is_a_fixed_502_message() -> None:
    failed = RequestFailed(
        Category.AUTH,
        "Gemini rejected the credentials (401) for pro: key AIza-secret is bad. Check ...",
    )
    reply = failure_reply(failed)
    assert reply.code == 502
    assert "AIza-secret" not in str(reply.body)
    assert "(pro)" in reply.body["error"]["message"]
    on_vertex = RequestFailed(
        Category.AUTH,
        "Gemini rejected the credentials (403) for vertex:gemini-2.5-pro: denied: x. Check ...",
    )
    assert "(vertex:gemini-2.5-pro)" in failure_reply(on_vertex).body["error"]["message"]


def test_a_refusal_is_a_200_answer_with_the_block_reason() -> None:
    failed = RequestFailed(Category.BLOCKED, "the response was blocked by ... filters (RECITATION)")
    body = blocked_response(failed, model_version="pro", response_id="r")
    assert body["candidates"][0]["finishReason"] == "RECITATION"
    assert body["modelVersion"] == "pro"


def test_routing_aliases_chain_models_and_clashes() -> None:
    router = ChainRouter(["pro", "flash"], ["emb"], ["auto", "fast"])
    auto = router.target("auto", "generate")
    assert auto is not None and (auto.kind, auto.first) == ("generate", "pro")
    flash = router.target("flash", "stream")
    assert flash is not None and flash.start == 1
    embed = router.target("fast", "embed")
    assert embed is not None and embed.first == "emb"
    assert router.target("emb", "generate") is None
    assert router.target("other", "generate") is None
    with pytest.raises(ValueError, match="also name chain models"):
        ChainRouter(["pro"], [], ["pro"])


def test_inline_data_thinking_and_tools_become_the_requests_needs() -> None:
    request = mapping.generation_request(
        {
            "contents": [
                {"role": "user", "parts": [{"text": "Earlier"}]},
                # a thought summary from the earlier answer is not sent again
                {"role": "model", "parts": [{"text": "hmm", "thought": True}, {"text": "Ok"}]},
                {
                    "role": "user",
                    "parts": [{"text": "What is this? "}, {"text": "Be brief."}, _PNG_PART],
                },
            ],
            "tools": [{"google_search": {}}, {"urlContext": {}}],
            "generationConfig": {
                "thinkingConfig": {"thinkingLevel": "LOW", "include_thoughts": True}
            },
        }
    )
    assert request.contents[1] == Turn("model", "Ok")
    last = request.contents[2]
    assert last.text == "What is this? Be brief."
    (media,) = last.attachments
    assert isinstance(media, Media)
    assert (media.mime_type, media.data, media.size) == ("image/png", _PNG, len(_PNG))
    assert media.sha256 == hashlib.sha256(_PNG).hexdigest()
    assert media.tokens == IMAGE_TOKENS
    assert request.google_search and request.url_context and request.urls == ()
    assert request.thinking == Thinking(level="low", budget=None, include_thoughts=True)
    needs = Needs.of(request)
    assert set(needs.capabilities()) == {"google_search", "url_context", "thinking", "image_input"}
    assert needs.prompt_tokens > IMAGE_TOKENS


@pytest.mark.parametrize(
    ("config", "thinking"),
    [
        ({"thinkingBudget": 0}, Thinking(level=None, budget=0)),
        ({"thinkingBudget": 2048}, Thinking(level=None, budget=2048)),
        ({"thinkingBudget": -1}, Thinking(level=None, budget=None)),  # dynamic: model default
        ({"thinkingLevel": "MINIMAL"}, Thinking(level="off")),
        ({"thinking_level": "high"}, Thinking(level="high")),
        ({"includeThoughts": True}, Thinking(level=None, include_thoughts=True)),
    ],
)
def test_thinking_config_maps_onto_the_managers_thinking(
    config: dict[str, Any], thinking: Thinking
) -> None:
    body = {"contents": [USER], "generationConfig": {"thinkingConfig": config}}
    assert mapping.generation_request(body).thinking == thinking
