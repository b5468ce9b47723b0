"""Structured logging to stderr: structlog and stdlib logging configured as one.

Everything goes to **stderr**: stdout carries the MCP stdio transport, and one stray
line on it corrupts the protocol. structlog loggers and stdlib loggers (uvicorn, mcp,
httpx, google_genai, ...) share one handler on the root logger whose
``ProcessorFormatter`` runs the same processors for both, so there is exactly one
place where output is rendered and therefore exactly one place where it is redacted
(see :mod:`gemini_failover.observability.redaction`).

Uvicorn: pass ``log_config=None`` to ``uvicorn.Config``/``uvicorn.run``; otherwise it
installs its own non-propagating stdout/stderr handlers that bypass this module.
"""

from __future__ import annotations

import logging
import sys
from typing import Final, Literal, TextIO

import structlog
from structlog.typing import Processor

from gemini_failover.observability.redaction import (
    RedactingRenderer,
    Renderer,
    redact_event_dict,
    redacting_traceback,
)
from gemini_failover.tracing_switch import tracing_configured

LogFormat = Literal["auto", "json", "console"]

_LEVELS: Final[dict[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

#: Third-party loggers that are chatty at INFO (httpx logs every request URL, mcp
#: every JSON-RPC message): kept at WARNING unless the configured level is higher.
SDK_LOGGERS: Final = (
    "google_genai",
    "google",
    "httpx",
    "httpx2",
    "httpcore",
    "aiohttp",
    "urllib3",
    "mcp",
    "sse_starlette",
    "redis",
)


class _GeminiFailoverHandler(logging.StreamHandler[TextIO]):
    """Marker class, so that reconfiguring replaces our handler instead of adding one."""


def parse_level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    try:
        return _LEVELS[level.strip().lower()]
    except KeyError:
        raise ValueError(
            f"unknown log level {level!r}; use one of debug, info, warning, error, critical"
        ) from None


def _is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (ValueError, OSError):  # closed stream
        return False


def trace_ids_processor() -> Processor:
    """A processor adding ``trace_id`` and ``span_id`` (hex, as in every tracing
    backend) to a line logged while an OpenTelemetry span is current. Imports the
    OpenTelemetry API: used only when tracing is configured."""
    from opentelemetry import trace

    get_current_span = trace.get_current_span

    def add_trace_ids(
        logger: object, method: str, event_dict: structlog.typing.EventDict
    ) -> structlog.typing.EventDict:
        context = get_current_span().get_span_context()
        if context.is_valid:
            event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
            event_dict.setdefault("span_id", format(context.span_id, "016x"))
        return event_dict

    return add_trace_ids


def configure_logging(
    level: str = "info",
    fmt: LogFormat = "auto",
    stream: TextIO | None = None,
    *,
    trace_ids: bool | None = None,
) -> None:
    """Send structlog and stdlib logging to stderr (or *stream*), redacted.

    *fmt* ``auto`` renders for humans when the stream is a TTY and JSON lines
    otherwise. *trace_ids* (default: when OpenTelemetry tracing is configured) adds
    the current span's trace and span ids to every line. Calling it again replaces the
    previous configuration (no duplicate handlers).
    """
    numeric_level = parse_level(level)
    if fmt not in ("auto", "json", "console"):
        raise ValueError(f"unknown log format {fmt!r}; use auto, json or console")
    out: TextIO = stream if stream is not None else sys.stderr
    if out is sys.stdout or out is sys.__stdout__:
        raise ValueError("logs must not go to stdout: it carries the MCP stdio transport")
    tty = _is_tty(out)
    console = fmt == "console" or (fmt == "auto" and tty)

    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    if trace_ids is None:
        trace_ids = tracing_configured()
    # Nothing at all when tracing is off: not even a function call per line.
    correlate: list[Processor] = [trace_ids_processor()] if trace_ids else []
    # Runs for records from stdlib loggers before the shared final stage.
    foreign_pre_chain: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        *correlate,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        timestamper,
    ]
    renderer: Renderer
    final: list[Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if console:
        renderer = structlog.dev.ConsoleRenderer(
            colors=tty, exception_formatter=redacting_traceback
        )
    else:
        final.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer()
    final += [redact_event_dict, RedactingRenderer(renderer)]

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=foreign_pre_chain,
        processors=final,
    )
    handler = _GeminiFailoverHandler(out)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _GeminiFailoverHandler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(numeric_level)
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, numeric_level))

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            *correlate,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            timestamper,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: reconfiguring (tests, the CLI after reading settings) must reach
        # loggers that were already used; the level filter reads the stdlib level live.
        cache_logger_on_first_use=False,
    )
