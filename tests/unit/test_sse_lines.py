"""The direct path splits a stream's body into lines exactly as google-genai does:
at CR, LF and CRLF only, whatever the chunking (a CRLF may be cut between chunks)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

from google.genai._api_client import _SseLineDecoder
from hypothesis import given, settings
from hypothesis import strategies as st

from gemini_failover.gemini.wire import _events, _lines


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def ours(parts: list[bytes]) -> list[str]:
    async def run() -> list[str]:
        return [line async for line in _lines(_chunks(parts))]

    return asyncio.run(run())


def sdks(parts: list[bytes]) -> list[str]:
    decoder = _SseLineDecoder()
    lines = [line for part in parts for line in decoder.decode(part)]
    return lines + decoder.flush()


def events(parts: list[bytes]) -> list[str]:
    async def run() -> list[str]:
        return [event async for event in _events(_chunks(parts))]

    return asyncio.run(run())


def test_a_blank_line_after_a_crlf_cut_between_chunks_still_ends_the_event() -> None:
    parts = [b'data: {"a": 1}\r', b"\n", b"\n", b'data: {"b": 2}\r\n\r\n']
    assert events(parts) == ['{"a": 1}', '{"b": 2}']
    assert ours(parts) == sdks(parts)


# bytes the line breaks hide in: CR, LF, text, U+2028 (a line break to str.splitlines,
# not to SSE) and a UTF-8 sequence that a chunk boundary may cut
PIECES = st.sampled_from([b"\r", b"\n", b"\r\n", b"a", b"data: x", "\u2028".encode(), "é".encode()])


@settings(max_examples=400, deadline=None)
@given(body=st.lists(PIECES, max_size=30), cuts=st.lists(st.integers(0, 200), max_size=8))
def test_lines_are_split_as_the_sdk_splits_them(body: list[bytes], cuts: list[int]) -> None:
    data = b"".join(body)
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    parts = [data[a:b] for a, b in itertools.pairwise(points)]
    parts.insert(len(parts) // 2, b"")  # an empty chunk changes nothing
    assert ours(parts) == sdks(parts)
