"""The cyclic garbage collector, paused while ``serve`` starts.

Start-up creates some 150,000 objects that live as long as the process (the MCP SDK's
and the tools' pydantic models, their schemas and validators) and almost no garbage
(a few thousand objects). With the collector on, it walks the pile again and again as
it grows: a few full collections, about 40 ms of a 600 ms start, that find nothing.

The CLI pauses it before its first heavy import; the transport resumes it once the
MCP server (or the gateway, with its runtime started) is built, before it serves: the
objects made so far are frozen (``gc.freeze``: moved to a generation that no
collection walks, which also keeps every later full collection from walking them
again) and the collector runs as usual from then on. A collector that was already off is left alone.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


class _State:
    paused = False


def pause() -> None:
    """Turn the collector off until :func:`resume` (once per process: the CLI)."""
    if gc.isenabled():
        gc.disable()
        _State.paused = True


def resume() -> None:
    """Freeze what start-up built and turn the collector back on, if pause() turned it
    off (idempotent)."""
    if _State.paused:
        _State.paused = False
        gc.freeze()
        gc.enable()


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """The collector paused within (the CLI's ``serve`` and ``gateway``), resumed at the
    end if the transport has not resumed it already."""
    pause()
    try:
        yield
    finally:
        resume()


__all__ = ["pause", "paused", "resume"]
