"""The gateway protocol's per-connection helpers: corked writes and the disconnect signal."""

from __future__ import annotations

import asyncio

from gemini_failover.server.connection import FLUSH_BYTES, CorkedTransport, DisconnectSignal


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
