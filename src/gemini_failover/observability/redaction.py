"""Secret redaction for log output: the registry of secret values and the structlog
processors that apply it.

Redaction happens twice: once on the event dict (values of secret-named keys, then
registered secrets and secret-shaped patterns in every string value, nested values and
formatted tracebacks included) and once more on the rendered line (registered secrets
and patterns), which also covers dict keys, JSON-escaped text and anything a renderer
stringified on its own. :mod:`gemini_failover.observability.log_config` installs both.
"""

from __future__ import annotations

import functools
import io
import re
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, Final, TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger

REDACTED: Final = "[REDACTED]"

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


Renderer = Callable[[WrappedLogger, str, EventDict], str | bytes]


class RedactingRenderer:
    """Wraps the final renderer and redacts the rendered line once more."""

    def __init__(self, renderer: Renderer) -> None:
        self._renderer = renderer

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> str:
        rendered = self._renderer(logger, method, event_dict)
        if isinstance(rendered, bytes):
            rendered = rendered.decode("utf-8", "replace")
        return redact_text(rendered)


def redacting_traceback(sio: TextIO, exc_info: Any) -> None:
    """ConsoleRenderer exception formatter: a plain traceback, redacted.

    Not the rich formatter: it shows local variables (the API key among them) and wraps
    long lines, which could split a secret across lines and defeat redaction.
    """
    buffer = io.StringIO()
    structlog.dev.plain_traceback(buffer, exc_info)
    sio.write(redact_text(buffer.getvalue()))
