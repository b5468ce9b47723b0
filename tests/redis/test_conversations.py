"""Conversations in a real Redis: shared by instances, capped like the in-process
store, appended atomically by racing instances, and failing clearly (never hanging)
when Redis is gone."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.client import Redis as SyncRedis

from gemini_failover.protocol import Grounding, Media, Source, Support, TextFile, Turn
from gemini_failover.state.conversations import (
    ConversationNotFound,
    ConversationSettings,
    ConversationStoreUnavailable,
    ConversationUnreadable,
    Exchange,
    ExchangeTooLarge,
    InvalidConversationId,
    MemoryConversationStore,
)
from gemini_failover.state.redis import RedisConversationStore
from tests.redis.server import RedisProcess, free_port

pytestmark = pytest.mark.redis

Factory = Callable[..., RedisConversationStore]


@pytest.fixture
async def make(redis_url: str, prefix: str) -> AsyncIterator[Factory]:
    """``make(**settings)``: a store on the test's prefix (``url=`` for another
    server); closed at teardown."""
    stores: list[RedisConversationStore] = []

    def factory(url: str | None = None, **settings: object) -> RedisConversationStore:
        store = RedisConversationStore(
            url or redis_url,
            settings=ConversationSettings(**settings),
            prefix=prefix,
            socket_timeout=0.5,
            connect_timeout=0.5,
        )
        stores.append(store)
        return store

    yield factory
    for store in stores:
        await store.aclose()


def exchange(i: int, text: str = "", served_by: str | None = None) -> Exchange:
    return Exchange(
        Turn("user", f"question {i}{text}"), Turn("model", f"answer {i}{text}"), served_by
    )


async def test_two_instances_share_threads(make: Factory) -> None:
    a, b = make(), make()
    grounding = Grounding(("q",), (Source("t", "https://example.com"),), (Support(0, 8, (0,)),))
    first = Exchange(
        Turn("user", "review this", (TextFile("a.py", "x = 1"),)),
        Turn("model", "looks ok"),
        served_by="gemini-2.5-pro",
        grounding=grounding,
        at=1_700_000_000.25,
    )
    saved = await a.create(first)
    await b.append(saved.conversation_id, exchange(1, served_by="gemini-2.5-flash"))
    thread = await a.load(saved.conversation_id)
    assert thread.exchanges == (first, exchange(1, served_by="gemini-2.5-flash"))
    assert [t.role for t in thread.turns] == ["user", "model", "user", "model"]
    assert thread.created == pytest.approx(thread.updated, abs=60)


async def test_keys_share_a_hash_tag_and_expire_together(
    make: Factory, raw: SyncRedis, prefix: str
) -> None:
    store = make(ttl_seconds=3600)
    cid = (await store.create(exchange(0))).conversation_id
    meta, items = store.meta_key(cid), store.list_key(cid)
    assert meta == f"{prefix}:conv:{{{cid}}}:meta" and items == f"{prefix}:conv:{{{cid}}}:x"
    assert raw.hget(meta, "v") == "1" and raw.llen(items) == 1
    assert 3_500_000 < raw.pttl(meta) <= 3_600_000 and 3_500_000 < raw.pttl(items) <= 3_600_000


async def test_load_and_append_refresh_the_ttl(make: Factory, raw: SyncRedis) -> None:
    store = make(ttl_seconds=3600)
    cid = (await store.create(exchange(0))).conversation_id
    keys = (store.meta_key(cid), store.list_key(cid))
    for key in keys:
        raw.pexpire(key, 5000)
    await store.load(cid)
    assert all(raw.pttl(key) > 3_500_000 for key in keys)
    for key in keys:
        raw.pexpire(key, 5000)
    await store.append(cid, exchange(1))
    assert all(raw.pttl(key) > 3_500_000 for key in keys)


async def test_an_expired_thread_is_not_found_and_not_recreated(
    make: Factory, raw: SyncRedis
) -> None:
    store = make(ttl_seconds=7200)
    cid = (await store.create(exchange(0))).conversation_id
    raw.delete(store.meta_key(cid), store.list_key(cid))  # what expiry does
    with pytest.raises(ConversationNotFound, match=r"expired \(threads are kept 2 h"):
        await store.append(cid, exchange(1))
    assert raw.exists(store.meta_key(cid), store.list_key(cid)) == 0
    with pytest.raises(ConversationNotFound, match="never existed"):
        await store.load(cid)


async def test_malformed_ids_never_reach_redis(make: Factory) -> None:
    store = make(url="redis://127.0.0.1:1/0")  # would be unavailable if it were asked
    with pytest.raises(InvalidConversationId, match="conversation_id"):
        await store.load("no such thing")
    with pytest.raises(InvalidConversationId):
        await store.append("x" * 25, exchange(0))


async def test_the_cap_drops_exactly_what_the_memory_store_drops(make: Factory) -> None:
    """Same settings, same appends: the Lua script and the in-process store agree on
    what is dropped, what is kept and what is reported."""
    settings = {"max_turns": 8, "max_bytes": 12_000}
    redis, memory = make(**settings), MemoryConversationStore(ConversationSettings(**settings))
    rng = random.Random(16)
    r = await redis.create()
    m = await memory.create()
    for i in range(40):
        ex = exchange(i, "é" * rng.choice([0, 10, 200, 900, 2500]))  # multi-byte text
        got = await redis.append(r.conversation_id, ex)
        want = await memory.append(m.conversation_id, ex)
        assert (got.turns, got.size, got.dropped, got.dropped_total) == (
            want.turns,
            want.size,
            want.dropped,
            want.dropped_total,
        ), i
        assert got.turns <= 8 and got.size <= 12_000
    kept = await redis.load(r.conversation_id)
    assert kept.exchanges == (await memory.load(m.conversation_id)).exchanges
    assert kept.dropped == (await memory.load(m.conversation_id)).dropped > 0
    assert kept.exchanges[-1].user.text.startswith("question 39")


async def test_oversized_exchanges_and_large_media(make: Factory, raw: SyncRedis) -> None:
    store = make(max_bytes=4096, inline_media_bytes=4)
    cid = (await store.create(exchange(0))).conversation_id
    with pytest.raises(ExchangeTooLarge):
        await store.append(cid, exchange(1, "z" * 5000))
    assert raw.llen(store.list_key(cid)) == 1  # nothing written
    media = Media("a.png", "image/png", 5, "ab" * 32, data=b"12345", path="/s/a.png")
    lost = Media("b.png", "image/png", 5, "cd" * 32, data=b"12345")
    saved = await store.append(
        cid, Exchange(Turn("user", "see", (media, lost)), Turn("model", "seen"))
    )
    assert saved.omitted_media == 1 and saved.note() is not None
    stored = (await store.load(cid)).exchanges[1].user.attachments
    assert stored[0] == Media("a.png", "image/png", 5, "ab" * 32, path="/s/a.png")
    assert isinstance(stored[1], TextFile) and "not kept" in stored[1].text


async def test_racing_appends_from_two_instances_all_land_in_order(make: Factory) -> None:
    a, b = make(max_turns=100), make(max_turns=100)
    cid = (await a.create()).conversation_id

    async def burst(store: RedisConversationStore, name: str) -> None:
        for i in range(25):
            await store.append(cid, exchange(i, name))

    await asyncio.gather(burst(a, "a"), burst(b, "b"))
    texts = [e.user.text for e in (await b.load(cid)).exchanges]
    assert len(texts) == 50
    assert [t for t in texts if t.endswith("a")] == [f"question {i}a" for i in range(25)]
    assert [t for t in texts if t.endswith("b")] == [f"question {i}b" for i in range(25)]


async def test_racing_appends_keep_the_cap_and_the_accounts(make: Factory, raw: SyncRedis) -> None:
    a, b = make(max_turns=10), make(max_turns=10)
    cid = (await a.create()).conversation_id
    results = await asyncio.gather(
        *(store.append(cid, exchange(i)) for i in range(30) for store in (a, b))
    )
    assert sum(r.dropped for r in results) == 60 - 5
    thread = await a.load(cid)
    assert len(thread.exchanges) == 5 and thread.dropped == 55
    stored = raw.lrange(a.list_key(cid), 0, -1)
    assert int(raw.hget(a.meta_key(cid), "size") or 0) == sum(len(str(i).encode()) for i in stored)


async def test_an_unreadable_stored_exchange_is_a_clear_error(
    make: Factory, raw: SyncRedis
) -> None:
    store = make()
    cid = (await store.create(exchange(0))).conversation_id
    raw.rpush(store.list_key(cid), '{"v": 99}')
    with pytest.raises(ConversationUnreadable, match="cannot be read"):
        await store.load(cid)


async def _fails_fast(call: Callable[[], Awaitable[object]]) -> ConversationStoreUnavailable:
    """The call raises ConversationStoreUnavailable; the guard turns a hang into a
    failure instead of a stuck suite."""
    async with asyncio.timeout(10):
        with pytest.raises(ConversationStoreUnavailable) as caught:
            await call()
    return caught.value


async def test_redis_down_is_a_clear_error_without_the_password(make: Factory) -> None:
    store = make(url=f"redis://:s3cret-pw@127.0.0.1:{free_port()}/0")
    error = await _fails_fast(store.create)
    assert "unavailable" in str(error) and "s3cret-pw" not in str(error)
    assert "calls without conversation_id still work" in str(error)
    assert "s3cret-pw" not in repr(store)


async def test_a_server_that_never_answers_does_not_hang_the_call(make: Factory) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)  # accept, read, never answer
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        store = make(url=f"redis://127.0.0.1:{port}/0")
        error = await _fails_fast(lambda: store.load("a" * 24))
        assert "Timeout" in str(error)
    finally:
        server.close()


async def test_outage_then_recovery_on_the_same_store(
    controlled_redis: RedisProcess, make: Factory
) -> None:
    store = make(url=controlled_redis.url)
    cid = (await store.create(exchange(0))).conversation_id
    controlled_redis.kill()
    await _fails_fast(lambda: store.load(cid))
    await _fails_fast(lambda: store.append(cid, exchange(1)))
    controlled_redis.start()  # empty: no persistence, the thread is gone
    with pytest.raises(ConversationNotFound):
        await store.load(cid)
    again = await store.create(exchange(2))
    assert len((await store.load(again.conversation_id)).exchanges) == 1
