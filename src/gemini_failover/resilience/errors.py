"""Failure classification: the README's error table as code.

The backend (``gemini/``) normalises every SDK, transport and decoding error into a
``google.api_core.exceptions`` class and attaches an :class:`Upstream` record (metrics
label, retry-after, quota scope). ``classify`` maps such an exception to a
:class:`Category`, and each category carries the action it implies as data
(:data:`POLICY`): the engine reads the table instead of re-deriving it, so a new
category is one enum member and one row. The attempt bracket classifies each failure
once, at the boundary with the backend, into an :class:`UpstreamFailure`.

Nothing here imports google.genai: this module is pure policy.
"""

from __future__ import annotations

import asyncio
import enum
import re
from dataclasses import dataclass, replace
from typing import Literal

from google.api_core import exceptions as gexc

from gemini_failover.state import CooldownKind

QuotaScope = Literal["minute", "day"]


class Category(enum.StrEnum):
    """Every kind of failure: what ``classify`` makes of an upstream error, and what
    a :class:`RequestFailed` says ended the request. One row each in :data:`POLICY`."""

    # -- upstream failures (``classify``) --
    TRANSIENT = "transient"
    TIMEOUT = "timeout"  # also: the request's own deadline passed
    RATE_LIMITED = "rate_limited"  # also: shed while the model asks us to back off
    QUOTA_EXHAUSTED = "quota_exhausted"
    AUTH = "auth"
    BAD_REQUEST = "bad_request"  # also: an invalid JSON Schema in the request
    TOO_LONG = "too_long"  # a 400: the input exceeds the model's token limit (a misfit)
    MODEL_UNAVAILABLE = "model_unavailable"
    BLOCKED = "blocked"
    SEMANTIC = "semantic"
    CANCELLED = "cancelled"
    BUG = "bug"
    # -- request outcomes only (never an upstream classification) --
    UNAVAILABLE = "unavailable"  # every model in the chain is out
    OVERLOADED = "overloaded"  # too many requests already waiting for the model
    NO_CAPABLE_MODEL = "no_capable_model"  # no model in the chain fits the request
    STREAM_BROKEN = "stream_broken"  # a stream broke and the policy says not to continue


class Then(enum.Enum):
    """What ends a model's turn once same-model retries are spent (or pointless)."""

    FAIL_OVER = "fail_over"  # try the next model in the chain
    WAIT = "wait"  # end the request with a retry-after: never stampede the fallback
    FAIL = "fail"  # end the request now: another model would fail the same way
    #: the fault is the endpoint's (its credentials): try the next pair on another
    #: endpoint; with none left in the chain, end the request now (FAIL)
    FAIL_OVER_ENDPOINT = "fail_over_endpoint"


@dataclass(frozen=True, slots=True)
class Cooldown:
    """Stop calling the model for a while after this failure: for the failure's
    Retry-After if ``use_retry_after`` and it has one, else ``seconds`` (None: the
    configured ``rate_limit.default_retry_after``)."""

    kind: CooldownKind
    seconds: float | None = None
    use_retry_after: bool = True
    #: a per-day quota: without a Retry-After, until the next midnight Pacific time,
    #: re-probed every ``rate_limit.day_quota_reprobe`` s (quota_window.py)
    daily: bool = False
    #: every pair on the model's endpoint, for ``endpoint_auth_cooldown`` s (only when
    #: the chains span more than one endpoint: with one, nothing could take over)
    endpoint: bool = False


@dataclass(frozen=True, slots=True)
class Action:
    """What a category implies: the manager reads this table and branches on nothing
    else. Documented in the README's error table."""

    retry_same_model: bool  # retry on the same model (with backoff / after retry-after)
    then: Then  # once same-model retries are spent
    counts_against_breaker: bool  # a failure for the model's circuit breaker
    alert_operator: bool = False  # AuthFailure event (metric + error log): a human must act
    cooldown: Cooldown | None = None  # stop calling the model for a while
    #: an answer that is not one: counted per request and model, capped by
    #: ``retry.semantic_retries`` instead of ``max_attempts_per_model``, reported
    semantic: bool = False
    #: the message of the RequestFailed when the request ends on it (``then`` FAIL);
    #: fields: model, status, message, detail (the message without its final stop)
    message: str = "{model} rejected the request: {message}"

    @property
    def fail_over(self) -> bool:
        return self.then is Then.FAIL_OVER


_FAIL = Action(retry_same_model=False, then=Then.FAIL, counts_against_breaker=False)

POLICY: dict[Category, Action] = {
    Category.TRANSIENT: Action(True, Then.FAIL_OVER, counts_against_breaker=True),
    Category.TIMEOUT: Action(True, Then.FAIL_OVER, counts_against_breaker=True),
    # Rate limits: wait on the same model, never stampede the fallback, never trip.
    Category.RATE_LIMITED: Action(
        True, Then.WAIT, counts_against_breaker=False, cooldown=Cooldown(CooldownKind.RATE_LIMITED)
    ),
    Category.QUOTA_EXHAUSTED: Action(
        False,
        Then.FAIL_OVER,
        counts_against_breaker=False,
        cooldown=Cooldown(CooldownKind.QUOTA_EXHAUSTED, daily=True),
    ),
    # An endpoint fault: that endpoint is left out (every pair on it), the request
    # moves on to another endpoint; with no other endpoint it ends at once.
    Category.AUTH: Action(
        False,
        Then.FAIL_OVER_ENDPOINT,
        counts_against_breaker=False,
        alert_operator=True,
        cooldown=Cooldown(CooldownKind.AUTH, use_retry_after=False, endpoint=True),
        message="Gemini rejected the credentials ({status}) for {model}: {detail}. "
        "Check the endpoint's key or credentials (GEMINI_API_KEY, or its entry in "
        "GEMINI_FAILOVER_ENDPOINTS); the operator has been alerted.",
    ),
    Category.BAD_REQUEST: _FAIL,
    # A capability misfit, not a bad request: the next model that fits may serve it
    # (the chain records the limit on the model's profile for later requests).
    Category.TOO_LONG: Action(False, Then.FAIL_OVER, counts_against_breaker=False),
    # A 404: skip the model for a while (its Retry-After, if any, says nothing of that).
    Category.MODEL_UNAVAILABLE: Action(
        False,
        Then.FAIL_OVER,
        counts_against_breaker=False,
        cooldown=Cooldown(CooldownKind.UNAVAILABLE, 300.0, use_retry_after=False),
    ),
    Category.BLOCKED: replace(_FAIL, message="{message}"),
    # Semantic failures are retried on the same model ``semantic_retries`` times.
    Category.SEMANTIC: Action(True, Then.FAIL_OVER, counts_against_breaker=True, semantic=True),
    Category.CANCELLED: _FAIL,
    Category.BUG: _FAIL,
    # Request outcomes: never the classification of an upstream error.
    Category.UNAVAILABLE: _FAIL,
    Category.OVERLOADED: _FAIL,
    Category.NO_CAPABLE_MODEL: _FAIL,
    Category.STREAM_BROKEN: _FAIL,
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
    #: TOO_LONG: the model's input token limit, as its 400 stated it
    token_limit: int | None = None

    @property
    def action(self) -> Action:
        return POLICY[self.category]


#: Gemini's 400 for a prompt over the input token limit: "The input token count (N)
#: exceeds the maximum number of tokens allowed (LIMIT)."
_TOO_LONG = re.compile(
    r"input token count.*?exceeds the maximum number of tokens allowed \((\d+)\)",
    re.IGNORECASE | re.DOTALL,
)


class UpstreamFailure(Exception):
    """An upstream failure classified once, where the engine meets the backend (the
    attempt bracket); the original exception is its ``__cause__``. Everything past
    that point reads ``classification`` instead of classifying again."""

    def __init__(self, classification: Classification) -> None:
        super().__init__(classification.message)
        self.classification = classification

    @property
    def action(self) -> Action:
        return POLICY[self.classification.category]


def classify(exc: BaseException) -> Classification:
    """Map an exception to its category. Never raises."""
    if isinstance(exc, UpstreamFailure):
        return exc.classification
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
    elif code == 400 and (too_long := _TOO_LONG.search(message)):
        limit = int(too_long.group(1))
        return Classification(Category.TOO_LONG, up.status, message, token_limit=limit)
    elif isinstance(code, int) and 400 <= code < 500:
        category = Category.BAD_REQUEST
    else:
        # 5xx, connection trouble, malformed bodies, broken streams.
        category = Category.TRANSIENT
    return Classification(category, up.status, message, up.retry_after)
