"""Which conversation store the server uses: a composition choice kept apart from the
stores themselves (the Redis store imports the interface, so the interface cannot import
it back)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gemini_failover.state.conversations import (
    ConversationSettings,
    ConversationStore,
    MemoryConversationStore,
)

if TYPE_CHECKING:
    from gemini_failover.config import Settings
    from gemini_failover.resilience.clock import Clock


def open_conversation_store(
    settings: Settings,
    conversations: ConversationSettings | None = None,
    *,
    clock: Clock | None = None,
) -> ConversationStore:
    """Where the server keeps threads: Redis when ``redis_url`` is set (so every
    instance sharing it continues every thread), else this process. No I/O."""
    if settings.redis_url is None:
        return MemoryConversationStore(conversations, clock=clock)
    # imported here so that the redis client stays off the import path otherwise
    from gemini_failover.state.redis.conversations import RedisConversationStore

    return RedisConversationStore.from_settings(settings, conversations, clock=clock)
