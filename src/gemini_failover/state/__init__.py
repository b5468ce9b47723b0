"""Where model state lives: in this process (:class:`MemoryStateStore`, the default)
or shared across instances through Redis (:mod:`gemini_failover.state.redis`, imported
only when configured, so that the redis client stays off the import path otherwise)."""

from gemini_failover.state.conversations import (
    Conversation,
    ConversationError,
    ConversationSettings,
    ConversationStore,
    Exchange,
    MemoryConversationStore,
    Saved,
)
from gemini_failover.state.interface import CooldownKind, StateSink, StateStore, StoreHealth
from gemini_failover.state.memory import MemoryStateStore

__all__ = [
    "Conversation",
    "ConversationError",
    "ConversationSettings",
    "ConversationStore",
    "CooldownKind",
    "Exchange",
    "MemoryConversationStore",
    "MemoryStateStore",
    "Saved",
    "StateSink",
    "StateStore",
    "StoreHealth",
]
