"""Conversations for the generation tools: load the thread a ``conversation_id`` names
(its turns go before the new ones, whichever model serves), and save the new exchange
afterwards (a new thread when no id was given), reporting what the size cap dropped.

The store is the manager's (memory, or Redis shared by every instance). Calls without
a ``conversation_id`` never fail because of it: when it cannot save, the answer comes
back without an id and with a note saying why.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mcp.server.mcpserver.exceptions import ToolError

from gemini_failover.protocol import Turn
from gemini_failover.resilience.results import Result
from gemini_failover.state.conversations import (
    Conversation,
    ConversationError,
    ConversationStoreUnavailable,
    Exchange,
    validate_conversation_id,
)

if TYPE_CHECKING:
    from gemini_failover.resilience.manager import FailoverManager

log = logging.getLogger("gemini_failover.tools")

#: After the store could not be reached, calls without a conversation_id do not try to
#: start a thread for this long (s): they must not wait out Redis's timeouts each time.
STORE_RETRY_SECONDS = 10.0
_store_down_until: dict[int, float] = {}  # by id() of the store: monotonic time


@dataclass(frozen=True, slots=True)
class Saved:
    """What the tool result says about the conversation."""

    conversation_id: str = ""
    dropped_turns: int = 0
    note: str = ""


async def load(manager: FailoverManager, conversation_id: str | None) -> Conversation | None:
    """The thread to continue (None: a new one). Errors are the tool's error result."""
    if conversation_id is None:
        return None
    try:
        return await manager.conversations.load(validate_conversation_id(conversation_id))
    except ConversationError as exc:
        raise ToolError(str(exc)) from None


def exchanges(turns: Sequence[Turn], answer: Turn) -> list[Exchange]:
    """The new turns and the answer as (user, model) exchanges: consecutive turns of one
    role are joined (a thread stores pairs)."""
    merged: list[Turn] = []
    for turn in (*turns, answer):
        if merged and merged[-1].role == turn.role:
            last = merged[-1]
            merged[-1] = Turn(
                last.role, f"{last.text}\n\n{turn.text}", (*last.attachments, *turn.attachments)
            )
        else:
            merged.append(turn)
    if merged and merged[0].role == "model":  # nothing asked it: keep it with the next
        merged = merged[1:]
    return [Exchange(merged[i], merged[i + 1]) for i in range(0, len(merged) - 1, 2)]


async def save(
    manager: FailoverManager,
    thread: Conversation | None,
    turns: Sequence[Turn],
    result: Result,
) -> Saved:
    """Append the new exchange(s) to ``thread`` (or start a thread with them)."""
    store = manager.conversations
    now = time.time()
    new = [
        Exchange(e.user, e.model, result.provenance.served_by, None, now)
        for e in exchanges(turns, Turn("model", result.text))
    ]
    if new:  # the answered exchange carries its citations
        last = new[-1]
        new[-1] = Exchange(last.user, last.model, last.served_by, result.grounding, now)
    cid = thread.id if thread is not None else ""
    if thread is None and time.monotonic() < _store_down_until.get(id(store), 0.0):
        return Saved("", 0, "Not saved to a conversation: the conversation store is unavailable.")
    try:
        dropped, notes = 0, []
        for i, exchange in enumerate(new):
            if not cid and i == 0:
                saved = await store.create(exchange)
                cid = saved.conversation_id
            else:
                saved = await store.append(cid, exchange)
            dropped += saved.dropped
            if (note := saved.note()) is not None:
                notes.append(note)
    except ConversationError as exc:
        if isinstance(exc, ConversationStoreUnavailable):
            _store_down_until[id(store)] = time.monotonic() + STORE_RETRY_SECONDS
        log.warning("conversation not saved: %s", exc)
        return Saved(cid, 0, f"This exchange was not saved to the conversation: {exc}.")
    return Saved(cid, 2 * dropped, " ".join(notes))
