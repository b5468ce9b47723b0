"""A client that disconnects cancels its request at once (and so the upstream HTTP
request), unless the request has passed the point where it should finish anyway."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable

from starlette.types import Receive

from gemini_failover.server.connection import DisconnectSignal

__all__ = ["Watch", "until_disconnect"]


class Watch:
    """Whether a client disconnect should still cancel the request (``active``), and
    whether it did (``fired``)."""

    __slots__ = ("active", "fired", "task")

    def __init__(self) -> None:
        self.task = asyncio.current_task()
        self.active = True
        self.fired = False


async def _watch(receive: Receive, watch: Watch) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    if watch.active and watch.task is not None:
        watch.fired = True
        watch.task.cancel()


async def until_disconnect(
    receive: Receive, work: Awaitable[None], watch: Watch, signal: DisconnectSignal | None = None
) -> None:
    """Run ``work``; if the client disconnects first, cancel it (which closes the
    upstream request) and return. The server's :class:`DisconnectSignal` tells of the
    disconnect when it gives one; otherwise a task waits on ``receive`` for it (plain
    asyncio rather than a task group: this is on every request's path, and a task group
    costs several times more)."""

    def lost() -> None:
        if watch.active and watch.task is not None:
            watch.fired = True
            watch.task.cancel()

    if signal is not None and signal.lost:  # gone before the work began: nothing to do
        if inspect.iscoroutine(work):
            work.close()
        return
    watcher = None
    if signal is None:
        watcher = asyncio.get_running_loop().create_task(_watch(receive, watch))
    else:
        signal.subscribe(lost)
    try:
        await work
    except asyncio.CancelledError:
        if watch.fired and watch.task is not None and watch.task.uncancel() == 0:
            return
        raise
    finally:
        watch.active = False
        if watcher is not None:
            watcher.cancel()
        elif signal is not None:
            signal.unsubscribe(lost)
