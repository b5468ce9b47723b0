"""Conversations without Redis: the codec, the cap rules, and the in-process store
(with a fake clock for the TTL)."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from gemini_failover.config import load_settings
from gemini_failover.protocol import Grounding, Media, Source, Support, TextFile, Turn
from gemini_failover.resilience.clock import FakeClock
from gemini_failover.state.conversation_codec import (
    CodecError,
    Exchange,
    decode_exchange,
    encode_exchange,
)
from gemini_failover.state.conversations import (
    ConversationNotFound,
    ConversationSettings,
    ExchangeTooLarge,
    InvalidConversationId,
    MemoryConversationStore,
    Saved,
    exchanges_to_drop,
    new_conversation_id,
    prepare_exchange,
    validate_conversation_id,
)
from gemini_failover.state.factory import open_conversation_store

SHA = "ab" * 32

# -- strategies ------------------------------------------------------------------------------

_media = st.builds(
    Media,
    label=st.text(max_size=20),
    mime_type=st.sampled_from(["image/png", "application/pdf", "audio/wav", "video/mp4"]),
    size=st.integers(min_value=0, max_value=2**40),
    sha256=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    data=st.none() | st.binary(max_size=64),
    path=st.none() | st.text(min_size=1, max_size=40),
    tokens=st.integers(min_value=0, max_value=10**7),  # routing needs it when sent again
)
_attachment = st.builds(TextFile, st.text(max_size=20), st.text(max_size=60)) | _media
_attachments = st.lists(_attachment, max_size=3).map(tuple)
_grounding = st.builds(
    Grounding,
    queries=st.lists(st.text(max_size=20), max_size=3).map(tuple),
    sources=st.lists(st.builds(Source, st.text(max_size=20), st.text(max_size=30)), max_size=3).map(
        tuple
    ),
    supports=st.lists(
        st.builds(
            Support,
            st.integers(0, 10_000),
            st.integers(0, 10_000),
            st.lists(st.integers(0, 10), max_size=3).map(tuple),
        ),
        max_size=3,
    ).map(tuple),
)
exchanges = st.builds(
    Exchange,
    user=st.builds(Turn, st.just("user"), st.text(max_size=80), _attachments),
    model=st.builds(Turn, st.just("model"), st.text(max_size=80), _attachments),
    served_by=st.none() | st.text(max_size=30),
    grounding=st.none() | _grounding,
    at=st.floats(min_value=0, max_value=4e9, allow_nan=False),
)


def exchange(i: int, text: str = "", served_by: str | None = None) -> Exchange:
    return Exchange(
        Turn("user", f"question {i}{text}"), Turn("model", f"answer {i}{text}"), served_by
    )


def size_of(ex: Exchange) -> int:
    return len(encode_exchange(ex).encode("utf-8"))


# -- the codec ----------------------------------------------------------------------------------


@given(exchanges)
def test_codec_round_trips_any_exchange(ex: Exchange) -> None:
    assert decode_exchange(encode_exchange(ex)) == ex
    assert decode_exchange(encode_exchange(ex).encode("utf-8")) == ex


def test_codec_keeps_grounding_provenance_and_files() -> None:
    ex = Exchange(
        Turn("user", "what is new?", (TextFile("a.py", "x = 1"),)),
        Turn("model", "Python 3.14 is out."),
        served_by="gemini-2.5-flash",
        grounding=Grounding(
            ("python release",),
            (Source("python.org", "https://python.org"),),
            (Support(0, 19, (0,)),),
        ),
        at=1_700_000_000.5,
    )
    doc = json.loads(encode_exchange(ex))
    assert doc["v"] == 1 and doc["by"] == "gemini-2.5-flash"
    assert doc["g"]["s"] == [["python.org", "https://python.org"]]
    assert decode_exchange(encode_exchange(ex)) == ex


def test_codec_stores_media_data_as_base64() -> None:
    media = Media("pic.png", "image/png", 3, SHA, data=b"\x00\xff\x10")
    ex = Exchange(Turn("user", "look", (media,)), Turn("model", "a pixel"))
    assert json.loads(encode_exchange(ex))["u"]["a"][0]["d"] == "AP8Q"


def test_codec_escapes_a_lone_surrogate_so_the_text_is_utf8() -> None:
    ex = exchange(0, "\ud800")
    encoded = encode_exchange(ex)
    encoded.encode("utf-8")  # would raise on an unescaped lone surrogate
    assert decode_exchange(encoded) == ex


@pytest.mark.parametrize(
    "junk",
    [
        "not json",
        "[]",
        '{"v": 2, "at": 0, "by": null, "u": {"t": ""}, "m": {"t": ""}}',
        '{"v": 1, "at": 0, "by": null, "u": {"t": ""}}',
        '{"v": 1, "at": "0", "by": null, "u": {"t": ""}, "m": {"t": ""}}',
        '{"v": 1, "at": 0, "by": 3, "u": {"t": ""}, "m": {"t": ""}}',
        '{"v": 1, "at": 0, "by": null, "u": {"t": 1}, "m": {"t": ""}}',
        '{"v": 1, "at": 0, "by": null, "u": {"t": "", "a": [{"k": "zip"}]}, "m": {"t": ""}}',
        '{"v": 1, "at": 0, "by": null, "u": {"t": "", "a": [{"k": "media", "l": "x", '
        '"mt": "image/png", "n": 1, "h": "0", "d": "!!"}]}, "m": {"t": ""}}',
        '{"v": 1, "at": 0, "by": null, "u": {"t": ""}, "m": {"t": ""}, '
        '"g": {"q": [], "s": [["only title"]], "p": []}}',
    ],
)
def test_codec_refuses_junk_and_newer_versions(junk: str) -> None:
    with pytest.raises(CodecError):
        decode_exchange(junk)


def test_an_exchange_is_a_user_turn_then_a_model_turn() -> None:
    with pytest.raises(ValueError, match="user turn followed by a model turn"):
        Exchange(Turn("model", "a"), Turn("user", "q"))


# -- the rules ----------------------------------------------------------------------------------


@given(
    st.lists(st.integers(1, 100), min_size=1, max_size=30),
    st.integers(1, 20),
    st.integers(1, 1000),
)
def test_drop_rule_drops_the_fewest_oldest_and_keeps_the_newest(
    sizes: list[int], max_exchanges: int, max_bytes: int
) -> None:
    n = exchanges_to_drop(sizes, max_exchanges, max_bytes)
    kept = sizes[n:]
    assert kept and kept[-1] == sizes[-1]  # the newest stays

    def fits(rest: list[int]) -> bool:
        return len(rest) <= max_exchanges and sum(rest) <= max_bytes

    assert fits(kept) or len(kept) == 1
    if n:
        assert not fits(sizes[n - 1 :])  # dropping one fewer would not do


def test_prepare_keeps_small_media_inline_and_large_ones_by_path() -> None:
    small = Media("s.png", "image/png", 4, SHA, data=b"1234")
    large = Media("l.pdf", "application/pdf", 10, SHA, data=b"0123456789", path="/w/l.pdf")
    lost = Media("x.mp4", "video/mp4", 10, SHA, data=b"0123456789")
    ex = Exchange(Turn("user", "q", (small, large, TextFile("t", "x"), lost)), Turn("model", "a"))
    prepared, omitted = prepare_exchange(ex, inline_media_bytes=4)
    kept = prepared.user.attachments
    assert kept[0] == small
    assert kept[1] == Media("l.pdf", "application/pdf", 10, SHA, data=None, path="/w/l.pdf")
    assert kept[2] == TextFile("t", "x")
    assert isinstance(kept[3], TextFile) and kept[3].label == "x.mp4"
    assert SHA in kept[3].text and "not kept" in kept[3].text
    assert omitted == 1


def test_prepare_leaves_an_exchange_without_media_alone() -> None:
    ex = exchange(1)
    assert prepare_exchange(ex, 0) == (ex, 0)


@pytest.mark.parametrize("value", [None, "", "short", "a" * 23, "a" * 25, "a b" * 8, 24, "é" * 24])
def test_a_malformed_id_is_an_error_naming_the_argument(value: object) -> None:
    with pytest.raises(InvalidConversationId, match=r"^conversation_id: "):
        validate_conversation_id(value)


def test_new_ids_are_valid_and_distinct() -> None:
    ids = {new_conversation_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(validate_conversation_id(i) == i for i in ids)


def test_settings_defaults_and_bounds() -> None:
    s = ConversationSettings()
    assert (s.ttl_seconds, s.max_turns, s.max_bytes) == (86_400.0, 40, 1_048_576)
    assert s.max_exchanges == 20
    for bad in ({"max_turns": 1}, {"ttl_seconds": 0}, {"max_bytes": 10}, {"unknown": 1}):
        with pytest.raises(ValidationError):
            ConversationSettings(**bad)


def test_saved_note_says_what_was_left_out() -> None:
    assert Saved("i", 2, 10).note() is None
    note = Saved("i", 4, 10, dropped=2, dropped_total=5, omitted_media=1).note()
    assert note is not None and note.startswith("The 2 oldest exchanges (4 turns)")
    assert "1 media file(s)" in note


# -- the in-process store -----------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def memory(clock: FakeClock, **settings: object) -> MemoryConversationStore:
    return MemoryConversationStore(ConversationSettings(**settings), clock=clock)


async def test_create_load_append(clock: FakeClock) -> None:
    store = memory(clock)
    saved = await store.create(exchange(0, served_by="m1"))
    assert (
        saved.turns == 2
        and saved.dropped == 0
        and saved.size == size_of(exchange(0, served_by="m1"))
    )
    clock.advance(5)
    again = await store.append(saved.conversation_id, exchange(1))
    assert again.conversation_id == saved.conversation_id and again.turns == 4
    thread = await store.load(saved.conversation_id)
    assert [t.text for t in thread.turns] == ["question 0", "answer 0", "question 1", "answer 1"]
    assert [t.role for t in thread.turns] == ["user", "model", "user", "model"]
    assert thread.exchanges[0].served_by == "m1"
    assert thread.updated == thread.created + 5


async def test_create_without_an_exchange_is_an_empty_thread(clock: FakeClock) -> None:
    store = memory(clock)
    saved = await store.create()
    assert (saved.turns, saved.size) == (0, 0)
    assert (await store.load(saved.conversation_id)).exchanges == ()


async def test_turn_cap_drops_oldest_whole_exchanges_and_says_so(clock: FakeClock) -> None:
    store = memory(clock, max_turns=5)  # an odd cap still keeps whole pairs: 2 exchanges
    cid = (await store.create(exchange(0))).conversation_id
    await store.append(cid, exchange(1))
    saved = await store.append(cid, exchange(2))
    assert (saved.turns, saved.dropped, saved.dropped_total) == (4, 1, 1)
    saved = await store.append(cid, exchange(3))
    assert (saved.dropped, saved.dropped_total) == (1, 2)
    thread = await store.load(cid)
    assert [t.text for t in thread.turns] == ["question 2", "answer 2", "question 3", "answer 3"]
    assert thread.dropped == 2


async def test_byte_cap_drops_as_many_oldest_as_needed(clock: FakeClock) -> None:
    big = "x" * 2000
    one = size_of(exchange(0, big))
    store = memory(clock, max_bytes=2 * one + 10)
    cid = (await store.create(exchange(0, big))).conversation_id
    await store.append(cid, exchange(1, big))
    saved = await store.append(cid, exchange(2, big))
    assert saved.dropped == 1 and saved.size == size_of(exchange(1, big)) + size_of(
        exchange(2, big)
    )
    # one exchange three times as large pushes both older ones out, not itself
    huge = "y" * 4000
    saved = await store.append(cid, exchange(3, huge))
    assert (saved.dropped, saved.turns) == (2, 2)
    assert [e.user.text for e in (await store.load(cid)).exchanges] == [f"question 3{huge}"]


async def test_an_exchange_larger_than_the_cap_is_refused_and_nothing_changes(
    clock: FakeClock,
) -> None:
    store = memory(clock, max_bytes=4096)
    cid = (await store.create(exchange(0))).conversation_id
    with pytest.raises(ExchangeTooLarge, match="more than a whole conversation may keep"):
        await store.append(cid, exchange(1, "z" * 5000))
    with pytest.raises(ExchangeTooLarge):
        await store.create(exchange(1, "z" * 5000))
    assert len((await store.load(cid)).exchanges) == 1 and len(store) == 1


async def test_media_beyond_the_inline_size_are_stored_by_reference(clock: FakeClock) -> None:
    store = memory(clock, inline_media_bytes=2)
    media = Media("a.png", "image/png", 3, SHA, data=b"abc", path="/s/a.png")
    ex = Exchange(Turn("user", "q", (media,)), Turn("model", "a"))
    saved = await store.create(ex)
    stored = (await store.load(saved.conversation_id)).exchanges[0].user.attachments[0]
    assert stored == Media("a.png", "image/png", 3, SHA, path="/s/a.png")
    assert saved.omitted_media == 0


async def test_ttl_expires_unused_threads_and_use_refreshes_it(clock: FakeClock) -> None:
    store = memory(clock, ttl_seconds=100)
    kept = (await store.create(exchange(0))).conversation_id
    idle = (await store.create(exchange(0))).conversation_id
    clock.advance(60)
    await store.load(kept)  # refreshed: now lives until t=160
    clock.advance(60)
    await store.append(kept, exchange(1))  # until t=220
    with pytest.raises(ConversationNotFound, match=r"expired \(threads are kept 100 s"):
        await store.load(idle)
    clock.advance(99)
    assert len((await store.load(kept)).exchanges) == 2
    clock.advance(100)
    with pytest.raises(ConversationNotFound):
        await store.append(kept, exchange(2))  # an expired thread is not recreated
    with pytest.raises(ConversationNotFound):
        await store.load(kept)


async def test_unknown_id_says_expired_or_never_existed_with_the_ttl(clock: FakeClock) -> None:
    store = memory(clock)
    with pytest.raises(ConversationNotFound) as caught:
        await store.load(new_conversation_id())
    message = str(caught.value)
    assert "expired" in message and "never existed" in message and "24 h" in message


async def test_malformed_ids_are_refused_before_anything_else(clock: FakeClock) -> None:
    store = memory(clock)
    with pytest.raises(InvalidConversationId, match="conversation_id"):
        await store.load("../../etc/passwd")
    with pytest.raises(InvalidConversationId):
        await store.append("x", exchange(0, "z" * 10**7))


async def test_least_recently_used_threads_go_beyond_the_count_cap(clock: FakeClock) -> None:
    store = memory(clock, memory_max_conversations=2)
    first = (await store.create(exchange(0))).conversation_id
    second = (await store.create(exchange(0))).conversation_id
    await store.load(first)  # second is now the least recently used
    await store.create(exchange(0))
    assert len(store) == 2
    await store.load(first)
    with pytest.raises(ConversationNotFound):
        await store.load(second)


async def test_expired_threads_are_forgotten_on_create(clock: FakeClock) -> None:
    store = memory(clock, ttl_seconds=10)
    for _ in range(5):
        await store.create()
    clock.advance(11)
    await store.create()
    assert len(store) == 1


async def test_concurrent_appends_all_land_in_call_order(clock: FakeClock) -> None:
    store = memory(clock)
    cid = (await store.create()).conversation_id
    await asyncio.gather(*(store.append(cid, exchange(i)) for i in range(10)))
    texts = [e.user.text for e in (await store.load(cid)).exchanges]
    assert texts == [f"question {i}" for i in range(10)]


async def test_the_server_keeps_threads_in_redis_when_configured_else_here() -> None:
    local = open_conversation_store(load_settings(api_key="k", models=["m"]))
    assert local.backend == "memory"
    settings = ConversationSettings(ttl_seconds=60)
    shared = open_conversation_store(
        load_settings(api_key="k", models=["m"], redis_url="redis://:pw@127.0.0.1:1/0"),
        settings,
    )
    assert shared.backend == "redis" and shared.settings == settings  # no I/O yet
    assert "pw" not in repr(shared)
    await shared.aclose()


async def test_a_burst_of_stateless_calls_does_not_push_out_a_continued_thread() -> None:
    store = MemoryConversationStore(ConversationSettings(memory_max_conversations=3))
    kept = (await store.create(exchange(0))).conversation_id
    await store.append(kept, exchange(1))  # continued: two exchanges
    for i in range(10):  # stateless calls: one exchange each, all newer than `kept`
        await store.create(exchange(100 + i))
    assert len(store) == 3
    assert len((await store.load(kept)).exchanges) == 2
