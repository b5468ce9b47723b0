"""Every tool and the health resource through an in-process MCP client, against the
emulator over real HTTP and the real google-genai SDK."""

from __future__ import annotations

import asyncio
import json

import pytest
from mcp import Client
from mcp.types import TextResourceContents

from gemini_failover.emulator import Emulator, EmulatorServer, expected_text
from gemini_failover.gemini.backend import GeminiBackend
from gemini_failover.protocol import GenerationRequest
from gemini_failover.resilience.manager import FailoverManager
from gemini_failover.server.app import build_server
from gemini_failover.server.runtime import Runtime
from tests.e2e.conftest import (
    EMBEDDING,
    FALLBACK,
    PRIMARY,
    Progress,
    assert_clear_error,
    fast_settings,
    held,
)

TOOLS = {
    "gemini_generate",
    "gemini_chat",
    "gemini_generate_json",
    "gemini_count_tokens",
    "gemini_embed",
    "gemini_list_models",
    "gemini_health",
}

LOCAL_DOCUMENTS = {"gemini_list_models", "gemini_health"}


async def test_lists_tools_with_schemas_and_truthful_annotations(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description and len(tool.description) > 60
        # The two documents (models, health) are open maps: no outputSchema for them.
        assert (tool.output_schema is None) == (tool.name in LOCAL_DOCUMENTS)
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is True
        assert tool.annotations.destructive_hint is False
    generate = tools["gemini_generate"]
    props = generate.input_schema["properties"]
    # Flat parameters, not {"args": {...}}.
    assert set(props) >= {"prompt", "temperature", "top_p", "max_output_tokens"}
    assert generate.input_schema["required"] == ["prompt"]
    assert "ctx" not in props
    assert props["prompt"]["description"]
    assert generate.annotations and generate.annotations.open_world_hint is True
    assert generate.annotations.idempotent_hint is False
    health_annotations = tools["gemini_health"].annotations
    embed_annotations = tools["gemini_embed"].annotations
    assert health_annotations is not None and embed_annotations is not None
    assert health_annotations.open_world_hint is False
    assert embed_annotations.idempotent_hint is True
    out = generate.output_schema or {}
    assert {"text", "served_by", "attempts", "failovers", "spans", "usage"} <= set(
        out["properties"]
    )


async def test_generate_returns_text_with_provenance(client: Client, emulator: Emulator) -> None:
    result = await client.call_tool("gemini_generate", {"prompt": "Tell me about rivers"})
    assert not result.is_error
    out = result.structured_content
    assert out is not None
    assert out["text"] == expected_text("Tell me about rivers")
    assert out["served_by"] == PRIMARY
    assert out["attempts"] == [{"model": PRIMARY, "outcome": "ok"}]
    assert out["failovers"] == []
    assert out["spans"] == [{"model": PRIMARY, "start": 0, "end": len(out["text"])}]
    assert out["usage"]["total_tokens"] > 0
    assert out["finish_reason"] == "STOP"
    assert out["request_id"]
    # No progress token: one unary call, no stream.
    assert emulator.count(action="generate") == 1
    assert emulator.count(action="stream") == 0


async def test_progress_deltas_concatenate_to_the_final_text(
    client: Client, emulator: Emulator
) -> None:
    progress = Progress()
    result = await client.call_tool(
        "gemini_generate", {"prompt": "stream this please"}, progress_callback=progress
    )
    assert not result.is_error
    text = result.structured_content["text"]
    assert len(progress.deltas) > 1
    assert progress.text == text == expected_text("stream this please")
    assert progress.values == sorted(progress.values)  # monotonic progress
    assert progress.values[-1] == len(text)
    assert emulator.count(model=PRIMARY, action="stream") == 1
    assert emulator.count(action="generate") == 0


async def test_primary_outage_fails_over_and_provenance_shows_it(
    client: Client, emulator: Emulator
) -> None:
    emulator.configure(PRIMARY, faults=[{"kind": "status", "code": 503}])
    result = await client.call_tool("gemini_generate", {"prompt": "hello"})
    assert not result.is_error
    out = result.structured_content
    assert out is not None
    assert out["served_by"] == FALLBACK
    assert out["failovers"] == [{"from": PRIMARY, "to": FALLBACK, "reason": "transient"}]
    assert [a["outcome"] for a in out["attempts"]] == ["503", "503", "ok"]
    assert out["attempts"][-1]["model"] == FALLBACK
    assert out["text"] == expected_text("hello")


async def test_stream_cut_mid_answer_is_continued_on_the_fallback(
    client: Client, emulator: Emulator
) -> None:
    emulator.configure(PRIMARY, faults=[{"kind": "stream_cut", "after": 3}])
    progress = Progress()
    result = await client.call_tool(
        "gemini_generate", {"prompt": "a long story"}, progress_callback=progress
    )
    assert not result.is_error
    out = result.structured_content
    assert out is not None
    assert out["text"] == progress.text == expected_text("a long story")
    assert [s["model"] for s in out["spans"]] == [PRIMARY, FALLBACK]
    assert out["spans"][0]["start"] == 0
    assert out["spans"][0]["end"] == out["spans"][1]["start"]
    assert out["spans"][1]["end"] == len(out["text"])
    assert out["served_by"] == FALLBACK


async def test_chat(client: Client) -> None:
    turns = [
        {"role": "user", "text": "Hi, I am planning a trip"},
        {"role": "model", "text": "Where to?"},
        {"role": "user", "text": "The mountains"},
    ]
    result = await client.call_tool("gemini_chat", {"turns": turns, "temperature": 0.2})
    assert not result.is_error
    out = result.structured_content
    assert out is not None
    assert out["text"] == expected_text(turns[0]["text"])  # emulator: first user turn
    assert out["served_by"] == PRIMARY


async def test_generate_json_returns_a_validated_object(client: Client) -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer", "minimum": 0},
            "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}},
        },
        "required": ["name", "age"],
        "$defs": {"tag": {"type": "string"}},
    }
    result = await client.call_tool(
        "gemini_generate_json", {"prompt": "Invent a person", "schema": schema}
    )
    assert not result.is_error
    out = result.structured_content
    assert out is not None
    value = out["value"]
    assert isinstance(value["name"], str)
    assert isinstance(value["age"], int) and value["age"] >= 0
    assert out["served_by"] == PRIMARY


async def test_generate_json_skips_a_model_without_structured_output(
    emulator_server: EmulatorServer, emulator: Emulator
) -> None:
    emulator.configure(PRIMARY, profile={"json_schema": False})
    settings = fast_settings(
        emulator_server.base_url, model_overrides={PRIMARY: {"json_schema": False}}
    )
    backend = GeminiBackend(api_key="k", base_url=emulator_server.base_url)
    manager = FailoverManager(settings, backend)
    await manager.start()
    try:
        async with held(Client(build_server(settings, manager))) as client:
            result = await client.call_tool(
                "gemini_generate_json",
                {
                    "prompt": "x",
                    "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
                },
            )
    finally:
        await manager.aclose()
    assert not result.is_error
    out = result.structured_content
    assert out is not None
    assert out["served_by"] == FALLBACK
    assert out["skipped"] == [
        {"model": PRIMARY, "reason": "capability: no JSON-schema structured output"}
    ]
    assert emulator.count(model=PRIMARY, action="generate") == 0


async def test_count_tokens_and_embed(client: Client) -> None:
    result = await client.call_tool("gemini_count_tokens", {"text": "one two three four"})
    assert not result.is_error
    out = result.structured_content
    assert out is not None and out["total_tokens"] > 0 and out["served_by"] == PRIMARY

    result = await client.call_tool("gemini_embed", {"texts": ["alpha", "beta", "gamma"]})
    assert not result.is_error
    out = result.structured_content
    assert out is not None
    assert len(out["embeddings"]) == 3
    assert out["dimensions"] == len(out["embeddings"][0]) > 0
    assert out["served_by"] == EMBEDDING


async def test_embed_never_fails_over_to_a_generation_model(
    client: Client, emulator: Emulator
) -> None:
    emulator.configure(EMBEDDING, faults=[{"kind": "status", "code": 503}])
    result = await client.call_tool("gemini_embed", {"texts": ["alpha"]})
    text = assert_clear_error(result, "gemini_embed")
    assert EMBEDDING in text
    assert emulator.count(action="embed", model=PRIMARY) == 0
    assert emulator.count(action="embed", model=FALLBACK) == 0


async def test_list_models_and_health_tool_and_resource_agree(
    client: Client, emulator: Emulator
) -> None:
    emulator.configure(PRIMARY, faults=[{"kind": "status", "code": 503}])
    await client.call_tool("gemini_generate", {"prompt": "hi"})  # opens the breaker? not yet
    models = (await client.call_tool("gemini_list_models", {})).structured_content
    assert models is not None
    assert [m["model"] for m in models["models"]] == [PRIMARY, FALLBACK, EMBEDDING]
    assert models["models"][0]["role"] == "primary"
    assert "breaker" in models["models"][0] and "profile" in models["models"][0]

    tool = (await client.call_tool("gemini_health", {})).structured_content
    resource = await client.read_resource("health://status")
    assert resource.contents[0].mime_type == "application/json"
    status = resource.contents[0]
    assert isinstance(status, TextResourceContents)
    document = json.loads(status.text)
    assert tool is not None
    for doc in (tool, document):
        assert doc["status"] in ("ok", "degraded", "down")
        assert doc["active_model"] in (PRIMARY, FALLBACK)
        assert doc["primary_model"] == PRIMARY
        assert doc["last_failover"] == {
            "from": PRIMARY,
            "to": FALLBACK,
            "reason": "transient",
            "at": None,
        }
        assert doc["state_backend"]["backend"] == "memory"
        assert doc["state_backend"]["healthy"] is True
        assert doc["emulator_mode"] is False
        assert doc["version"]
        assert [m["model"] for m in doc["models"]] == [PRIMARY, FALLBACK]
        assert doc["models"][0]["error_rate"] > 0
    assert tool == document


async def test_health_is_down_when_no_model_can_take_traffic(
    client: Client, emulator: Emulator
) -> None:
    for model in (PRIMARY, FALLBACK):
        emulator.configure(model, faults=[{"kind": "status", "code": 503}])
    for _ in range(2):
        await client.call_tool("gemini_generate", {"prompt": "hi"})
    doc = (await client.call_tool("gemini_health", {})).structured_content
    assert doc is not None
    assert doc["status"] == "down"
    assert all(m["breaker"]["state"] == "open" for m in doc["models"])
    assert any("no generation model" in r for r in doc["reasons"])


# -- expected failures are ToolErrors that say what happened and what to do ------------------


async def test_rate_limited_says_when_to_retry(client: Client, emulator: Emulator) -> None:
    # A wait longer than RATE_LIMIT__MAX_WAIT (10 s) moves on to the fallback; with
    # every model rate limited, the request is shed with when to retry.
    for model in (PRIMARY, FALLBACK):
        emulator.configure(
            model, faults=[{"kind": "status", "code": 429, "retry_after": 12, "quota": "minute"}]
        )
    result = await client.call_tool("gemini_generate", {"prompt": "hi"})
    text = assert_clear_error(result, "gemini_generate")
    assert f"{FALLBACK} is rate limited; retry after 12 s" in text
    assert emulator.count(model=PRIMARY, action="generate") == 1  # never retried
    assert emulator.count(model=FALLBACK, action="generate") == 1


async def test_no_capable_model_names_the_limits(client: Client, emulator: Emulator) -> None:
    for model in (PRIMARY, FALLBACK):
        emulator.configure(model, profile={"input_token_limit": 40_000})
    result = await client.call_tool("gemini_generate", {"prompt": "word " * 40_000})
    text = assert_clear_error(result, "gemini_generate")
    assert "no model in the chain can serve this request" in text
    assert "context window 40,000 tokens" in text
    assert "Shorten the input" in text
    # the limits fetched at start-up predate this test's profile: each model's 400
    # teaches it (one call each), and the request ends as a misfit
    assert emulator.count(action="generate") <= 2


async def test_bad_request_fails_at_once_with_the_upstream_message(
    client: Client, emulator: Emulator
) -> None:
    emulator.configure(
        PRIMARY, faults=[{"kind": "status", "code": 400, "message": "Invalid value at 'x'"}]
    )
    result = await client.call_tool("gemini_generate", {"prompt": "hi"})
    text = assert_clear_error(result, "gemini_generate")
    assert "Invalid value at 'x'" in text
    assert "Change the arguments" in text
    assert emulator.count(action="generate") == 1  # no retry, no failover


async def test_upstream_auth_failure_points_at_the_api_key(
    client: Client, emulator: Emulator
) -> None:
    emulator.configure(PRIMARY, faults=[{"kind": "auth", "code": 401}])
    result = await client.call_tool("gemini_generate", {"prompt": "hi"})
    text = assert_clear_error(result, "gemini_generate")
    assert "rejected the credentials (401)" in text
    assert "GEMINI_API_KEY" in text
    # (start-up fetches every model's limits: models.get is not a call of the request)
    assert [r for r in emulator.requests if r.model == FALLBACK and r.action != "get"] == []


async def test_blocked_answer_is_a_clear_refusal(client: Client, emulator: Emulator) -> None:
    emulator.configure(PRIMARY, faults=[{"kind": "blocked"}])
    result = await client.call_tool("gemini_generate", {"prompt": "hi"})
    text = assert_clear_error(result, "gemini_generate")
    assert "safety" in text.lower()


async def test_every_model_down_says_when_to_retry(client: Client, emulator: Emulator) -> None:
    for model in (PRIMARY, FALLBACK):
        emulator.configure(model, faults=[{"kind": "status", "code": 503}])
    result = await client.call_tool("gemini_generate", {"prompt": "hi"})
    text = assert_clear_error(result, "gemini_generate")
    assert "every model in the chain failed" in text


async def test_invalid_arguments_are_rejected_before_any_upstream_call(
    client: Client, emulator: Emulator
) -> None:
    cases: list[tuple[str, dict[str, object], str]] = [
        ("gemini_generate", {"prompt": "   \n\t"}, "prompt is empty"),
        ("gemini_generate", {"prompt": ""}, "prompt"),
        ("gemini_generate", {"prompt": "x", "temperature": 2.5}, "temperature"),
        ("gemini_generate", {"prompt": "x", "top_p": -0.1}, "top_p"),
        ("gemini_generate", {"prompt": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ("gemini_generate", {"prompt": "x", "stop_sequences": ["a"] * 6}, "stop_sequences"),
        ("gemini_generate", {"prompt": "x" * (4 * 1024 * 1024 + 1)}, "4 MiB"),
        ("gemini_generate", {"prompt": "x", "system_instruction": "  "}, "system_instruction"),
        ("gemini_chat", {"turns": []}, "turns"),
        ("gemini_chat", {"turns": [{"role": "model", "text": "hi"}]}, "turns[0]"),
        (
            "gemini_chat",
            {"turns": [{"role": "user", "text": "hi"}, {"role": "model", "text": "yo"}]},
            "last turn",
        ),
        ("gemini_chat", {"turns": [{"role": "system", "text": "hi"}]}, "role"),
        ("gemini_chat", {"turns": [{"role": "user", "text": " "}]}, "turns[0].text"),
        ("gemini_generate_json", {"prompt": "x", "schema": {"type": "nope"}}, "JSON Schema"),
        (
            "gemini_generate_json",
            {"prompt": "x", "schema": {"$ref": "https://example.com/s.json"}},
            "$ref",
        ),
        ("gemini_generate_json", {"prompt": "x", "schema": {"$ref": "#/$defs/x"}}, "nowhere"),
        ("gemini_generate_json", {"prompt": "x", "schema": {"$ref": "#"}}, "itself"),
        ("gemini_embed", {"texts": []}, "texts"),
        ("gemini_embed", {"texts": ["a"] * 101}, "texts"),
        ("gemini_embed", {"texts": ["a", "  "]}, "texts[1]"),
        ("gemini_count_tokens", {"text": " "}, "text is empty"),
        ("gemini_generate", {"prompt": "\ud800"}, "prompt"),
    ]
    for tool, arguments, expected in cases:
        result = await client.call_tool(tool, arguments)
        text = assert_clear_error(result, tool)
        assert expected in text, (tool, arguments, text)
    assert [r for r in emulator.requests if r.action != "get"] == []  # models.get: start-up


# -- cancellation ------------------------------------------------------------------------------


async def test_client_cancellation_closes_the_upstream_stream(
    client: Client, emulator: Emulator, manager: FailoverManager
) -> None:
    # The primary sends two chunks, then hangs: the call is mid-stream when cancelled.
    emulator.configure(PRIMARY, faults=[{"kind": "hang", "after": 2, "actions": ["stream"]}])
    first_delta = asyncio.Event()
    progress = Progress(on_first=first_delta.set)
    call = asyncio.create_task(
        client.call_tool("gemini_generate", {"prompt": "cancel me"}, progress_callback=progress)
    )
    await asyncio.wait_for(first_delta.wait(), 5)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    log = await emulator.wait_for(
        lambda records: any(r.outcome == "client_disconnected" for r in records), timeout=5
    )
    cut = [r for r in log if r.outcome == "client_disconnected"]
    assert cut[0].model == PRIMARY and cut[0].action == "stream"
    # Cancellation is not a failure: no retry, no failover, the breaker is untouched.
    # (start-up fetches every model's limits: models.get is not a call of the request)
    assert [r for r in emulator.requests if r.model == FALLBACK and r.action != "get"] == []
    status = {m["model"]: m for m in manager.model_status()}
    assert status[PRIMARY]["breaker"]["state"] == "closed"
    assert status[PRIMARY]["error_rate"] == 0


async def test_metrics_and_health_count_a_call_the_moment_it_returns(
    runtime: Runtime, emulator: Emulator
) -> None:
    """Metrics, logs and the failover clock observe after the loop's step (off the
    answer's path); reading them right after a call, in the same step, still counts it:
    the runtime delivers what is pending first."""
    emulator.configure(PRIMARY, faults=[{"kind": "status", "code": 503}])
    result = await runtime.manager.generate(GenerationRequest.from_prompt("hi"))
    assert result.provenance.served_by == FALLBACK
    health = runtime.health_now()  # no await in between: the same loop step
    assert health["failovers_since_start"] == 1
    assert health["last_failover"] is not None
    exposition = runtime.metrics.render()[0].decode().splitlines()
    served = (
        f'dualmodelmanager_requests_total{{endpoint="gemini",model="{FALLBACK}",status_code="ok"}}'
    )
    assert f"{served} 1.0" in exposition
