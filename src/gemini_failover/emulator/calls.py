"""One Gemini API request in progress: waiting on it, dropping its connection, and what
the request log needs to know about it."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from starlette.types import Receive, Scope, Send

from .log import RequestRecord, Waiter, wake_all
from .wire.requests import Action
from .wire.transport import AsgiReplier

__all__ = ["ABORT_SCOPE_KEY", "Call", "ConnectionDropped", "Interrupted", "Interrupts"]

#: A server running the emulator may put a callable ``abort(scope) -> bool`` under this
#: ASGI scope key; it closes the request's TCP connection at once (EmulatorServer does).
ABORT_SCOPE_KEY = "gemini_failover.emulator.abort"


class ConnectionDropped(Exception):
    """Raised to make the ASGI server drop a connection when no abort hook is available."""


class Interrupted(Exception):
    """A wait ended because the client went away or the server is shutting down;
    ``reason`` is the request's outcome."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Interrupts:
    """The waits (hangs, latency) that server shutdown ends at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waits: set[Waiter] = set()

    def register(self) -> asyncio.Future[None]:
        """A future resolved when the server shuts down."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._waits.add((loop, fut))
        return fut

    def unregister(self, fut: asyncio.Future[None]) -> None:
        with self._lock:
            self._waits = {e for e in self._waits if e[1] is not fut}

    def release_all(self) -> int:
        with self._lock:
            entries, self._waits = self._waits, set()
        wake_all(list(entries))
        return len(entries)


class Call:
    """Per-request state: the ASGI triple, the answer sent so far, the faults fired."""

    __slots__ = (
        "_disconnect",
        "_interrupts",
        "_shutdown",
        "action",
        "chunks_sent",
        "endpoint",
        "faults",
        "file",
        "model",
        "parts",
        "per_chunk",
        "raise_drop",
        "receive",
        "replier",
        "scope",
        "started",
        "started_perf",
        "thinking",
        "tools",
    )

    def __init__(
        self,
        interrupts: Interrupts,
        scope: Scope,
        receive: Receive,
        send: Send,
        model: str,
        action: Action,
        now_wall: float,
        endpoint: str = "gemini_api",
    ) -> None:
        self._interrupts = interrupts
        self.endpoint = endpoint
        self.parts: tuple[dict[str, Any], ...] = ()
        self.tools: tuple[str, ...] = ()
        self.thinking: dict[str, Any] | None = None
        self.file: str | None = None
        self.scope = scope
        self.receive = receive
        self.replier = AsgiReplier(send)
        self.model = model
        self.action: Action = action
        self.started = now_wall
        self.started_perf = time.perf_counter()
        self.chunks_sent = 0
        self.faults: list[str] = []
        self.per_chunk = 0.0
        self.raise_drop = False
        self._disconnect: asyncio.Future[None] | None = None
        self._shutdown: asyncio.Future[None] | None = None

    async def _await_disconnect(self) -> None:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                return

    def _watch_disconnect(self) -> asyncio.Future[None]:
        if self._disconnect is None:
            self._disconnect = asyncio.ensure_future(self._await_disconnect())
        return self._disconnect

    async def pause(self, seconds: float | None) -> None:
        """Wait; raise Interrupted if the client goes away or the server shuts down."""
        disconnect = self._watch_disconnect()
        if self._shutdown is None:
            self._shutdown = self._interrupts.register()
        done, _ = await asyncio.wait(
            (disconnect, self._shutdown),
            timeout=seconds,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if disconnect in done:
            raise Interrupted("client_disconnected")
        if self._shutdown in done:
            raise Interrupted("server_shutdown")

    async def hang(self) -> None:
        """Wait until the client goes (``client_disconnected``) or the server shuts down
        (``fault:hang``); always raises Interrupted."""
        try:
            await self.pause(None)
        except Interrupted as stop:
            if stop.reason == "server_shutdown":
                raise Interrupted("fault:hang") from None
            raise
        raise AssertionError("a wait without timeout ended without an interruption")

    async def drop_connection(self) -> None:
        """Close the TCP connection without finishing the response.

        Uses the server's abort hook (see ABORT_SCOPE_KEY); without one, marks the call
        so that the handler raises ConnectionDropped once the request is logged, which
        makes any ASGI server close the connection.
        """
        if self._disconnect is not None and self._disconnect.done():
            return  # the client is gone already
        abort = self.scope.get(ABORT_SCOPE_KEY)
        if abort is not None and abort(self.scope):
            # Wait until the server has seen the connection go, so that it neither logs
            # an unfinished response nor tries to send a 500 on it.
            await asyncio.wait((self._watch_disconnect(),), timeout=2.0)
            return
        self.raise_drop = True

    def close(self) -> None:
        if self._disconnect is not None and not self._disconnect.done():
            self._disconnect.cancel()
        if self._shutdown is not None:
            self._interrupts.unregister(self._shutdown)

    def record(self, outcome: str) -> RequestRecord:
        return RequestRecord(
            model=self.model,
            action=self.action,
            status=self.replier.status,
            time=self.started,
            outcome=outcome,
            chunks_sent=self.chunks_sent,
            faults=tuple(self.faults),
            duration=time.perf_counter() - self.started_perf,
            endpoint=self.endpoint,
            parts=self.parts,
            tools=self.tools,
            thinking=self.thinking,
            file=self.file,
        )
