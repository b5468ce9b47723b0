"""Citation offsets of a continued stream: a continuation's supports shifted into the
stitched text, the trimmed overlap cut away, sources merged by URI."""

from __future__ import annotations

from gemini_failover.protocol import Grounding, Source, Support
from gemini_failover.resilience.grounding import merge, shift

A, B, C = Source("a", "https://a"), Source("b", "https://b"), Source("c", "https://c")


def test_shift_moves_supports_past_what_was_sent_minus_the_trim() -> None:
    raw = Grounding(
        ("q",), (A,), (Support(0, 4, (0,)), Support(4, 10, (0,)), Support(12, 20, (0,)))
    )
    # the segment starts at 100 in the stitched text; its first 6 characters were a
    # repeat (trimmed); it contributed up to character 112
    out = shift(raw, 100, 6, 112)
    assert out.supports == (
        Support(100, 104, (0,)),  # straddled the trim: cut to what was kept
        Support(106, 112, (0,)),  # ran past the segment's end: clipped
    )  # the first support lay wholly inside the trimmed repeat: dropped
    assert out.queries == ("q",) and out.sources == (A,)


def test_shift_without_trim_is_a_plain_offset() -> None:
    raw = Grounding((), (A,), (Support(0, 5, (0,)),))
    assert shift(raw, 7, 0, 50).supports == (Support(7, 12, (0,)),)


def test_merge_renumbers_the_second_segments_sources() -> None:
    first = Grounding(("q1",), (A, B), (Support(0, 5, (0, 1)),))
    second = Grounding(("q1", "q2"), (C, B), (Support(10, 15, (0, 1)),))
    merged = merge(first, second)
    assert merged is not None
    assert merged.sources == (A, B, C)
    assert merged.queries == ("q1", "q2")
    assert merged.supports == (Support(0, 5, (0, 1)), Support(10, 15, (2, 1)))
    assert merge(None, second) is second and merge(first, None) is first
