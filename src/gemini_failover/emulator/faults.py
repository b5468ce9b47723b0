"""Runtime state of configured faults and what each one decides for a request."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

from . import errors
from .spec import (
    AuthFault,
    BlockedFault,
    EmptyFault,
    Fault,
    FlapFault,
    HangFault,
    LatencyFault,
    MalformedFault,
    OverlapFault,
    RateLimitFault,
    SchemaViolationFault,
    StatusFault,
    StreamCutFault,
    StreamErrorFault,
    StreamTruncateFault,
)

__all__ = [
    "ActiveFault",
    "Delay",
    "ErrorReply",
    "Hang",
    "RequestFacts",
    "Reshape",
    "StreamFailure",
]

_ANSWER_ACTIONS = frozenset({"generate", "stream"})


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What fault evaluation needs to know about a request."""

    model: str
    action: str
    continuation: bool = False
    structured: bool = False


@dataclass(frozen=True, slots=True)
class Delay:
    """Wait, then keep evaluating later faults."""

    seconds: float
    per_chunk_seconds: float


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """Answer with an HTTP error."""

    code: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Hang:
    """Never answer (streams: after this many chunks, when set)."""

    after: int | None


@dataclass(frozen=True, slots=True)
class StreamFailure:
    """Send `after` chunks without a finishReason, then cut / end / send an error event."""

    mode: str  # "cut" | "truncate" | "error"
    after: int
    error: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Reshape:
    """Answer 200 with a changed body: malformed, empty, blocked, overlap, schema_violation."""

    kind: str
    variant: str | None = None
    words: int = 0
    reason: str | None = None


Decision = ErrorReply | Hang | StreamFailure | Reshape


def _fault_error(code: int, message: str | None, status: str | None = None) -> ErrorReply:
    return ErrorReply(code, errors.error_body(code, message, status=status))


def _seconds_to_utc_midnight(now_wall: float) -> float:
    now = dt.datetime.fromtimestamp(now_wall, dt.UTC)
    midnight = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1.0, math.ceil((midnight - now).total_seconds()))


def _quota_value(rpm: float) -> str:
    return str(int(rpm)) if float(rpm).is_integer() else str(rpm)


@dataclass(slots=True)
class ActiveFault:
    """A configured fault with its live state (remaining count, token bucket, flap phase)."""

    spec: Fault
    remaining: int | None = None
    tokens: float = 0.0
    refilled_at: float = 0.0
    day: dt.date | None = None
    seen: int = 0
    _started: bool = field(default=False, repr=False)

    @classmethod
    def of(cls, spec: Fault) -> ActiveFault:
        return cls(spec=spec, remaining=spec.count)

    @property
    def kind(self) -> str:
        return self.spec.kind

    def applies(self, facts: RequestFacts) -> bool:
        """Whether this fault is considered for the request at all (and so uses a count)."""
        spec = self.spec
        if spec.actions is not None and facts.action not in spec.actions:
            return False
        kind = spec.kind
        if kind in ("stream_cut", "stream_truncate", "stream_error"):
            return facts.action == "stream"
        if kind in ("empty", "blocked"):
            return facts.action in _ANSWER_ACTIONS
        if kind == "overlap":
            return facts.action in _ANSWER_ACTIONS and facts.continuation
        if kind == "schema_violation":
            return facts.action in _ANSWER_ACTIONS and facts.structured
        return True

    def to_dict(self) -> dict[str, Any]:
        data = self.spec.model_dump(exclude_none=True)
        if self.remaining is not None:
            data["count"] = self.remaining
        return data

    def evaluate(self, facts: RequestFacts, now: float, now_wall: float) -> Decision | Delay | None:
        """What the fault does to this request; None when it does not fire."""
        spec = self.spec
        if isinstance(spec, LatencyFault):
            return Delay(spec.ms / 1000.0, spec.per_chunk_ms / 1000.0)
        if isinstance(spec, StatusFault):
            return self._status(spec, facts, now_wall)
        if isinstance(spec, RateLimitFault):
            return self._rate_limit(spec, facts, now, now_wall)
        if isinstance(spec, FlapFault):
            self.seen += 1
            if self.seen % 2 == 1:
                return None
            return _fault_error(spec.code, spec.message)
        if isinstance(spec, AuthFault):
            return _auth_error(spec.code, spec.message)
        if isinstance(spec, HangFault):
            return Hang(spec.after)
        if isinstance(spec, StreamCutFault):
            return StreamFailure("cut", spec.after)
        if isinstance(spec, StreamTruncateFault):
            return StreamFailure("truncate", spec.after)
        if isinstance(spec, StreamErrorFault):
            return StreamFailure("error", spec.after, errors.error_body(spec.code, spec.message))
        if isinstance(spec, MalformedFault):
            return Reshape("malformed")
        if isinstance(spec, EmptyFault):
            return Reshape("empty", variant=spec.variant)
        if isinstance(spec, BlockedFault):
            return Reshape(
                "blocked", variant="prompt" if spec.prompt else "candidate", reason=spec.reason
            )
        if isinstance(spec, OverlapFault):
            return Reshape("overlap", words=spec.words)
        if isinstance(spec, SchemaViolationFault):
            return Reshape("schema_violation")
        raise AssertionError(f"unhandled fault kind {spec.kind!r}")  # pragma: no cover

    @staticmethod
    def _status(spec: StatusFault, facts: RequestFacts, now_wall: float) -> ErrorReply:
        details: list[dict[str, Any]] = []
        headers: list[tuple[str, str]] = []
        if spec.quota is not None:
            details.append(errors.quota_failure(facts.model, spec.quota, "0"))
            details.append(errors.quota_help())
        if spec.retry_after is not None:
            details.append(errors.retry_info(spec.retry_after))
            headers.append(("retry-after", errors.retry_after_header(spec.retry_after)))
        if spec.details:
            details.extend(spec.details)
        body = errors.error_body(spec.code, spec.message, status=spec.status, details=details)
        return ErrorReply(spec.code, body, tuple(headers))

    def _rate_limit(
        self, spec: RateLimitFault, facts: RequestFacts, now: float, now_wall: float
    ) -> ErrorReply | None:
        capacity = max(1.0, spec.rpm) if spec.rpm > 0 else 0.0
        if spec.quota == "minute":
            rate = spec.rpm / 60.0
            if not self._started:
                self._started, self.tokens, self.refilled_at = True, capacity, now
            self.tokens = min(capacity, self.tokens + (now - self.refilled_at) * rate)
            self.refilled_at = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return None
            wait = (1.0 - self.tokens) / rate if rate > 0 else 60.0
        else:
            today = dt.datetime.fromtimestamp(now_wall, dt.UTC).date()
            if self.day != today:
                self.day, self.tokens = today, capacity
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return None
            wait = _seconds_to_utc_midnight(now_wall)
        if spec.retry_after is not None:
            wait = spec.retry_after
        details = [
            errors.quota_failure(
                facts.model,
                spec.quota,
                _quota_value(spec.rpm),
                quota_id=spec.quota_id,
                quota_metric=spec.quota_metric,
            ),
            errors.quota_help(),
            errors.retry_info(wait),
        ]
        headers: tuple[tuple[str, str], ...] = ()
        if spec.quota == "minute":
            headers = (("retry-after", errors.retry_after_header(wait)),)
        return ErrorReply(429, errors.error_body(429, details=details), headers)


def _auth_error(code: int, message: str | None) -> ErrorReply:
    if code == 400:
        reason, default = "API_KEY_INVALID", "API key not valid. Please pass a valid API key."
    elif code == 403:
        reason, default = "API_KEY_SERVICE_BLOCKED", "The caller does not have permission"
    else:
        reason, default = "CREDENTIALS_MISSING", errors.DEFAULT_MESSAGES[401]
    body = errors.error_body(code, message or default, details=[errors.error_info(reason)])
    return ErrorReply(code, body)


def missing_key_error() -> ErrorReply:
    """The 401 for a request without an API key."""
    return _auth_error(401, None)
