"""The event bus: the manager publishes, metrics, logs and the rest subscribe.

Subscribers are called in subscription order, each event in publish order. Two choices
per subscriber keep the bus off the path of a call's answer:

- ``kinds``: the event types it handles (subclasses included); it is not called for
  the others. Routes are worked out once per event type.
- ``deferred``: a subscriber that only observes (metrics, logs, the health page's
  failover clock) is called after the current step of the event loop instead of inside
  ``publish``, so that an answer is written before the bookkeeping of the call that
  made it. It runs before the loop handles any further I/O, in the publisher's context
  (contextvars: structlog's bound variables, say). Outside a running loop it is called
  at once. :meth:`Bus.flush` delivers what is pending now (at shutdown, say).

A subscriber called inside ``publish`` that raises is a bug and propagates to the
publisher; a deferred one that raises is logged and the others still get the event. A
deferred subscriber gets the events published while it was subscribed, even if it
unsubscribes before they are delivered.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Bus"]

log = logging.getLogger(__name__)

E = TypeVar("E")
_Handlers = tuple[Callable[[E], None], ...]


@dataclass(frozen=True, slots=True, eq=False)
class _Subscription(Generic[E]):
    handler: Callable[[E], None]
    kinds: tuple[type[E], ...] | None  # None: every event
    deferred: bool

    def wants(self, kind: type[E]) -> bool:
        return self.kinds is None or issubclass(kind, self.kinds)


class Bus(Generic[E]):
    """An event bus for events of type ``E`` (the manager's is ``events.EventBus``)."""

    def __init__(self) -> None:
        self._subscriptions: list[_Subscription[E]] = []
        #: per event type: (called in publish, called after the loop's step)
        self._routes: dict[type[E], tuple[_Handlers[E], _Handlers[E]]] = {}
        #: deferred deliveries, each with the publisher's context (structlog's bound
        #: variables, say: the drain runs once for the events of many requests)
        self._pending: list[tuple[E, _Handlers[E], contextvars.Context]] = []
        self._drain_on: asyncio.AbstractEventLoop | None = None  # a drain is scheduled there

    def subscribe(
        self,
        subscriber: Callable[[E], None],
        *,
        kinds: Iterable[type[E]] | None = None,
        deferred: bool = False,
    ) -> Callable[[], None]:
        """Add a subscriber (see the module docstring); returns a function that
        removes it."""
        subscription = _Subscription(
            subscriber, tuple(kinds) if kinds is not None else None, deferred
        )
        self._subscriptions.append(subscription)
        self._routes.clear()

        def unsubscribe() -> None:
            self._subscriptions.remove(subscription)
            self._routes.clear()

        return unsubscribe

    def publish(self, event: E) -> None:
        route = self._routes.get(type(event))
        if route is None:
            route = self._route(type(event))
        now, later = route
        for handler in now:
            handler(event)
        if later:
            self._defer(event, later)

    def flush(self) -> None:
        """Deliver the deferred events now, in order (on the thread of the loop that
        published them)."""
        while self._pending:
            pending, self._pending = self._pending, []
            for i, (event, handlers, context) in enumerate(pending):
                try:
                    _deliver(event, handlers, context)
                except BaseException:  # KeyboardInterrupt, say: the rest stay pending
                    self._pending[:0] = pending[i + 1 :]
                    raise

    def _route(self, kind: type[E]) -> tuple[_Handlers[E], _Handlers[E]]:
        wanted = [s for s in self._subscriptions if s.wants(kind)]
        route = (
            tuple(s.handler for s in wanted if not s.deferred),
            tuple(s.handler for s in wanted if s.deferred),
        )
        self._routes[kind] = route
        return route

    def _defer(self, event: E, handlers: _Handlers[E]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop on this thread: nothing to wait for
            owner = self._drain_on
            if owner is None or not owner.is_running():
                self.flush()  # left by a loop that has stopped: they come first
            # (else a loop on another thread owns the pending events: not touched here)
            _deliver(event, handlers, contextvars.copy_context())
            return
        if self._drain_on is not loop:
            # events left by a loop that stopped before its drain ran go first
            self.flush()
            self._drain_on = loop
            loop.call_soon(self._drain)
        self._pending.append((event, handlers, contextvars.copy_context()))

    def _drain(self) -> None:
        self._drain_on = None
        self.flush()


def _deliver(event: E, handlers: _Handlers[E], context: contextvars.Context) -> None:
    for handler in handlers:
        try:
            context.run(handler, event)
        except Exception:
            log.exception("event subscriber %r failed on %s", handler, event)
