"""Conversations through a real MCP client: every generation result returns a
conversation_id; passing it back sends the earlier turns along (whichever model
serves); a bad or unknown id is a clear error; a store that is down never fails a call
without a conversation_id."""

from __future__ import annotations

from typing import Any

from mcp import Client
from mcp.types import CallToolResult, TextContent

from gemini_failover.config import ConversationSettings
from gemini_failover.emulator import Emulator
from gemini_failover.resilience.manager import FailoverManager
from gemini_failover.state.conversations import (
    ConversationStoreUnavailable,
    MemoryConversationStore,
)
from gemini_failover.tools import threads
from tests.e2e.conftest import FALLBACK, PRIMARY, assert_clear_error


def answer(result: CallToolResult) -> tuple[str, dict[str, Any]]:
    assert not result.is_error, result.content
    content = result.content[0]
    assert isinstance(content, TextContent)
    return content.text, result.structured_content or {}


def sent_turns(emulator: Emulator) -> list[str]:
    """The roles of the turns of the last generation request the emulator received."""
    record = [r for r in emulator.requests if r.action in ("generate", "stream")][-1]
    return [p["role"] for p in record.parts]


async def test_passing_the_id_back_continues_the_thread(client: Client, emulator: Emulator) -> None:
    _, first = answer(await client.call_tool("gemini_generate", {"prompt": "Name a river."}))
    cid = first["conversation_id"]
    assert len(cid) == 24
    assert sent_turns(emulator) == ["user"]
    # the next turn goes to another model: it gets the thread all the same
    emulator.configure(PRIMARY, faults=[{"kind": "status", "code": 503}])
    _, second = answer(
        await client.call_tool(
            "gemini_chat",
            {"turns": [{"role": "user", "text": "How long is it?"}], "conversation_id": cid},
        )
    )
    assert second["served_by"] == FALLBACK
    assert second["conversation_id"] == cid
    assert sent_turns(emulator) == ["user", "model", "user"]
    _, third = answer(
        await client.call_tool(
            "gemini_generate", {"prompt": "And its source?", "conversation_id": cid}
        )
    )
    assert sent_turns(emulator) == ["user", "model", "user", "model", "user"]
    assert third["dropped_turns"] == 0


async def test_the_size_cap_drops_old_turns_and_says_so(
    client: Client, manager: FailoverManager
) -> None:
    manager.conversations = MemoryConversationStore(ConversationSettings(max_turns=2))
    _, first = answer(await client.call_tool("gemini_generate", {"prompt": "one"}))
    text, second = answer(
        await client.call_tool(
            "gemini_generate", {"prompt": "two", "conversation_id": first["conversation_id"]}
        )
    )
    assert second["dropped_turns"] == 2
    assert "oldest exchange (2 turns)" in second["conversation_note"]
    assert text.endswith("]") and "dropped to keep it within its size cap" in text


async def test_bad_and_unknown_ids_are_clear_errors(client: Client, emulator: Emulator) -> None:
    bad = await client.call_tool("gemini_generate", {"prompt": "x", "conversation_id": "nope"})
    assert "is not a conversation id" in assert_clear_error(bad, "gemini_generate")
    unknown = await client.call_tool(
        "gemini_generate", {"prompt": "x", "conversation_id": "A" * 24}
    )
    assert "no such conversation" in assert_clear_error(unknown, "gemini_generate")
    assert emulator.count(action="generate") == 0


async def test_a_store_that_is_down_never_fails_a_stateless_call(
    client: Client, manager: FailoverManager
) -> None:
    calls: list[int] = []

    async def down(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        raise ConversationStoreUnavailable("connection refused")

    object.__setattr__(manager.conversations, "create", down)
    try:
        text, out = answer(await client.call_tool("gemini_generate", {"prompt": "still works"}))
        assert out["text"] and out["conversation_id"] == ""
        assert "not saved" in out["conversation_note"] and "not saved" in text
        # the next calls do not wait for the store again (for STORE_RETRY_SECONDS)
        _, again = answer(await client.call_tool("gemini_generate", {"prompt": "again"}))
        assert "unavailable" in again["conversation_note"]
        assert len(calls) == 1
    finally:
        threads._store_down_until.clear()


async def test_a_text_only_client_continues_with_the_id_from_the_text(
    client: Client, manager: FailoverManager, emulator: Emulator
) -> None:
    # Clients that show the calling model only the text: the last line names the thread.
    text, first = answer(await client.call_tool("gemini_generate", {"prompt": "Name a lake."}))
    last_line = text.rsplit("\n", 1)[-1]
    assert last_line == f"[conversation_id: {first['conversation_id']}]"
    cid = last_line.removeprefix("[conversation_id: ").removesuffix("]")
    _, second = answer(
        await client.call_tool("gemini_generate", {"prompt": "How deep?", "conversation_id": cid})
    )
    assert second["conversation_id"] == cid
    assert sent_turns(emulator) == ["user", "model", "user"]

    # Turned off: the text is the answer alone; the id stays in structuredContent.
    manager.settings = manager.settings.model_copy(
        update={"conversations": ConversationSettings(id_in_text=False)}
    )
    text, third = answer(await client.call_tool("gemini_generate", {"prompt": "Name a sea."}))
    assert text == third["text"] and third["conversation_id"]
