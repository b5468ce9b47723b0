"""The gateway protocol's per-connection helpers (corked writes, the disconnect signal)
and when its answers are written."""

from __future__ import annotations

import asyncio

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.server import ServerState

from gemini_failover.server.connection import FLUSH_BYTES, CorkedTransport, DisconnectSignal
from gemini_failover.server.http import guarded_httptools
from gemini_failover.settings_groups import HttpSettings

LENGTH_2 = (b"content-length", b"2")


class Recording(asyncio.Transport):
    """A transport that keeps what reaches it, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, bytes]] = []
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.events.append(("write", bytes(data)))

    def close(self) -> None:
        self.closing = True
        self.events.append(("close", b""))

    def abort(self) -> None:
        self.closing = True
        self.events.append(("abort", b""))

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0


async def _next_iteration() -> None:
    """Returns once every callback scheduled before it has run (call_soon is FIFO)."""
    done = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(done.set_result, None)
    await done


async def test_writes_in_one_step_leave_as_one_write_in_order() -> None:
    inner = Recording()
    corked = CorkedTransport(inner, asyncio.get_running_loop())
    corked.write(b"HTTP/1.1 200 OK\r\n\r\n")
    corked.write(bytearray(b"{}"))
    corked.write(b"")  # nothing: no write of its own
    assert inner.events == []
    assert corked.get_write_buffer_size() == len(b"HTTP/1.1 200 OK\r\n\r\n{}")
    await _next_iteration()
    assert inner.events == [("write", b"HTTP/1.1 200 OK\r\n\r\n{}")]
    corked.write(b"next")  # a later step: a write of its own
    await _next_iteration()
    assert inner.events[1:] == [("write", b"next")]


async def test_close_sends_what_is_held_first_and_abort_drops_it() -> None:
    inner = Recording()
    corked = CorkedTransport(inner, asyncio.get_running_loop())
    corked.write(b"last answer")
    corked.close()
    assert inner.events == [("write", b"last answer"), ("close", b"")]
    await _next_iteration()  # the scheduled flush finds nothing left
    assert inner.events == [("write", b"last answer"), ("close", b"")]

    inner = Recording()
    corked = CorkedTransport(inner, asyncio.get_running_loop())
    corked.write(b"never sent")
    corked.abort()
    await _next_iteration()
    assert inner.events == [("abort", b"")]


async def test_what_is_held_goes_to_a_closing_transport_but_not_after_the_loss() -> None:
    inner = Recording()
    corked = CorkedTransport(inner, asyncio.get_running_loop())
    corked.write(b"answer")
    inner.closing = True  # the client half-closed: it may still read
    await _next_iteration()
    assert inner.events == [("write", b"answer")]

    inner = Recording()
    corked = CorkedTransport(inner, asyncio.get_running_loop())
    corked.write(b"held")
    corked.lost()  # connection_lost: the peer is gone
    corked.write(b"after")
    await _next_iteration()
    assert inner.events == []
    assert corked.get_write_buffer_size() == 0


async def test_a_large_body_is_written_at_once_for_flow_control() -> None:
    """The wrapped transport must see a large body in the same step, so that its
    high-water mark pauses the writer before the next chunk."""
    inner = Recording()
    corked = CorkedTransport(inner, asyncio.get_running_loop())
    corked.write(b"head")
    body = b"x" * FLUSH_BYTES
    corked.write(body)
    assert inner.events == [("write", b"head" + body)]  # no loop iteration needed
    await _next_iteration()
    assert inner.events == [("write", b"head" + body)]


def test_the_signal_calls_its_subscribers_once_and_late_ones_at_once() -> None:
    signal = DisconnectSignal()
    calls: list[str] = []

    def first() -> None:
        calls.append("first")

    def gone() -> None:
        calls.append("gone")

    signal.subscribe(first)
    signal.subscribe(gone)
    signal.unsubscribe(gone)  # its request ended before the disconnect
    signal.unsubscribe(gone)  # twice is harmless
    signal.fire()
    signal.fire()
    assert calls == ["first"]
    signal.subscribe(lambda: calls.append("late"))
    assert calls == ["first", "late"] and signal.lost


async def _serve_one(app: ASGIApp) -> Recording:
    """The gateway's httptools protocol on a recording transport, given one request."""
    inner = Recording()
    config = uvicorn.Config(app, http="httptools", lifespan="off", log_config=None)
    config.load()
    protocol = guarded_httptools(HttpSettings())(
        config=config, server_state=ServerState(), app_state={}
    )
    protocol.connection_made(inner)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return inner


async def test_a_whole_answer_leaves_before_the_app_step_ends() -> None:
    """Once its last byte is sent, an answer is written at once: not after the rest of
    the request's step (the manager's bookkeeping) and the loop's next poll."""
    seen: list[list[tuple[str, bytes]]] = []
    done = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [LENGTH_2]})
        assert inner.events == []  # the head waits for the body
        await send({"type": "http.response.body", "body": b"{}"})
        seen.append(list(inner.events))  # still this step
        done.set()

    inner = await _serve_one(app)
    await done.wait()
    assert len(seen[0]) == 1
    kind, data = seen[0][0]
    assert kind == "write" and data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"{}")


async def test_a_streamed_answers_parts_are_still_corked_per_step() -> None:
    seen: list[int] = []
    done = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        seen.append(len(inner.events))  # nothing yet: head and first part go together
        await _next_iteration()
        seen.append(len(inner.events))
        await send({"type": "http.response.body", "body": b""})
        done.set()

    inner = await _serve_one(app)
    await done.wait()
    assert seen == [0, 1]
    assert inner.events[0][1].endswith(b"data: 1\n\n\r\n")  # one write: head and chunk
    assert inner.events[-1] == ("write", b"0\r\n\r\n")
