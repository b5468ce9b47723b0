"""Reading Gemini answers: text vs thought summaries, usage, search grounding.

Grounding offsets: Gemini's ``groundingSupports[].segment`` has ``startIndex`` and
``endIndex`` in UTF-8 **bytes** of the answer text (the candidate's non-thought text
parts, concatenated), and proto3 JSON leaves zeros out, so a segment that starts at the
beginning has no ``startIndex``. :class:`~gemini_failover.protocol.Support` holds
**character** offsets into the same text (what Python slices by).

In a stream the metadata comes on the last chunk(s). This reader takes its offsets to
count from the start of the whole streamed text, which is what the emulator sends; it
could not be checked against the live API from here. Each chunk's metadata is converted
against the text streamed up to and including that chunk, so ``StreamChunk.grounding``
offsets count from the start of the stream (a continuation's from the start of that
continuation: the manager shifts them by the text before).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gemini_failover.protocol import Grounding, Source, Support, Usage

if TYPE_CHECKING:
    from google.genai import types as genai_types


def split_parts(candidate: genai_types.Candidate) -> tuple[str, str]:
    """(answer text, thought summaries) of a candidate: thoughts never join the text."""
    parts = candidate.content.parts if candidate.content and candidate.content.parts else []
    text = "".join(p.text for p in parts if p.text and not p.thought)
    thoughts = "".join(p.text for p in parts if p.text and p.thought)
    return text, thoughts


def usage_of(response: genai_types.GenerateContentResponse) -> Usage | None:
    meta = response.usage_metadata
    if meta is None:
        return None
    prompt = meta.prompt_token_count or 0
    output = meta.candidates_token_count or 0
    thinking = meta.thoughts_token_count or 0
    total = meta.total_token_count or prompt + output + thinking
    return Usage(prompt, output, total, thinking)


def char_offset(encoded: bytes, byte_offset: int, text_length: int) -> int:
    """The character offset of a UTF-8 byte offset into ``encoded`` (clamped to the
    text; an offset inside a multi-byte character counts from that character)."""
    if byte_offset <= 0:
        return 0
    if byte_offset >= len(encoded):
        return text_length
    return len(encoded[:byte_offset].decode("utf-8", "ignore"))


def grounding_of(metadata: genai_types.GroundingMetadata | None, text: str) -> Grounding | None:
    """The protocol's Grounding of ``metadata``, its offsets converted from bytes of
    ``text`` to characters. None when there is no metadata."""
    if metadata is None:
        return None
    sources: list[Source] = []
    for chunk in metadata.grounding_chunks or ():
        origin = chunk.web or chunk.retrieved_context or chunk.maps
        sources.append(
            Source(
                title=(origin.title or "") if origin else "",
                uri=(origin.uri or "") if origin else "",
            )
        )
    supports: list[Support] = []
    encoded = text.encode("utf-8")
    for support in metadata.grounding_supports or ():
        segment = support.segment
        if segment is None:
            continue
        start = char_offset(encoded, segment.start_index or 0, len(text))
        end = char_offset(encoded, segment.end_index or 0, len(text))
        indices = tuple(i for i in support.grounding_chunk_indices or () if 0 <= i < len(sources))
        if end > start:
            supports.append(Support(start, end, indices))
    return Grounding(
        queries=tuple(metadata.web_search_queries or ()),
        sources=tuple(sources),
        supports=tuple(supports),
    )
