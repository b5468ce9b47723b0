"""Failure classification: DESIGN.md's error table as code.

The backend (``gemini/``) normalises every SDK, transport and decoding error into a
``google.api_core.exceptions`` class and attaches an :class:`Upstream` record (metrics
label, retry-after, quota scope). ``classify`` maps such an exception to a
:class:`Category`, and each category carries the action it implies as data
(:data:`POLICY`), so the manager reads the table instead of re-deriving it.

Nothing here imports google.genai: this module is pure policy.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass
from typing import Literal

from google.api_core import exceptions as gexc

QuotaScope = Literal["minute", "day"]


class Category(enum.StrEnum):
    TRANSIENT = "transient"
    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXHAUSTED = "quota_exhausted"
    AUTH = "auth"
    BAD_REQUEST = "bad_request"
    MODEL_UNAVAILABLE = "model_unavailable"
    BLOCKED = "blocked"
    SEMANTIC = "semantic"
    CANCELLED = "cancelled"
    BUG = "bug"


@dataclass(frozen=True, slots=True)
class Action:
    """What a category implies. Read by the manager; documented in the README."""

    retry_same_model: bool  # retry on the same model (with backoff / after retry-after)
    fail_over: bool  # once same-model retries are spent, try the next model
    counts_against_breaker: bool  # a failure for the model's circuit breaker
    alert_operator: bool = False  # metric + error log: a human must act


POLICY: dict[Category, Action] = {
    Category.TRANSIENT: Action(retry_same_model=True, fail_over=True, counts_against_breaker=True),
    Category.TIMEOUT: Action(retry_same_model=True, fail_over=True, counts_against_breaker=True),
    # Rate limits: wait on the same model, never stampede the fallback, never trip.
    Category.RATE_LIMITED: Action(
        retry_same_model=True, fail_over=False, counts_against_breaker=False
    ),
    Category.QUOTA_EXHAUSTED: Action(
        retry_same_model=False, fail_over=True, counts_against_breaker=False
    ),
    Category.AUTH: Action(
        retry_same_model=False, fail_over=False, counts_against_breaker=False, alert_operator=True
    ),
    Category.BAD_REQUEST: Action(
        retry_same_model=False, fail_over=False, counts_against_breaker=False
    ),
    Category.MODEL_UNAVAILABLE: Action(
        retry_same_model=False, fail_over=True, counts_against_breaker=False
    ),
    Category.BLOCKED: Action(retry_same_model=False, fail_over=False, counts_against_breaker=False),
    # Semantic failures are retried once on the same model (the manager caps it).
    Category.SEMANTIC: Action(retry_same_model=True, fail_over=True, counts_against_breaker=True),
    Category.CANCELLED: Action(
        retry_same_model=False, fail_over=False, counts_against_breaker=False
    ),
    Category.BUG: Action(retry_same_model=False, fail_over=False, counts_against_breaker=False),
}


@dataclass(frozen=True, slots=True)
class Upstream:
    """What the backend learned about a failed call, attached to the exception."""

    #: metrics label: the HTTP code ("503"), or "timeout", "network", "malformed",
    #: "truncated", "empty", "blocked", "schema".
    status: str
    retry_after: float | None = None
    quota_scope: QuotaScope | None = None
    #: google.rpc.ErrorInfo.reason, e.g. "API_KEY_INVALID"
    reason: str | None = None


_ATTR = "_gemini_failover_upstream"

#: ErrorInfo reasons that mean "the credentials are wrong", whatever the status code:
#: Gemini answers a bad API key with 400 INVALID_ARGUMENT, reason API_KEY_INVALID.
AUTH_REASONS = frozenset(
    {
        "API_KEY_INVALID",
        "API_KEY_SERVICE_BLOCKED",
        "API_KEY_HTTP_REFERRER_BLOCKED",
        "CREDENTIALS_MISSING",
        "ACCESS_TOKEN_EXPIRED",
        "SERVICE_DISABLED",
    }
)


def attach(exc: BaseException, upstream: Upstream) -> None:
    setattr(exc, _ATTR, upstream)


def upstream_of(exc: BaseException) -> Upstream | None:
    found = getattr(exc, _ATTR, None)
    return found if isinstance(found, Upstream) else None


class ResponseError(Exception):
    """A 200 response that is not an answer. Raised by the backend or the manager's
    validation; classified like upstream failures."""

    status = "semantic"


class EmptyResponse(ResponseError):
    status = "empty"


class SchemaViolation(ResponseError):
    status = "schema"


class ResponseBlocked(ResponseError):
    """finishReason SAFETY (or another block), or a blocked prompt."""

    status = "blocked"

    def __init__(self, reason: str) -> None:
        super().__init__(f"the response was blocked by Gemini's safety filters ({reason})")
        self.reason = reason


#: What the manager catches around one attempt. Anything else is a bug and propagates.
UPSTREAM_ERRORS: tuple[type[BaseException], ...] = (gexc.GoogleAPICallError, ResponseError)


@dataclass(frozen=True, slots=True)
class Classification:
    category: Category
    status: str  # metrics label, see Upstream.status
    message: str
    retry_after: float | None = None

    @property
    def action(self) -> Action:
        return POLICY[self.category]


def classify(exc: BaseException) -> Classification:
    """Map an exception to its category. Never raises."""
    if isinstance(exc, asyncio.CancelledError):
        return Classification(Category.CANCELLED, "cancelled", "cancelled by the client")
    if isinstance(exc, ResponseBlocked):
        return Classification(Category.BLOCKED, exc.status, str(exc))
    if isinstance(exc, ResponseError):
        return Classification(Category.SEMANTIC, exc.status, str(exc))
    if not isinstance(exc, gexc.GoogleAPICallError):
        return Classification(Category.BUG, "bug", f"{type(exc).__name__}: {exc}")

    up = upstream_of(exc) or Upstream(status=str(exc.code or "unknown"))
    message = exc.message or type(exc).__name__
    code = exc.code
    category: Category
    if up.status == "timeout" or isinstance(exc, gexc.GatewayTimeout | gexc.DeadlineExceeded):
        category = Category.TIMEOUT
    elif isinstance(exc, gexc.TooManyRequests | gexc.ResourceExhausted) or code == 429:
        day = up.quota_scope == "day"
        category = Category.QUOTA_EXHAUSTED if day else Category.RATE_LIMITED
    elif code in (401, 403) or up.reason in AUTH_REASONS:
        category = Category.AUTH
    elif code == 404:
        category = Category.MODEL_UNAVAILABLE
    elif code == 408:
        category = Category.TIMEOUT
    elif isinstance(code, int) and 400 <= code < 500:
        category = Category.BAD_REQUEST
    else:
        # 5xx, connection trouble, malformed bodies, broken streams.
        category = Category.TRANSIENT
    return Classification(category, up.status, message, up.retry_after)
