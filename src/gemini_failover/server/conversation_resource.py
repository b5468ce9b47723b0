"""The ``conversation://{id}`` resource template: a thread, compact (each turn's text
cut short, the model that answered, the sources it cited).

The conversation store (gemini_failover.state) is imported by the first read, not at
start-up: registering the template needs none of it."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from gemini_failover.state.conversations import Conversation
    from gemini_failover.tools.handlers import ManagerSource

URI_TEMPLATE = "conversation://{conversation_id}"
#: Characters of each turn shown (the whole text goes to the model when continued).
TURN_CHARS = 600


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= TURN_CHARS else text[: TURN_CHARS - 1] + "…"


def render(conversation: Conversation) -> str:
    """The thread as short text: a header, then each exchange."""
    updated = dt.datetime.fromtimestamp(conversation.updated, dt.UTC).isoformat(timespec="seconds")
    header = (
        f"conversation {conversation.id}: {len(conversation.exchanges)} exchange(s), "
        f"updated {updated}"
    )
    if conversation.dropped:
        header += f"; {conversation.dropped} older exchange(s) dropped (size cap)"
    lines = [header]
    for n, exchange in enumerate(conversation.exchanges, 1):
        files = len(exchange.user.attachments)
        attached = f" [+{files} file(s)]" if files else ""
        lines.append(f"\n[{n}] user{attached}: {_cut(exchange.user.text)}")
        lines.append(
            f"[{n}] model ({exchange.served_by or 'unknown'}): {_cut(exchange.model.text)}"
        )
        g = exchange.grounding
        if g is not None and g.sources:
            lines.append(
                "    Sources: "
                + "; ".join(f"[{i}] {s.title} — {s.uri}" for i, s in enumerate(g.sources, 1))
            )
    return "\n".join(lines)


def add_conversation_resource(server: MCPServer, get_manager: ManagerSource) -> None:
    async def read_conversation(conversation_id: str) -> str:
        from gemini_failover.state.conversations import (
            ConversationError,
            ConversationNotFound,
            InvalidConversationId,
            validate_conversation_id,
        )

        manager = await get_manager()
        try:
            thread = await manager.conversations.load(validate_conversation_id(conversation_id))
        except (InvalidConversationId, ConversationNotFound) as exc:
            raise ResourceNotFoundError(str(exc)) from None
        except ConversationError as exc:
            raise ResourceError(str(exc)) from None
        return render(thread)

    server.resource(
        URI_TEMPLATE,
        name="conversation",
        title="A Gemini conversation",
        description="A conversation thread (the conversation_id a generation result "
        "returned): each exchange, the model that answered and the sources it cited.",
        mime_type="text/plain",
    )(read_conversation)
