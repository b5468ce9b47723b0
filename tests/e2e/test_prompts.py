"""The MCP prompts and the conversation resource template through a real client:
prompts/list names them with their arguments, prompts/get fills them in, and
resources/templates/list shows conversation://{conversation_id}."""

from __future__ import annotations

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import TextContent


async def test_prompts_are_listed_with_their_arguments(client: Client) -> None:
    listed = {p.name: p for p in (await client.list_prompts()).prompts}
    assert set(listed) >= {"second_opinion", "review_code", "explain"}
    args = {name: {a.name: a.required for a in p.arguments or []} for name, p in listed.items()}
    assert args["second_opinion"] == {"plan": True, "context": False}
    assert args["review_code"] == {"code": True, "focus": False}
    assert args["explain"] == {"subject": True, "audience": False}
    assert all(p.description for p in listed.values())


async def test_prompts_get_fills_in_the_arguments(client: Client) -> None:
    got = await client.get_prompt(
        "review_code", {"code": "diff --git a/x.py b/x.py\n+eval(input())", "focus": "security"}
    )
    (message,) = got.messages
    assert message.role == "user"
    assert isinstance(message.content, TextContent)
    text = message.content.text
    assert "gemini_generate" in text and 'model="pro"' in text
    assert "<diff>\ndiff --git a/x.py b/x.py\n+eval(input())\n</diff>" in text
    assert "Focus on security." in text
    plan = await client.get_prompt("second_opinion", {"plan": "Rewrite it in Rust."})
    content = plan.messages[0].content
    assert isinstance(content, TextContent) and "Rewrite it in Rust." in content.text
    with pytest.raises(MCPError):
        await client.get_prompt("explain", {})  # subject is required


async def test_the_conversation_template_is_listed_and_reads_a_thread(client: Client) -> None:
    templates = (await client.list_resource_templates()).resource_templates
    assert [t.uri_template for t in templates] == ["conversation://{conversation_id}"]
    result = await client.call_tool("gemini_generate", {"prompt": "Name a river."})
    cid = (result.structured_content or {})["conversation_id"]
    shown = (await client.read_resource(f"conversation://{cid}")).contents[0]
    text = getattr(shown, "text", "")
    assert text.startswith(f"conversation {cid}: 1 exchange(s)")
    assert "[1] user: Name a river." in text
    with pytest.raises(MCPError, match="no such conversation"):
        await client.read_resource("conversation://" + "B" * 24)
