"""The manager's failures as the Gemini API errors SDKs understand.

One table, :data:`STATUS_FOR`: a RequestFailed category -> the HTTP status the real API
would use for that situation. Waiting helps (rate limit, shedding, every model out for
a while): RetryInfo and Retry-After say how long. An upstream credential problem is the
gateway's, not the client's: 502 with a fixed message (never the upstream key or its
echo).
"""

from __future__ import annotations

import re
from typing import Any

from gemini_failover.emulator.wire import (
    ErrorReply,
    blocked_candidate,
    error_body,
    generate_content_response,
    retry_after_header,
    retry_info,
)
from gemini_failover.resilience.errors import Category
from gemini_failover.resilience.results import RequestFailed

__all__ = ["STATUS_FOR", "blocked_response", "failure_reply"]

#: RequestFailed.category -> HTTP status: one row per Category (a test checks).
STATUS_FOR: dict[Category, int] = {
    Category.RATE_LIMITED: 429,  # the model asked us to wait; the deadline cannot cover it
    Category.OVERLOADED: 429,  # shed: too many requests queued for a model
    Category.QUOTA_EXHAUSTED: 429,
    Category.NO_CAPABLE_MODEL: 400,  # no model in the chain fits the request
    Category.TOO_LONG: 400,  # the input is over the model's token limit
    Category.BAD_REQUEST: 400,  # upstream rejected the request itself
    Category.AUTH: 502,  # upstream rejected the gateway's credentials
    Category.TIMEOUT: 504,  # the request's deadline passed
    Category.UNAVAILABLE: 503,  # every model failed or is out (breaker, cool-down)
    Category.STREAM_BROKEN: 503,  # continuation policy "fail"
    Category.TRANSIENT: 503,
    Category.MODEL_UNAVAILABLE: 503,
    Category.SEMANTIC: 502,  # upstream answers were empty or broke the schema
    Category.BLOCKED: 200,  # a refusal is an answer (blocked_response), not an error
    Category.CANCELLED: 499,
    Category.BUG: 500,
}

_AUTH_MESSAGE = (
    "The gateway's upstream Gemini credentials were rejected ({model}). This is a "
    "configuration problem of the gateway, not of your request; its operator has been "
    "alerted."
)
_MODEL_IN_AUTH = re.compile(r"\) for (\S+): ")  # a model key may hold a colon
_BLOCK_REASON = re.compile(r"\(([A-Z_]+)\)\s*$")


def failure_reply(exc: RequestFailed) -> ErrorReply:
    """The error answer for a failed request."""
    code = STATUS_FOR.get(exc.category, 500)
    if exc.category is Category.AUTH:
        found = _MODEL_IN_AUTH.search(exc.message)
        model = found.group(1) if found else "upstream"
        body = error_body(502, _AUTH_MESSAGE.format(model=model), status="UNAVAILABLE")
        return ErrorReply(502, body)
    details = []
    headers: tuple[tuple[str, str], ...] = ()
    if exc.retry_after is not None and code in (429, 503):
        details.append(retry_info(exc.retry_after))
        headers = (("retry-after", retry_after_header(exc.retry_after)),)
    return ErrorReply(code, error_body(code, exc.message, details=details), headers)


def blocked_response(exc: RequestFailed, *, model_version: str, response_id: str) -> dict[str, Any]:
    """A refusal (finishReason SAFETY and friends) is not an HTTP error in the Gemini
    API: a 200 answer whose candidate has the finish reason and no content."""
    found = _BLOCK_REASON.search(exc.message)
    reason = found.group(1) if found else "SAFETY"
    return generate_content_response(
        model_version=model_version, response_id=response_id, candidates=[blocked_candidate(reason)]
    )
