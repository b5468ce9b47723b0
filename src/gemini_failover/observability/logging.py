"""Structured logging to stderr with secret redaction, and the EventBus log subscriber.

Everything goes to **stderr**: stdout carries the MCP stdio transport, and one stray
line on it corrupts the protocol. structlog loggers and stdlib loggers (uvicorn, mcp,
httpx, google_genai, ...) share one handler on the root logger whose
``ProcessorFormatter`` runs the same processors for both, so there is exactly one
place where output is rendered and therefore exactly one place where it is redacted.

Redaction happens twice: once on the event dict (values of secret-named keys, then
registered secrets and secret-shaped patterns in every string value, nested values and
formatted tracebacks included) and once more on the rendered line (registered secrets
and patterns), which also covers dict keys, JSON-escaped text and anything a renderer
stringified on its own.

Uvicorn: pass ``log_config=None`` to ``uvicorn.Config``/``uvicorn.run``; otherwise it
installs its own non-propagating stdout/stderr handlers that bypass this module.
"""

from __future__ import annotations

import functools
import io
import logging
import re
import sys
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from gemini_failover.resilience.events import (
    ActiveModelChanged,
    AttemptFinished,
    AuthFailure,
    BreakerTransition,
    ContinuationEvent,
    EventHandler,
    FailoverEvent,
    ModelSkipped,
    ModelUnavailable,
    QuotaExhausted,
    RateLimitWait,
    RequestFinished,
    RequestShed,
    RetryBudgetExhausted,
    RetryScheduled,
    SemanticFailure,
    StateBackendHealth,
)

REDACTED: Final = "[REDACTED]"

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

# --------------------------------------------------------------------------------------
# Redaction
# --------------------------------------------------------------------------------------

# The set of registered secret values is process-wide on purpose. Logging itself is
# process-wide state (one root logger, one stderr): a secret known to one component
# (the API key read by config, the bearer token of the HTTP transport, a Redis
# password) must be redacted in lines written by every other component and by
# third-party libraries that know nothing about our objects. Passing the set around
# would leave exactly the loggers we do not control unprotected. It only ever grows,
# writes take a lock, and readers use an immutable compiled snapshot.
_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()
_secret_pattern: re.Pattern[str] | None = None

#: Values shorter than this are not registered: replacing every occurrence of a
#: two-letter string would mangle all output without protecting anything real.
MIN_SECRET_LENGTH: Final = 4

_NOT_DONE = r"(?!\[REDACTED\])"  # keeps redaction idempotent (it runs twice)
_VALUE_END = _NOT_DONE + r"""[^\s"',;}\])]"""

#: (pattern, replacement) pairs applied to every string, in order.
_PATTERNS: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    # Authorization: <scheme> <credentials>  /  'authorization': 'Bearer ...'
    (
        re.compile(
            r"""(\b(?:proxy-)?authorization["']?\s*[:=]\s*["']?)(?:[A-Za-z]+\s+)?"""
            + _VALUE_END
            + "+",
            re.IGNORECASE,
        ),
        r"\1" + REDACTED,
    ),
    # Bearer <token> anywhere (8+ characters, so prose like "bearer token" survives).
    (re.compile(r"\b(bearer)\s+[A-Za-z0-9\-._~+/]{8,}=*", re.IGNORECASE), r"\1 " + REDACTED),
    # x-goog-api-key: <key>  /  "x-goog-api-key": "<key>"
    (
        re.compile(r"""(x-goog-api-key["']?\s*[:=]\s*["']?)""" + _VALUE_END + "+", re.IGNORECASE),
        r"\1" + REDACTED,
    ),
    # ?key=... &api_key=... token=... password=... in URLs and key=value text
    (
        re.compile(
            r"((?:^|[?&;,\s(])(?:api[_-]?key|key|access_token|token|password|secret)=)"
            + _NOT_DONE
            + r"""[^&\s#"',;)]+""",
            re.IGNORECASE,
        ),
        r"\1" + REDACTED,
    ),
    # scheme://user:password@host (redis://, rediss://, https://, ...)
    (
        re.compile(r"\b([a-z][a-z0-9+.\-]*://[^\s:/@]*:)" + _NOT_DONE + r"[^\s@/]+@", re.I),
        r"\1" + REDACTED + "@",
    ),
    # Google API keys and OAuth access tokens, wherever they appear.
    (re.compile(r"AIza[0-9A-Za-z_\-]{35}[0-9A-Za-z_\-]*"), REDACTED),
    (re.compile(r"\bya29\.[0-9A-Za-z_\-]{20,}"), REDACTED),
)

#: Key names whose values are always redacted (last ``_``/``-``/``.`` segment).
_SENSITIVE_KEY = re.compile(
    r"(?:^|[_\-.])(?:api[_\-]?key|apikey|key|token|access[_\-]?token|refresh[_\-]?token"
    r"|secret|password|passwd|pwd|authorization|auth[_\-]?header|credentials?|cookie"
    r"|set[_\-]cookie|bearer)$",
    re.IGNORECASE,
)

_MAX_DEPTH: Final = 8
#: Event-dict keys the redactor must leave as they are (structlog internals).
_PASSTHROUGH_KEYS: Final = frozenset({"exc_info", "_record", "_from_structlog"})


def register_secret(value: str) -> bool:
    """Redact *value* (and its URL-encoded form) wherever it appears in any log line.

    Returns False when the value is too short to redact meaningfully (see
    :data:`MIN_SECRET_LENGTH`). Call it for the API key, the bearer token and any
    credential as soon as they are read.
    """
    global _secret_pattern
    if not isinstance(value, str) or len(value.strip()) < MIN_SECRET_LENGTH:
        return False
    variants = {value, urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)}
    with _SECRETS_LOCK:
        if variants <= _SECRETS:
            return True
        _SECRETS.update(variants)
        ordered = sorted(_SECRETS, key=len, reverse=True)  # longest first
        _secret_pattern = re.compile("|".join(re.escape(s) for s in ordered))
    return True


def redact_text(text: str) -> str:
    """*text* with registered secrets and secret-shaped substrings replaced."""
    pattern = _secret_pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    for regex, replacement in _PATTERNS:
        text = regex.sub(replacement, text)
    return text


@functools.lru_cache(maxsize=2048)
def is_sensitive_key(key: str) -> bool:
    """True for keys like api_key, x-goog-api-key, token, Authorization, redis_password."""
    return _SENSITIVE_KEY.search(key) is not None


def redact_value(value: object, _depth: int = 0) -> object:
    """A copy of *value* safe to log: strings redacted, containers walked, other
    objects replaced by their redacted ``repr`` (which is what a renderer would print)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if _depth >= _MAX_DEPTH:
        return redact_text(repr(value))
    if isinstance(value, Mapping):
        return {k: _redact_item(k, v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v, _depth + 1) for v in value]
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}")
    return redact_text(repr(value))


def _redact_item(key: object, value: object, depth: int) -> object:
    if isinstance(key, str) and is_sensitive_key(key) and value not in (None, ""):
        return REDACTED
    return redact_value(value, depth)


def redact_event_dict(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: redact every value of the event dict (see module doc)."""
    return {
        key: (value if key in _PASSTHROUGH_KEYS else _redact_item(key, value, 0))
        for key, value in event_dict.items()
    }


_Renderer = Callable[[WrappedLogger, str, EventDict], str | bytes]


class _RedactingRenderer:
    """Wraps the final renderer and redacts the rendered line once more."""

    def __init__(self, renderer: _Renderer) -> None:
        self._renderer = renderer

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> str:
        rendered = self._renderer(logger, method, event_dict)
        if isinstance(rendered, bytes):
            rendered = rendered.decode("utf-8", "replace")
        return redact_text(rendered)


def _redacting_traceback(sio: TextIO, exc_info: Any) -> None:
    """ConsoleRenderer exception formatter: a plain traceback, redacted.

    Not the rich formatter: it shows local variables (the API key among them) and wraps
    long lines, which could split a secret across lines and defeat redaction.
    """
    buffer = io.StringIO()
    structlog.dev.plain_traceback(buffer, exc_info)
    sio.write(redact_text(buffer.getvalue()))


# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------


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


def configure_logging(
    level: str = "info",
    fmt: LogFormat = "auto",
    stream: TextIO | None = None,
) -> None:
    """Send structlog and stdlib logging to stderr (or *stream*), redacted.

    *fmt* ``auto`` renders for humans when the stream is a TTY and JSON lines
    otherwise. Calling it again replaces the previous configuration (no duplicate
    handlers).
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
    # Runs for records from stdlib loggers before the shared final stage.
    foreign_pre_chain: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        timestamper,
    ]
    renderer: _Renderer
    final: list[Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if console:
        renderer = structlog.dev.ConsoleRenderer(
            colors=tty, exception_formatter=_redacting_traceback
        )
    else:
        final.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer()
    final += [redact_event_dict, _RedactingRenderer(renderer)]

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


# --------------------------------------------------------------------------------------
# EventBus subscriber
# --------------------------------------------------------------------------------------


class LoggerLike(Protocol):
    """The part of a structlog logger that :class:`EventLogger` uses."""

    def debug(self, event: str, **kw: Any) -> Any: ...
    def info(self, event: str, **kw: Any) -> Any: ...
    def warning(self, event: str, **kw: Any) -> Any: ...
    def error(self, event: str, **kw: Any) -> Any: ...


def _iso(ts: float) -> str:
    try:
        return datetime.fromtimestamp(ts, tz=UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return str(ts)


class EventLogger(EventHandler):
    """EventBus subscriber: one structured log event per state change worth reading.

    Levels: warning for failovers, breakers opening, sheds, exhausted quotas,
    unavailable models, spent retry budgets and a degraded state backend; error for
    auth failures (an operator must act); info for other breaker transitions,
    continuations, semantic failures, active-model changes and backend recovery; debug
    for per-attempt detail (attempts, retries, rate-limit waits, skips, finished
    requests), which would drown everything else at info.
    """

    def __init__(self, logger: LoggerLike | None = None) -> None:
        self._log: LoggerLike = (
            logger if logger is not None else structlog.get_logger("gemini_failover.events")
        )
        # Per-request events are logged at debug, which is off in production: ask the
        # stdlib level first (~0.1 us) instead of building an event dict for structlog
        # to drop (~6 us, twice a request). An injected logger decides for itself.
        stdlib = logging.getLogger("gemini_failover.events")
        self._debug_on: Callable[[], bool] = (
            (lambda: True) if logger is not None else (lambda: stdlib.isEnabledFor(logging.DEBUG))
        )
        self._backend_healthy: dict[str, bool] = {}
        super().__init__()

    def _on_attempt(self, e: AttemptFinished) -> None:
        if not self._debug_on():
            return
        self._log.debug(
            "attempt_finished",
            request_id=e.request_id,
            model=e.model,
            status=e.status,
            category=None if e.category is None else str(e.category),
            latency_s=round(e.latency, 4),
            operation=e.operation,
        )

    def _on_retry(self, e: RetryScheduled) -> None:
        if not self._debug_on():
            return
        self._log.debug(
            "retry_scheduled",
            request_id=e.request_id,
            model=e.model,
            category=str(e.category),
            wait_s=round(e.wait, 3),
        )

    def _on_retry_budget(self, e: RetryBudgetExhausted) -> None:
        self._log.warning("retry_budget_exhausted", request_id=e.request_id, model=e.model)

    def _on_breaker(self, e: BreakerTransition) -> None:
        log = self._log.warning if e.to_state == "open" else self._log.info
        log(
            "circuit_breaker_transition",
            model=e.model,
            from_state=e.from_state,
            to_state=e.to_state,
            reason=e.reason,
            epoch=e.epoch,
            remote=e.remote,
        )

    def _on_failover(self, e: FailoverEvent) -> None:
        self._log.warning(
            "failover",
            request_id=e.request_id,
            from_model=e.from_model,
            to_model=e.to_model,
            reason=e.reason,
        )

    def _on_skipped(self, e: ModelSkipped) -> None:
        if not self._debug_on():
            return
        self._log.debug("model_skipped", request_id=e.request_id, model=e.model, reason=e.reason)

    def _on_rate_limit_wait(self, e: RateLimitWait) -> None:
        if not self._debug_on():
            return
        self._log.debug(
            "rate_limit_wait", request_id=e.request_id, model=e.model, wait_s=round(e.seconds, 3)
        )

    def _on_shed(self, e: RequestShed) -> None:
        self._log.warning(
            "request_shed",
            request_id=e.request_id,
            model=e.model,
            reason=e.reason,
            retry_after_s=e.retry_after,
        )

    def _on_quota(self, e: QuotaExhausted) -> None:
        self._log.warning("quota_exhausted", model=e.model, until=_iso(e.until))

    def _on_unavailable(self, e: ModelUnavailable) -> None:
        self._log.warning("model_unavailable", model=e.model, until=_iso(e.until))

    def _on_semantic(self, e: SemanticFailure) -> None:
        self._log.info("semantic_failure", request_id=e.request_id, model=e.model, kind=e.kind)

    def _on_auth(self, e: AuthFailure) -> None:
        self._log.error(
            "auth_failure",
            model=e.model,
            status=e.status,
            category="auth",
            upstream_message=e.message,
            action=(
                f"Gemini rejected the credentials (HTTP {e.status}) for {e.model}: the API "
                "key needs operator attention (check GEMINI_API_KEY / GOOGLE_API_KEY, the "
                "key's API restrictions and the project's access to this model). Requests "
                "fail at once and are not failed over until it is fixed."
            ),
        )

    def _on_continuation(self, e: ContinuationEvent) -> None:
        self._log.info(
            "stream_continued",
            request_id=e.request_id,
            from_model=e.from_model,
            to_model=e.to_model,
            at_char=e.at_char,
            reason=e.reason,
            overlap_trimmed=e.overlap_trimmed,
        )

    def _on_active(self, e: ActiveModelChanged) -> None:
        self._log.info("active_model_changed", model=e.model, previous=e.previous)

    def _on_backend(self, e: StateBackendHealth) -> None:
        if self._backend_healthy.get(e.backend) == e.healthy:
            return  # repeated report, not a change
        self._backend_healthy[e.backend] = e.healthy
        log = self._log.info if e.healthy else self._log.warning
        log("state_backend_health", backend=e.backend, healthy=e.healthy, detail=e.detail)

    def _on_request_finished(self, e: RequestFinished) -> None:
        if not self._debug_on():
            return
        self._log.debug(
            "request_finished",
            request_id=e.request_id,
            operation=e.operation,
            served_by=e.served_by,
            outcome=e.outcome,
            duration_s=round(e.duration, 4),
            failovers=e.failovers,
        )
