"""What the calling model reads: every tool through a real stdio client (the server as
Claude Desktop runs it), asserting the size and shape of ``content`` and that
``structuredContent`` still carries everything."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult, TextContent

from gemini_failover.emulator import Emulator, EmulatorServer, expected_text
from gemini_failover.tools.models import (
    Attempt,
    FilesOutput,
    GenerateOutput,
    LeftOutCount,
    Span,
    TokenUsage,
)
from gemini_failover.tools.render import CONTENT_TEXT_LIMIT, generated
from tests.e2e.conftest import EMBEDDING, FALLBACK, PRIMARY, fast_env, held
from tests.e2e.test_stdio import params


def text_of(result: CallToolResult) -> str:
    assert not result.is_error, result.content
    assert len(result.content) == 1
    content = result.content[0]
    assert isinstance(content, TextContent)
    return content.text


@pytest.fixture
async def stdio(emulator_server: EmulatorServer, tmp_path: Path) -> AsyncIterator[Client]:
    with (tmp_path / "server.stderr").open("w") as errlog:
        transport = stdio_client(params("serve", env=fast_env(emulator_server.base_url)), errlog)
        async with held(Client(transport)) as client:
            yield client


async def test_every_tool_answers_with_the_answer_itself(stdio: Client, emulator: Emulator) -> None:
    # Right after start-up: the models' limits are known, not null.
    models = await stdio.call_tool("gemini_list_models", {})
    listed = json.loads(text_of(models))
    assert listed == models.structured_content
    for model in listed["models"]:
        assert model["profile"]["input_token_limit"] is not None, model
    health = await stdio.call_tool("gemini_health", {})
    document = json.loads(text_of(health))
    assert document == health.structured_content
    assert all(m["profile"]["input_token_limit"] for m in document["models"])

    # Plain generation: the text is exactly the answer, no provenance line; one last
    # line names the conversation to continue (a text-only client sees nothing else).
    result = await stdio.call_tool("gemini_generate", {"prompt": "Tell me about rivers"})
    answer = expected_text("Tell me about rivers")
    out: dict[str, Any] = result.structured_content or {}
    assert text_of(result) == f"{answer}\n\n[conversation_id: {out['conversation_id']}]"
    assert out["text"] == answer
    assert out["served_by"] == PRIMARY
    assert {"attempts", "failovers", "skipped", "spans", "usage", "request_id"} <= set(out)

    chat = await stdio.call_tool("gemini_chat", {"turns": [{"role": "user", "text": "hi"}]})
    chatted = chat.structured_content or {}
    assert chatted["text"] == expected_text("hi")
    assert text_of(chat) == f"{chatted['text']}\n\n[conversation_id: {chatted['conversation_id']}]"

    # JSON: the value, compact.
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    result = await stdio.call_tool("gemini_generate_json", {"prompt": "a name", "schema": schema})
    text = text_of(result)
    value = (result.structured_content or {})["value"]
    assert json.loads(text) == value
    assert text == json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    result = await stdio.call_tool("gemini_count_tokens", {"text": "count these"})
    total = (result.structured_content or {})["total_tokens"]
    assert text_of(result) == f"{total:,} tokens"

    # 100 embeddings: one short line of text, every vector in the structured content.
    texts = [f"document number {i}" for i in range(100)]
    result = await stdio.call_tool("gemini_embed", {"texts": texts})
    text = text_of(result)
    assert len(text) < 300 and "\n" not in text
    assert "100 embeddings" in text and EMBEDDING in text
    embedded = result.structured_content or {}
    assert len(embedded["embeddings"]) == 100
    assert all(len(v) == embedded["dimensions"] > 0 for v in embedded["embeddings"])
    assert f"{embedded['dimensions']} dimensions" in text

    # A failover: the answer, then one provenance line.
    emulator.configure(PRIMARY, faults=[{"kind": "status", "code": 503}])
    result = await stdio.call_tool("gemini_generate", {"prompt": "fail over"})
    answer, notes = text_of(result).rsplit("\n\n", 1)
    note, thread = notes.split("\n")
    assert answer == expected_text("fail over")
    assert note.startswith(f"[served by {FALLBACK}: failover {PRIMARY} -> {FALLBACK} (transient)")
    assert "3 attempts" in note
    failed_over = result.structured_content or {}
    assert thread == f"[conversation_id: {failed_over['conversation_id']}]"
    assert failed_over["failovers"] == [{"from": PRIMARY, "to": FALLBACK, "reason": "transient"}]
    assert note.endswith(f"request {failed_over['request_id']}]")


async def test_bad_arguments_and_failures_read_as_the_projects_own_messages(
    stdio: Client,
) -> None:
    result = await stdio.call_tool("gemini_generate", {"prompt": "x", "temperature": True})
    assert result.is_error
    message = result.content[0]
    assert isinstance(message, TextContent)
    assert message.text == (
        "Invalid argument temperature for gemini_generate: got true; "
        "allowed: a number from 0 to 2 (or omit it)."
    )
    result = await stdio.call_tool("gemini_embed", {"texts": ["ok"], "bogus": 1})
    message = result.content[0]
    assert isinstance(message, TextContent)
    assert message.text.startswith("Unknown argument bogus for gemini_embed (got 1)")


def test_an_answer_over_the_limit_says_so_in_the_text() -> None:
    long = "x" * (CONTENT_TEXT_LIMIT + 10)
    out = GenerateOutput(
        text=long,
        finish_reason="MAX_TOKENS",
        spans=[Span(model="a", start=0, end=len(long))],
        usage=TokenUsage(prompt_tokens=1, output_tokens=2, total_tokens=3),
        served_by="a",
        attempts=[Attempt(model="a", outcome="ok")],
        failovers=[],
        request_id="r-1",
    )
    result = generated(out)
    text = text_of(result)
    shown, cut, blank, note = text.split("\n")
    assert blank == ""
    assert shown == "x" * CONTENT_TEXT_LIMIT
    assert cut.startswith(f"[cut here: {CONTENT_TEXT_LIMIT:,} of {len(long):,} characters")
    assert "structuredContent.text" in cut
    assert "max_output_tokens" in note
    assert (result.structured_content or {})["text"] == long


def test_the_conversation_line_is_the_texts_last_line_whatever_else_is_said() -> None:
    out = GenerateOutput(
        text="The answer.",
        finish_reason="STOP",
        spans=[Span(model="a", start=0, end=11)],
        usage=TokenUsage(prompt_tokens=1, output_tokens=2, total_tokens=3),
        served_by="a",
        attempts=[Attempt(model="a", outcome="ok")],
        failovers=[],
        request_id="r-1",
        conversation_id="c-123",
        files=FilesOutput(left_out_counts=[LeftOutCount(reason="binary", count=2)]),
    )
    lines = text_of(generated(out)).split("\n")
    assert lines[0] == "The answer."
    assert lines[-2].startswith("[files: 0 included, 2 left out (binary 2)")
    assert lines[-1] == "[conversation_id: c-123]"
