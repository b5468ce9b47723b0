"""The EventBus log subscriber: one structured log line per event, as each event
declares it (``spec.log``, see :mod:`gemini_failover.resilience.event_spec`).

Levels, as declared: warning for failovers, breakers opening, sheds, exhausted quotas,
unavailable models, spent retry budgets and a degraded state backend; error for auth
failures (an operator must act); info for other breaker transitions, continuations,
semantic failures, active-model changes and backend recovery; debug for per-attempt
detail (attempts, retries, rate-limit waits, skips, finished requests), which would
drown everything else at info.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from operator import attrgetter
from typing import Any, Protocol

import structlog

from gemini_failover.resilience.event_spec import ByValue, Log, reader
from gemini_failover.resilience.events import EVENT_TYPES, Event

LOGGER_NAME = "gemini_failover.events"


class LoggerLike(Protocol):
    """The part of a structlog logger that :class:`EventLogger` uses."""

    def debug(self, event: str, **kw: Any) -> Any: ...
    def info(self, event: str, **kw: Any) -> Any: ...
    def warning(self, event: str, **kw: Any) -> Any: ...
    def error(self, event: str, **kw: Any) -> Any: ...


_Handler = Callable[[Any], None]


class EventLogger:
    """EventBus subscriber: logs every event as its ``spec.log`` declares."""

    def __init__(self, logger: LoggerLike | None = None) -> None:
        self._log: LoggerLike = logger if logger is not None else structlog.get_logger(LOGGER_NAME)
        # Per-request events are logged at debug, which is off in production: ask the
        # stdlib level first (~0.1 us) instead of building an event dict for structlog
        # to drop (~6 us, twice a request). An injected logger decides for itself.
        stdlib = logging.getLogger(LOGGER_NAME)
        self._debug_on: Callable[[], bool] = (
            (lambda: True) if logger is not None else (lambda: stdlib.isEnabledFor(logging.DEBUG))
        )
        self._handlers: dict[type[Event], _Handler] = {}
        for kind in EVENT_TYPES:
            if kind.spec.log is not None:
                self._handlers[kind] = self._compile(kind.spec.log)

    @property
    def kinds(self) -> tuple[type[Event], ...]:
        """The events that log a line (the others need not be delivered)."""
        return tuple(self._handlers)

    def handle(self, event: Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _compile(self, spec: Log) -> _Handler:
        """One function that writes *spec*'s line for an event (built once per type)."""
        name = spec.event
        fields = tuple((key, reader(source)) for key, source in spec.fields.items())
        level_of = _level_reader(spec.level)

        def emit(e: Any) -> None:
            # getattr at call time: a structlog proxy rebinds after reconfiguration.
            getattr(self._log, level_of(e))(name, **{key: get(e) for key, get in fields})

        if spec.changes_only is not None:
            key_of, value_of = (attrgetter(a) for a in spec.changes_only)
            last: dict[object, object] = {}
            unseen = object()

            def on_change(e: Any) -> None:
                key, value = key_of(e), value_of(e)
                if last.get(key, unseen) == value:
                    return  # repeated report, not a change
                last[key] = value
                emit(e)

            return on_change
        if spec.level == "debug":
            debug_on = self._debug_on

            def if_debug(e: Any) -> None:
                if debug_on():
                    emit(e)

            return if_debug
        return emit


def _level_reader(level: str | ByValue) -> Callable[[Any], str]:
    if isinstance(level, ByValue):
        get, levels, default = attrgetter(level.attr), level.levels, level.default
        return lambda e: levels.get(get(e), default)
    return lambda _e: level
