"""The event bus: routing by event type, and observers called after the loop's step."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from dataclasses import dataclass

import pytest

from gemini_failover.resilience.bus import Bus


@dataclass
class Happened:
    name: str


@dataclass
class Failed(Happened):
    pass


@dataclass
class Other:
    name: str


async def _next_step() -> None:
    """Returns once every callback scheduled before it has run (call_soon is FIFO)."""
    done = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(done.set_result, None)
    await done


def test_a_subscriber_gets_only_the_kinds_it_names_subclasses_included() -> None:
    bus: Bus[object] = Bus()
    narrow: list[object] = []
    every: list[object] = []
    bus.subscribe(narrow.append, kinds=(Happened,))
    bus.subscribe(every.append)
    events = [Happened("a"), Other("b"), Failed("c")]
    for event in events:
        bus.publish(event)
    assert narrow == [events[0], events[2]]
    assert every == events


def test_unsubscribing_stops_delivery_even_after_the_route_was_worked_out() -> None:
    bus: Bus[object] = Bus()
    seen: list[object] = []
    unsubscribe = bus.subscribe(seen.append, kinds=(Happened,))
    bus.publish(Happened("before"))
    unsubscribe()
    bus.publish(Happened("after"))
    later: list[object] = []
    bus.subscribe(later.append)  # a new subscriber is routed to at once
    bus.publish(Happened("last"))
    assert seen == [Happened("before")]
    assert later == [Happened("last")]


async def test_a_deferred_subscriber_runs_after_the_step_in_publish_order() -> None:
    bus: Bus[Happened] = Bus()
    calls: list[str] = []
    bus.subscribe(lambda e: calls.append(f"observer {e.name}"), deferred=True)
    bus.subscribe(lambda e: calls.append(f"inline {e.name}"))
    bus.publish(Happened("one"))
    bus.publish(Happened("two"))
    calls.append("publisher goes on")
    assert calls == ["inline one", "inline two", "publisher goes on"]
    await _next_step()
    assert calls[3:] == ["observer one", "observer two"]
    bus.publish(Happened("three"))  # a later step: scheduled again
    await _next_step()
    assert calls[-2:] == ["inline three", "observer three"]


REQUEST: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="none")


async def test_a_deferred_subscriber_sees_each_publishers_context() -> None:
    """One drain delivers the events of many requests: each in its own publisher's
    context (a log line keeps its request's bound variables)."""
    bus: Bus[Happened] = Bus()
    seen: list[tuple[str, str]] = []
    bus.subscribe(lambda e: seen.append((e.name, REQUEST.get())), deferred=True)
    both_published = asyncio.Barrier(2)

    async def request(name: str) -> None:
        REQUEST.set(name)
        bus.publish(Happened(name))
        await both_published.wait()

    async with asyncio.TaskGroup() as group:
        group.create_task(request("a"))
        group.create_task(request("b"))
    await _next_step()
    assert seen == [("a", "a"), ("b", "b")]


def test_without_a_running_loop_a_deferred_subscriber_runs_at_once() -> None:
    bus: Bus[object] = Bus()
    seen: list[object] = []
    bus.subscribe(seen.append, deferred=True)
    bus.publish(Happened("now"))
    assert seen == [Happened("now")]


async def test_a_failing_observer_is_logged_and_the_others_still_get_the_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus: Bus[object] = Bus()
    seen: list[object] = []

    def broken(event: object) -> None:
        raise RuntimeError("observer bug")

    bus.subscribe(broken, deferred=True)
    bus.subscribe(seen.append, deferred=True)
    with caplog.at_level(logging.ERROR, logger="gemini_failover.resilience.bus"):
        bus.publish(Happened("x"))
        await _next_step()
    assert seen == [Happened("x")]
    assert "observer bug" in caplog.text


def test_an_inline_subscriber_that_raises_reaches_the_publisher() -> None:
    bus: Bus[object] = Bus()

    def broken(event: object) -> None:
        raise RuntimeError("a bug")

    bus.subscribe(broken)
    with pytest.raises(RuntimeError, match="a bug"):
        bus.publish(Happened("x"))


def test_events_left_by_a_stopped_loop_come_before_the_next_loops() -> None:
    bus: Bus[Happened] = Bus()
    seen: list[str] = []
    bus.subscribe(lambda e: seen.append(e.name), deferred=True)
    loop = asyncio.new_event_loop()

    def publish_as_the_loop_stops() -> None:
        loop.stop()  # this is the loop's last step: the drain it schedules never runs
        bus.publish(Happened("first"))

    loop.call_soon(publish_as_the_loop_stops)
    loop.run_forever()
    loop.close()
    assert seen == []

    async def publish(name: str) -> None:
        bus.publish(Happened(name))
        assert seen == ["first"]  # delivered at once, before this loop's own

    asyncio.run(publish("second"))
    assert seen == ["first", "second"]
    bus.publish(Happened("third"))  # no loop: at once
    bus.flush()  # nothing pending: a no-op
    assert seen == ["first", "second", "third"]


async def test_an_interrupt_in_an_observer_leaves_the_later_events_pending() -> None:
    bus: Bus[Happened] = Bus()
    seen: list[str] = []

    def observer(event: Happened) -> None:
        if event.name == "stop":
            raise KeyboardInterrupt
        seen.append(event.name)

    bus.subscribe(observer, deferred=True)
    for name in ("a", "stop", "b", "c"):
        bus.publish(Happened(name))
    with pytest.raises(KeyboardInterrupt):
        bus.flush()
    assert seen == ["a"]
    bus.flush()
    assert seen == ["a", "b", "c"]


async def test_a_publish_from_another_thread_is_delivered_there_leaving_the_loops_alone() -> None:
    bus: Bus[Happened] = Bus()
    seen: list[tuple[str, bool]] = []
    loop_thread = threading.get_ident()
    bus.subscribe(
        lambda e: seen.append((e.name, threading.get_ident() == loop_thread)), deferred=True
    )
    bus.publish(Happened("on the loop"))  # pending until the step ends
    worker = threading.Thread(target=bus.publish, args=(Happened("in a worker"),))
    worker.start()
    worker.join()  # within this step: the loop's event is still pending
    assert seen == [("in a worker", False)]  # the worker did not take the loop's event
    await _next_step()
    assert seen == [("in a worker", False), ("on the loop", True)]
