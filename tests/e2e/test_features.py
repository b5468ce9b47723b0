"""The generation tools' options through a real MCP client (in-process server, the
real failover manager and google-genai SDK, the emulator): Google Search citations
whose spans point at the right text (also after a mid-stream continuation), thinking
on a model that thinks and a misfit on one that does not, model choice and
failover=false."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent

from gemini_failover.emulator import Emulator
from tests.e2e.conftest import FALLBACK, PRIMARY, Progress, assert_clear_error

PROMPT = "Who won the chess olympiad this year? Tell me the whole story."
DOWN = {"kind": "status", "code": 503}


def answer(result: CallToolResult) -> tuple[str, dict[str, Any]]:
    assert not result.is_error, result.content
    content = result.content[0]
    assert isinstance(content, TextContent)
    return content.text, result.structured_content or {}


def generations(emulator: Emulator, model: str) -> int:
    return emulator.count(model=model, action="generate") + emulator.count(
        model=model, action="stream"
    )


def check_citations(out: dict[str, Any]) -> None:
    """Every citation's span is a sentence (or, after a cut, the end of one) of the
    answer, and cites a page."""
    text = out["text"]
    assert out["citations"] and out["search_queries"]
    for c in out["citations"]:
        span = text[c["start"] : c["end"]]
        assert span.strip().endswith("."), (span, c)
        assert c["uri"].startswith("https://") and c["title"]


async def test_grounded_answer_ends_with_its_sources(client: Client) -> None:
    text, out = answer(
        await client.call_tool("gemini_generate", {"prompt": PROMPT, "google_search": True})
    )
    check_citations(out)
    assert text.startswith(out["text"])
    sources = text.removeprefix(out["text"]).strip()
    assert sources.startswith("Sources: [1] ")
    first = out["citations"][0]
    assert f"{first['title']} — {first['uri']}" in sources


async def test_citations_point_at_the_right_text_after_a_continuation(
    client: Client, emulator: Emulator
) -> None:
    emulator.configure(
        PRIMARY, faults=[{"kind": "stream_cut", "after": 3, "actions": ["stream"], "count": 1}]
    )
    progress = Progress()
    result = await client.call_tool(
        "gemini_generate",
        {"prompt": PROMPT, "google_search": True},
        progress_callback=progress,
    )
    _, out = answer(result)
    assert [s["model"] for s in out["spans"]] == [PRIMARY, FALLBACK]
    assert progress.text == out["text"]
    check_citations(out)
    # Gemini sends grounding with a stream's last chunk: the cited spans are in the
    # continued part, and they match what the one-model answer cites there.
    continued_at = out["spans"][1]["start"]
    assert all(c["start"] >= continued_at for c in out["citations"])


async def test_thinking_on_a_model_that_thinks(client: Client) -> None:
    text, out = answer(
        await client.call_tool(
            "gemini_generate",
            {"prompt": PROMPT, "thinking": "high", "include_thoughts": True},
        )
    )
    assert out["usage"]["thinking_tokens"] > 0
    assert out["thoughts"] and out["thoughts"] not in text


@pytest.fixture
def fallback_cannot_think(emulator: Emulator) -> None:
    """Before the server starts (it fetches every model's profile at start-up)."""
    emulator.configure(FALLBACK, profile={"thinking": "none"})


async def test_thinking_is_a_misfit_on_a_model_that_does_not(
    fallback_cannot_think: None, client: Client, emulator: Emulator
) -> None:
    emulator.configure(PRIMARY, faults=[DOWN])
    result = await client.call_tool("gemini_generate", {"prompt": PROMPT, "thinking": "low"})
    message = assert_clear_error(result, "gemini_generate")
    assert f"{FALLBACK}: no thinking" in message
    assert generations(emulator, FALLBACK) == 0
    # without thinking the fallback serves
    _, out = answer(await client.call_tool("gemini_generate", {"prompt": PROMPT}))
    assert out["served_by"] == FALLBACK


async def test_model_flash_starts_at_flash(client: Client, emulator: Emulator) -> None:
    _, out = answer(
        await client.call_tool(
            "gemini_chat", {"turns": [{"role": "user", "text": PROMPT}], "model": "flash"}
        )
    )
    assert out["served_by"] == FALLBACK
    assert generations(emulator, PRIMARY) == 0


async def test_failover_false_is_that_model_or_an_error(client: Client, emulator: Emulator) -> None:
    emulator.configure(PRIMARY, faults=[DOWN])
    result = await client.call_tool("gemini_generate", {"prompt": PROMPT, "failover": False})
    assert_clear_error(result, "gemini_generate")
    assert generations(emulator, FALLBACK) == 0
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    _, out = answer(
        await client.call_tool(
            "gemini_generate_json",
            {"prompt": PROMPT, "schema": schema, "model": FALLBACK, "failover": False},
        )
    )
    assert out["served_by"] == FALLBACK


async def test_unknown_model_lists_the_choices(client: Client, emulator: Emulator) -> None:
    result = await client.call_tool("gemini_generate", {"prompt": PROMPT, "model": "ultra"})
    message = assert_clear_error(result, "gemini_generate")
    assert "unknown model 'ultra'" in message and PRIMARY in message and FALLBACK in message
    assert generations(emulator, PRIMARY) == 0


async def test_feature_arguments_are_checked_strictly(client: Client) -> None:
    result = await client.call_tool("gemini_generate", {"prompt": PROMPT, "thinking": "max"})
    message = assert_clear_error(result, "gemini_generate")
    assert 'allowed: one of "off", "low", "medium", "high"' in message
    result = await client.call_tool("gemini_generate", {"prompt": PROMPT, "google_search": "yes"})
    assert "allowed: true or false" in assert_clear_error(result, "gemini_generate")
