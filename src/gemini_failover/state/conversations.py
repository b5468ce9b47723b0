"""Conversations: threads of exchanges that a later call can continue, on any model and
any server instance, kept in the state store (this process by default, Redis when
configured; see :mod:`gemini_failover.state.redis.conversations`).

* A thread is identified by an unguessable id (``secrets.token_urlsafe``, 144 bits);
  ids are validated on input (:class:`InvalidConversationId` names the argument).
* Every use (load or append) keeps the thread for ``ttl_seconds`` more (default 24 h);
  an unknown or expired id is :class:`ConversationNotFound`, which says so and gives
  the TTL.
* The size cap (``max_turns`` turns, ``max_bytes`` bytes of stored JSON) is enforced
  on append by dropping the OLDEST exchanges, a user turn and its answer together,
  never half a pair and never the exchange just appended; :class:`Saved` says how
  many were dropped so the tool result can tell the caller.
* What is stored (format: :mod:`gemini_failover.state.conversation_codec`): the turns'
  text and files, and per exchange the model that served it, its grounding sources
  and citations, and the time. Media travel inline (base64) only up to
  ``inline_media_bytes``; a larger file with a path is kept as its path and sha256
  (the protocol's form for large files: re-read and re-checked against the sandbox
  and the digest when the thread is sent again); one with neither is replaced by a
  short note saying it was not kept (:attr:`Saved.omitted_media`). No keys, URLs of
  endpoints or settings are ever stored: only what the caller and the model said.
"""

from __future__ import annotations

import collections
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from gemini_failover.config import ConversationSettings
from gemini_failover.protocol import Attachment, Media, TextFile, Turn
from gemini_failover.resilience.clock import Clock, SystemClock
from gemini_failover.state.conversation_codec import Exchange, encode_exchange

if TYPE_CHECKING:
    pass

__all__ = [
    "ARGUMENT",
    "Conversation",
    "ConversationError",
    "ConversationNotFound",
    "ConversationSettings",
    "ConversationStore",
    "ConversationStoreUnavailable",
    "ConversationUnreadable",
    "Exchange",
    "ExchangeTooLarge",
    "InvalidConversationId",
    "MemoryConversationStore",
    "Saved",
    "exchanges_to_drop",
    "new_conversation_id",
    "prepare_exchange",
    "validate_conversation_id",
]

#: The tool argument that carries a conversation id (named in errors).
ARGUMENT = "conversation_id"
_ID_BYTES = 18  # 144 random bits: 24 URL-safe characters
_ID_RE = re.compile(r"[A-Za-z0-9_-]{24}")


# -- errors ------------------------------------------------------------------------------


class ConversationError(Exception):
    """Anything a conversation call can fail with; the message is fit for the caller."""


class InvalidConversationId(ConversationError, ValueError):
    def __init__(self, value: object) -> None:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        super().__init__(
            f"{ARGUMENT}: {shown} is not a conversation id (expected the 24-character id "
            "a previous result returned; leave it out to start a new conversation)"
        )


class ConversationNotFound(ConversationError, LookupError):
    def __init__(self, conversation_id: str, ttl_seconds: float) -> None:
        self.conversation_id = conversation_id
        super().__init__(
            f"{ARGUMENT} {conversation_id!r}: no such conversation: it expired (threads are "
            f"kept {_duration(ttl_seconds)} after their last use) or never existed; leave "
            f"{ARGUMENT} out to start a new conversation"
        )


class ConversationStoreUnavailable(ConversationError):
    """The shared store cannot be reached; calls without a conversation are unaffected."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"the conversation store is unavailable ({detail}); conversations cannot be "
            f"loaded or saved until it is back, calls without {ARGUMENT} still work"
        )


class ConversationUnreadable(ConversationError):
    """The stored thread cannot be read: written by a newer version, or damaged."""

    def __init__(self, conversation_id: str, detail: str) -> None:
        super().__init__(
            f"{ARGUMENT} {conversation_id!r}: the stored conversation cannot be read "
            f"({detail}); leave {ARGUMENT} out to start a new conversation"
        )


class ExchangeTooLarge(ConversationError):
    def __init__(self, size: int, max_bytes: int) -> None:
        self.size = size
        super().__init__(
            f"this exchange takes {size} bytes, more than a whole conversation may keep "
            f"({max_bytes} bytes): it was not saved to the conversation"
        )


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{seconds:g} s"


# -- ids -----------------------------------------------------------------------------------


def new_conversation_id() -> str:
    return secrets.token_urlsafe(_ID_BYTES)


def validate_conversation_id(value: object) -> str:
    """The id, or :class:`InvalidConversationId` naming the argument."""
    if not isinstance(value, str) or _ID_RE.fullmatch(value) is None:
        raise InvalidConversationId(value)
    return value


# -- what the store hands back -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    exchanges: tuple[Exchange, ...]
    created: float  # wall time
    updated: float  # wall time of the last append (or of the creation)
    #: Exchanges dropped over the thread's life to keep it under the cap.
    dropped: int = 0

    @property
    def turns(self) -> tuple[Turn, ...]:
        """The thread as request contents, oldest first."""
        return tuple(turn for exchange in self.exchanges for turn in exchange.turns)


@dataclass(frozen=True, slots=True)
class Saved:
    """What an append (or a create) did: for the tool result."""

    conversation_id: str
    turns: int  # turns the thread holds now
    size: int  # bytes it holds now
    #: Oldest exchanges this append dropped to keep the thread under the cap.
    dropped: int = 0
    #: Exchanges dropped over the thread's life.
    dropped_total: int = 0
    #: Media of this exchange that could not be kept (too large to inline, no path).
    omitted_media: int = 0

    def note(self) -> str | None:
        """A sentence for the caller when something was left out, else None."""
        parts = []
        if self.dropped:
            exchanges = "exchange" if self.dropped == 1 else "exchanges"
            parts.append(
                f"the {self.dropped} oldest {exchanges} ({2 * self.dropped} turns) of the "
                "conversation were dropped to keep it within its size cap"
            )
        if self.omitted_media:
            parts.append(
                f"{self.omitted_media} media file(s) too large to keep inline and without a "
                "path were not kept in the conversation"
            )
        if not parts:
            return None
        text = "; ".join(parts)
        return text[0].upper() + text[1:] + "."


# -- the rules, pure -------------------------------------------------------------------------


def exchanges_to_drop(sizes: Sequence[int], max_exchanges: int, max_bytes: int) -> int:
    """How many of the oldest exchanges (``sizes``: stored bytes, oldest first, the
    newest last) to drop so that at most ``max_exchanges`` and ``max_bytes`` remain.
    The newest is never dropped (the caller refuses one larger than ``max_bytes``).
    The Redis append script applies the same rule."""
    count, total = len(sizes), sum(sizes)
    dropped = 0
    while count - dropped > 1 and (count - dropped > max_exchanges or total > max_bytes):
        total -= sizes[dropped]
        dropped += 1
    return dropped


def prepare_exchange(exchange: Exchange, inline_media_bytes: int) -> tuple[Exchange, int]:
    """The exchange as it is stored, and how many media files could not be kept.
    Media larger than ``inline_media_bytes`` lose their inline data: kept by path and
    sha256 when they have a path, replaced by a note otherwise."""
    omitted = 0

    def keep(turn: Turn) -> Turn:
        nonlocal omitted
        if not any(isinstance(a, Media) for a in turn.attachments):
            return turn
        kept: list[Attachment] = []
        for item in turn.attachments:
            if isinstance(item, Media):
                inline = item.data is not None and len(item.data) <= inline_media_bytes
                if not inline and item.path is not None:
                    item = replace(item, data=None)
                elif not inline:
                    omitted += 1
                    item = TextFile(
                        item.label,
                        f"[{item.mime_type} file of {item.size} bytes (sha256 {item.sha256}) "
                        "not kept in the conversation: attach it again to show it]",
                    )
            kept.append(item)
        return replace(turn, attachments=tuple(kept))

    return replace(exchange, user=keep(exchange.user), model=keep(exchange.model)), omitted


# -- the interface -------------------------------------------------------------------------


class ConversationStore(Protocol):
    """Threads shared by every instance that uses the same store. Every method raises
    :class:`ConversationError` subclasses only (a Redis failure is
    :class:`ConversationStoreUnavailable`)."""

    @property
    def backend(self) -> str:
        """ "memory" or "redis"."""
        ...

    @property
    def settings(self) -> ConversationSettings: ...

    async def create(self, exchange: Exchange | None = None) -> Saved:
        """A new thread, holding ``exchange`` when given."""
        ...

    async def load(self, conversation_id: str) -> Conversation:
        """The thread, oldest exchange first; keeps it ``ttl_seconds`` more."""
        ...

    async def append(self, conversation_id: str, exchange: Exchange) -> Saved:
        """Add an exchange at the end, atomically, dropping the oldest ones beyond the
        cap; keeps the thread ``ttl_seconds`` more. Never recreates an expired thread."""
        ...

    async def aclose(self) -> None: ...


# -- in this process -----------------------------------------------------------------------


@dataclass(slots=True)
class _Thread:
    exchanges: collections.deque[tuple[Exchange, int]]  # (exchange, stored bytes)
    created: float
    updated: float
    expires: float  # monotonic
    size: int = 0
    dropped: int = 0


#: How many of the least recently used threads eviction looks at for a stateless one.
EVICTION_SCAN = 64


class MemoryConversationStore:
    """Threads in this process (the default store): lost on restart, not shared. At
    most ``memory_max_conversations`` are kept; beyond that the least recently used
    one never continued is forgotten first (and reads as expired). Every method runs
    without awaiting, so appends are atomic on the event loop."""

    def __init__(
        self, settings: ConversationSettings | None = None, *, clock: Clock | None = None
    ) -> None:
        self._settings = settings or ConversationSettings()
        self._clock: Clock = clock or SystemClock()
        self._threads: collections.OrderedDict[str, _Thread] = collections.OrderedDict()

    @property
    def backend(self) -> str:
        return "memory"

    @property
    def settings(self) -> ConversationSettings:
        return self._settings

    def __len__(self) -> int:
        return len(self._threads)

    async def create(self, exchange: Exchange | None = None) -> Saved:
        stored = self._encode(exchange) if exchange is not None else None
        self._expire()
        while len(self._threads) >= self._settings.memory_max_conversations:
            self._evict_one()
        conversation_id = new_conversation_id()
        now = self._clock.time()
        thread = _Thread(collections.deque(), now, now, self._deadline())
        self._threads[conversation_id] = thread
        if stored is None:
            return Saved(conversation_id, 0, 0)
        return self._add(conversation_id, thread, *stored)

    async def load(self, conversation_id: str) -> Conversation:
        thread = self._use(conversation_id)
        return Conversation(
            conversation_id,
            tuple(exchange for exchange, _ in thread.exchanges),
            thread.created,
            thread.updated,
            thread.dropped,
        )

    async def append(self, conversation_id: str, exchange: Exchange) -> Saved:
        validate_conversation_id(conversation_id)
        stored = self._encode(exchange)
        return self._add(conversation_id, self._use(conversation_id), *stored)

    async def aclose(self) -> None:
        self._threads.clear()

    # -- internals ---------------------------------------------------------------------------

    def _encode(self, exchange: Exchange) -> tuple[Exchange, int, int]:
        """(the exchange as stored, its stored bytes, media omitted); raises
        ExchangeTooLarge before anything is written."""
        prepared, omitted = prepare_exchange(exchange, self._settings.inline_media_bytes)
        size = len(encode_exchange(prepared).encode("utf-8"))
        if size > self._settings.max_bytes:
            raise ExchangeTooLarge(size, self._settings.max_bytes)
        return prepared, size, omitted

    def _add(
        self, conversation_id: str, thread: _Thread, exchange: Exchange, size: int, omitted: int
    ) -> Saved:
        thread.exchanges.append((exchange, size))
        thread.size += size
        drop = exchanges_to_drop(
            [s for _, s in thread.exchanges],
            self._settings.max_exchanges,
            self._settings.max_bytes,
        )
        for _ in range(drop):
            thread.size -= thread.exchanges.popleft()[1]
        thread.dropped += drop
        thread.updated = self._clock.time()
        return Saved(
            conversation_id,
            2 * len(thread.exchanges),
            thread.size,
            dropped=drop,
            dropped_total=thread.dropped,
            omitted_media=omitted,
        )

    def _deadline(self) -> float:
        return self._clock.monotonic() + self._settings.ttl_seconds

    def _use(self, conversation_id: str) -> _Thread:
        """The live thread (its TTL refreshed, marked most recently used)."""
        validate_conversation_id(conversation_id)
        thread = self._threads.get(conversation_id)
        if thread is None or thread.expires <= self._clock.monotonic():
            self._threads.pop(conversation_id, None)
            raise ConversationNotFound(conversation_id, self._settings.ttl_seconds)
        thread.expires = self._deadline()
        self._threads.move_to_end(conversation_id)
        return thread

    def _evict_one(self) -> None:
        """Make room: forget the least recently used thread that was never continued
        (one exchange: every stateless call leaves one), looking at the oldest few
        only (bounded work); failing that, the least recently used one. A burst of
        stateless calls then does not push out the conversations people continue."""
        for seen, (conversation_id, thread) in enumerate(self._threads.items()):
            if seen >= EVICTION_SCAN:
                break
            if len(thread.exchanges) <= 1:
                del self._threads[conversation_id]
                return
        self._threads.popitem(last=False)

    def _expire(self) -> None:
        """Forget expired threads: they sit in least-recently-used order, so the
        expired ones are at the front."""
        now = self._clock.monotonic()
        while self._threads:
            oldest = next(iter(self._threads.values()))
            if oldest.expires > now:
                return
            self._threads.popitem(last=False)
