"""Conversations in Redis: every instance sharing the server sees every thread.

Layout, under the state store's prefix, two keys per thread that share a hash tag
(the id in braces, so a Redis Cluster keeps them on one slot):

* ``{prefix}:conv:{<id>}:meta``: a hash (``v`` format version, ``created``,
  ``updated``, ``size`` bytes held, ``dropped`` exchanges dropped so far);
* ``{prefix}:conv:{<id>}:x``: a list of exchanges, oldest first, each one JSON
  document (:mod:`gemini_failover.state.conversation_codec`).

Both expire ``ttl_seconds`` after the last use: the append script and the load
transaction refresh them together.

Atomicity: an append is one Lua script (push the exchange, then pop the oldest ones
while the thread is over the cap, update the size and counters, refresh the TTL).
Not MULTI with a list: the trim depends on what the list holds (the sizes of the
oldest exchanges), a read-then-write that MULTI can only do with WATCH and a retry
loop, while a script does it in one round trip and Redis runs scripts one at a time,
so two instances appending at once both land, in the order Redis ran them, and the
cap is applied to the result. A load is one MULTI transaction (HGETALL, LRANGE and
the two PEXPIREs), so it never sees half an append.

Redis unreachable: every call fails with
:class:`~gemini_failover.state.conversations.ConversationStoreUnavailable` within
``socket_timeout`` (plus ``connect_timeout`` for a new connection), with no retries
(an append is not idempotent); the client's pool reconnects on the next call once
Redis is back. Only calls that use a conversation touch this store, so stateless
calls are unaffected. The client is its own (not the state store's, whose pool is
dropped and rebuilt by its reconnect loop); the password in the URL is never shown.
Memory is bounded per thread by the cap and in number by the TTL (and by Redis's
own ``maxmemory`` policy).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from gemini_failover.resilience.clock import Clock, SystemClock
from gemini_failover.state.conversation_codec import (
    CODEC_VERSION,
    CodecError,
    Exchange,
    decode_exchange,
    encode_exchange,
)
from gemini_failover.state.conversations import (
    Conversation,
    ConversationNotFound,
    ConversationSettings,
    ConversationStoreUnavailable,
    ConversationUnreadable,
    ExchangeTooLarge,
    Saved,
    new_conversation_id,
    prepare_exchange,
    validate_conversation_id,
)
from gemini_failover.state.redis.connection import FAILURES, Connection, default_instance_id
from gemini_failover.state.urls import redact_url, scrub, secrets_of

if TYPE_CHECKING:
    from gemini_failover.config import Settings

__all__ = ["APPEND_LUA", "RedisConversationStore"]

log = structlog.get_logger(__name__)

_T = TypeVar("_T")

#: Redis going away, or not answering within the call's time limit.
_UNAVAILABLE: tuple[type[BaseException], ...] = (*FAILURES, TimeoutError)

# Create or append, atomically. The trimming rule is conversations.exchanges_to_drop.
# KEYS[1]  the meta hash;  KEYS[2]  the exchange list
# ARGV     exchange JSON ('' for none), ttl_ms, max_exchanges, max_bytes, now,
#          '1' to create (the thread must not exist) or '0' to append (it must),
#          the format version (recorded on create)
# Returns  {exchanges, size, dropped now, dropped in all}, or {-1} no such thread,
#          {-2} the id to create is taken
APPEND_LUA = """
local meta, list = KEYS[1], KEYS[2]
if ARGV[6] == '1' then
  if redis.call('EXISTS', meta) == 1 then return {-2} end
  redis.call('HSET', meta, 'v', ARGV[7], 'created', ARGV[5], 'size', 0, 'dropped', 0)
elseif redis.call('EXISTS', meta) == 0 then
  return {-1}
end
local size = tonumber(redis.call('HGET', meta, 'size')) or 0
local count = redis.call('LLEN', list)
local dropped = 0
if ARGV[1] ~= '' then
  count = redis.call('RPUSH', list, ARGV[1])
  size = size + string.len(ARGV[1])
  local max_exchanges, max_bytes = tonumber(ARGV[3]), tonumber(ARGV[4])
  while count > 1 and (count > max_exchanges or size > max_bytes) do
    size = size - string.len(redis.call('LPOP', list))
    count = count - 1
    dropped = dropped + 1
  end
end
local total = redis.call('HINCRBY', meta, 'dropped', dropped)
redis.call('HSET', meta, 'size', size, 'updated', ARGV[5])
redis.call('PEXPIRE', meta, ARGV[2])
redis.call('PEXPIRE', list, ARGV[2])
return {count, size, dropped, total}
"""


class RedisConversationStore:
    """A :class:`~gemini_failover.state.conversations.ConversationStore` over Redis
    (``redis.asyncio``). The constructor does no I/O; a malformed URL raises
    ValueError."""

    def __init__(
        self,
        url: str,
        *,
        settings: ConversationSettings | None = None,
        prefix: str = "gemini-failover",
        clock: Clock | None = None,
        instance_id: str | None = None,
        socket_timeout: float = 2.0,
        connect_timeout: float = 1.0,
        close_timeout: float = 2.0,
    ) -> None:
        self._settings = settings or ConversationSettings()
        self._prefix = prefix
        self._clock: Clock = clock or SystemClock()
        self._redacted = redact_url(url)
        self._secrets = secrets_of(url)
        self._conn = Connection(
            url,
            instance_id=f"{instance_id or default_instance_id()}:conversations",
            socket_timeout=socket_timeout,
            connect_timeout=connect_timeout,
        )
        # The client's own timeouts bound every call; this is the backstop.
        self._call_timeout = connect_timeout + 2 * socket_timeout
        self._close_timeout = close_timeout
        self._append = self._conn.client.register_script(APPEND_LUA)
        self._ttl_ms = max(1, round(self._settings.ttl_seconds * 1000))

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        conversations: ConversationSettings | None = None,
        **kwargs: Any,
    ) -> RedisConversationStore:
        if settings.redis_url is None:
            raise ValueError("redis_url is not set")
        return cls(
            settings.redis_url.get_secret_value(),
            settings=conversations,
            prefix=settings.redis_prefix,
            **kwargs,
        )

    def __repr__(self) -> str:
        return f"RedisConversationStore({self._redacted!r}, prefix={self._prefix!r})"

    @property
    def backend(self) -> str:
        return "redis"

    @property
    def settings(self) -> ConversationSettings:
        return self._settings

    def meta_key(self, conversation_id: str) -> str:
        return f"{self._prefix}:conv:{{{conversation_id}}}:meta"

    def list_key(self, conversation_id: str) -> str:
        return f"{self._prefix}:conv:{{{conversation_id}}}:x"

    # -- the ConversationStore protocol -----------------------------------------------------

    async def create(self, exchange: Exchange | None = None) -> Saved:
        encoded, omitted = self._encode(exchange) if exchange is not None else ("", 0)
        while True:
            conversation_id = new_conversation_id()
            reply = await self._run_append(conversation_id, encoded, create=True)
            if int(reply[0]) != -2:  # -2: the id is taken (144 random bits: never)
                return self._saved(conversation_id, reply, omitted)

    async def load(self, conversation_id: str) -> Conversation:
        validate_conversation_id(conversation_id)
        pipe = self._conn.client.pipeline(transaction=True)
        pipe.hgetall(self.meta_key(conversation_id))
        pipe.lrange(self.list_key(conversation_id), 0, -1)
        pipe.pexpire(self.meta_key(conversation_id), self._ttl_ms)
        pipe.pexpire(self.list_key(conversation_id), self._ttl_ms)
        meta, items, _, _ = await self._call(pipe.execute())
        if not meta:
            raise ConversationNotFound(conversation_id, self._settings.ttl_seconds)
        try:
            return Conversation(
                conversation_id,
                tuple(decode_exchange(item) for item in items),
                created=float(meta["created"]),
                updated=float(meta.get("updated", meta["created"])),
                dropped=int(meta.get("dropped", 0)),
            )
        except (CodecError, KeyError, ValueError) as exc:
            log.warning("unreadable conversation in redis", error=str(exc)[:200])
            raise ConversationUnreadable(conversation_id, str(exc)[:200]) from exc

    async def append(self, conversation_id: str, exchange: Exchange) -> Saved:
        validate_conversation_id(conversation_id)
        encoded, omitted = self._encode(exchange)
        reply = await self._run_append(conversation_id, encoded, create=False)
        if int(reply[0]) == -1:
            raise ConversationNotFound(conversation_id, self._settings.ttl_seconds)
        return self._saved(conversation_id, reply, omitted)

    async def aclose(self) -> None:
        await self._conn.drop(self._close_timeout, close=True)

    # -- internals ---------------------------------------------------------------------------

    def _encode(self, exchange: Exchange) -> tuple[str, int]:
        prepared, omitted = prepare_exchange(exchange, self._settings.inline_media_bytes)
        encoded = encode_exchange(prepared)
        size = len(encoded.encode("utf-8"))
        if size > self._settings.max_bytes:
            raise ExchangeTooLarge(size, self._settings.max_bytes)
        return encoded, omitted

    async def _run_append(self, conversation_id: str, encoded: str, *, create: bool) -> list[Any]:
        reply = await self._call(
            self._append(
                keys=[self.meta_key(conversation_id), self.list_key(conversation_id)],
                args=[
                    encoded,
                    self._ttl_ms,
                    self._settings.max_exchanges,
                    self._settings.max_bytes,
                    repr(self._clock.time()),
                    "1" if create else "0",
                    CODEC_VERSION,
                ],
            )
        )
        return list(reply)

    def _saved(self, conversation_id: str, reply: list[Any], omitted: int) -> Saved:
        count, size, dropped, total = (int(v) for v in reply)
        return Saved(conversation_id, 2 * count, size, dropped, total, omitted)

    async def _call(self, call: Awaitable[_T]) -> _T:
        """Await a Redis call; Redis failing or not answering in time is
        ConversationStoreUnavailable (without the password)."""
        try:
            async with asyncio.timeout(self._call_timeout):
                return await call
        except _UNAVAILABLE as exc:
            detail = f"{self._redacted}: {scrub(exc, self._secrets)}"
            log.warning("conversation store call failed", error=detail)
            raise ConversationStoreUnavailable(detail) from exc
