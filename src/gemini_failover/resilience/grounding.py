"""Search grounding across a stitched stream: citation offsets that stay right.

A model's grounding counts character offsets from the start of *its* stream. When a
stream is continued on another model, the continuation's text lands in the stitched
answer at ``seg_start`` after the Stitcher trimmed ``trim`` characters of repeated
overlap from its head: a support ``[s, e)`` of that segment is ``[seg_start + s - trim,
seg_start + e - trim)`` of the answer, clipped to the part that was kept (a support
inside the trimmed head is dropped, one that straddles it is cut to what remains, and
nothing points past the text the segment contributed). Sources from several segments
are merged by URI and the supports' indices renumbered.

Pure: no I/O.
"""

from __future__ import annotations

from gemini_failover.protocol import Grounding, Source, Support


def shift(grounding: Grounding, seg_start: int, trim: int, seg_end: int) -> Grounding:
    """``grounding`` of one segment, in offsets of the stitched text (see above)."""
    supports = []
    for s in grounding.supports:
        start = seg_start + max(0, s.start - trim)
        end = min(seg_end, seg_start + s.end - trim)
        if end > start:
            supports.append(Support(start, end, s.sources))
    return Grounding(grounding.queries, grounding.sources, tuple(supports))


def merge(first: Grounding | None, second: Grounding | None) -> Grounding | None:
    """Both segments' groundings as one: queries deduplicated in order, sources by URI."""
    if first is None:
        return second
    if second is None:
        return first
    sources = list(first.sources)
    index = {src.uri: i for i, src in enumerate(sources)}
    remap: dict[int, int] = {}
    for i, src in enumerate(second.sources):
        if src.uri not in index:
            index[src.uri] = len(sources)
            sources.append(Source(src.title, src.uri))
        remap[i] = index[src.uri]
    supports = [
        *first.supports,
        *(
            Support(s.start, s.end, tuple(remap[i] for i in s.sources if i in remap))
            for s in second.supports
        ),
    ]
    queries = tuple(dict.fromkeys((*first.queries, *second.queries)))
    return Grounding(queries, tuple(sources), tuple(supports))
