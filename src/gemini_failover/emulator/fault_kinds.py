"""The fault table: one handler per fault kind, registered under its kind.

A handler is a class decorated with ``@handles("kind")``; it is built from the fault's
validated settings (its ``spec``, from :mod:`.spec`), keeps whatever live state the kind
needs (a token bucket, a flap phase), says which requests it is considered for
(``applies``) and, in ``fire``, what it does to one of them: None (it does not fire),
a :class:`~.decisions.Delay`, or a decision from :mod:`.decisions`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from .decisions import (
    Blocked,
    CutStream,
    Decision,
    Delay,
    Empty,
    Hang,
    Malformed,
    Overlap,
    SchemaViolation,
    StreamErrorEvent,
    TruncateStream,
)
from .quota import DayBucket, MinuteBucket
from .spec import (
    AuthFault,
    BlockedFault,
    EmptyFault,
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
from .wire import errors, vertex
from .wire.errors import ErrorReply

__all__ = [
    "HANDLERS",
    "FaultHandler",
    "Fired",
    "RequestFacts",
    "answers",
    "continuations",
    "handles",
    "streams",
    "structured",
]


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What fault evaluation needs to know about a request."""

    model: str
    action: str
    continuation: bool = False
    structured: bool = False
    endpoint: str = "gemini_api"
    endpoint_kind: str = "gemini_api"


Fired = Decision | Delay | None


def streams(facts: RequestFacts) -> bool:
    return facts.action == "stream"


def answers(facts: RequestFacts) -> bool:
    """Requests answered with generated content (generate, stream)."""
    return facts.action in ("generate", "stream")


def continuations(facts: RequestFacts) -> bool:
    return answers(facts) and facts.continuation


def structured(facts: RequestFacts) -> bool:
    return answers(facts) and facts.structured


SpecT = TypeVar("SpecT", bound=BaseModel)


class FaultHandler(Generic[SpecT]):
    """Base of the handlers: ``spec`` is the fault's settings."""

    def __init__(self, spec: SpecT) -> None:
        self.spec = spec

    def applies(self, facts: RequestFacts) -> bool:
        """Whether the fault is considered for this request at all (and so uses a
        ``count``), by the request's shape (the ``actions`` setting is checked apart)."""
        return True

    def fire(self, facts: RequestFacts, now: float, now_wall: float) -> Fired:
        """What the fault does to this request (``now``: monotonic, ``now_wall``: epoch
        seconds, both from the emulator's clock); None when it does not fire."""
        raise NotImplementedError


#: kind -> handler class. Every kind in :data:`~.spec.Fault` has one (a test checks).
HANDLERS: dict[str, type[FaultHandler[Any]]] = {}

H = TypeVar("H", bound=type[FaultHandler[Any]])


def handles(kind: str) -> Callable[[H], H]:
    """Register a handler class for a fault kind."""

    def register(cls: H) -> H:
        if kind in HANDLERS:
            raise ValueError(f"fault kind {kind!r} has a handler already")
        HANDLERS[kind] = cls
        return cls

    return register


# ---------------------------------------------------------------------- errors


@handles("status")
class Status(FaultHandler[StatusFault]):
    def fire(self, facts: RequestFacts, now: float, now_wall: float) -> Fired:
        spec = self.spec
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


@handles("rate_limit")
class RateLimit(FaultHandler[RateLimitFault]):
    """429 once the bucket is empty; per-day buckets refill at midnight Pacific time."""

    def __init__(self, spec: RateLimitFault) -> None:
        super().__init__(spec)
        self.minute = MinuteBucket(spec.rpm) if spec.quota == "minute" else None
        self.day = DayBucket(spec.rpm) if spec.quota == "day" else None

    def fire(self, facts: RequestFacts, now: float, now_wall: float) -> Fired:
        spec = self.spec
        if self.minute is not None:
            wait = self.minute.take(now)
        else:
            assert self.day is not None
            wait = self.day.take(now_wall)
        if wait is None:
            return None
        if spec.retry_after is not None:
            wait = spec.retry_after
        if facts.endpoint_kind == "vertex":
            return vertex.resource_exhausted()  # Vertex AI's 429 has no quota details
        return errors.rate_limited(
            facts.model,
            spec.quota,
            _quota_value(spec.rpm),
            wait,
            quota_id=spec.quota_id,
            quota_metric=spec.quota_metric,
            header=spec.quota == "minute",  # Gemini sends no Retry-After for per-day quotas
        )


def _quota_value(rpm: float) -> str:
    return str(int(rpm)) if float(rpm).is_integer() else str(rpm)


@handles("flap")
class Flap(FaultHandler[FlapFault]):
    """Success, error, success, ... per request it is considered for."""

    def __init__(self, spec: FlapFault) -> None:
        super().__init__(spec)
        self.seen = 0

    def fire(self, facts: RequestFacts, now: float, now_wall: float) -> Fired:
        self.seen += 1
        if self.seen % 2 == 1:
            return None
        return ErrorReply(self.spec.code, errors.error_body(self.spec.code, self.spec.message))


@handles("auth")
class Auth(FaultHandler[AuthFault]):
    def fire(self, facts: RequestFacts, now: float, now_wall: float) -> Fired:
        return errors.auth_error(self.spec.code, self.spec.message)


# ---------------------------------------------------------------------- timing


@handles("latency")
class Latency(FaultHandler[LatencyFault]):
    def fire(self, facts: RequestFacts, now: float, now_wall: float) -> Fired:
        return Delay(self.spec.ms / 1000.0, self.spec.per_chunk_ms / 1000.0)


@handles("hang")
class HangHandler(FaultHandler[HangFault]):
    def fire(self, facts: RequestFacts, now: float, now_wall: float) -> Fired:
        return Hang(self.spec.after)


# ---------------------------------------------------------------------- streams


@handles("stream_cut")
class StreamCut(FaultHandler[StreamCutFault]):
    def applies(self, facts: RequestFacts) -> bool:
        return streams(facts)

    def fire(self, facts: RequestFacts, now: float, now_wall: float) -> Fired:
        return CutStream(self.spec.after)


@handles("stream_truncate")
class StreamTruncate(FaultHandler[StreamTruncateFault]):
    def applies(self, facts: RequestFacts) -> bool:
        return streams(facts)

    def fire(self, facts: RequestFacts, now: float, now_wall: float) -> Fired:
        return TruncateStream(self.spec.after)


@handles("stream_error")
class StreamError(FaultHandler[StreamErrorFault]):
    def applies(self, facts: RequestFacts) -> bool:
        return streams(facts)

    def fire(self, facts: RequestFacts, now: float, now_wall: float) -> Fired:
        return StreamErrorEvent(
            self.spec.after, errors.error_body(self.spec.code, self.spec.message)
        )


# ---------------------------------------------------------------------- answers


@handles("malformed")
class MalformedHandler(FaultHandler[MalformedFault]):
    def fire(self, facts: RequestFacts, now: float, now_wall: float) -> Fired:
        return Malformed()


@handles("empty")
class EmptyHandler(FaultHandler[EmptyFault]):
    def applies(self, facts: RequestFacts) -> bool:
        return answers(facts)

    def fire(self, facts: RequestFacts, now: float, now_wall: float) -> Fired:
        return Empty(self.spec.variant)


@handles("blocked")
class BlockedHandler(FaultHandler[BlockedFault]):
    def applies(self, facts: RequestFacts) -> bool:
        return answers(facts)

    def fire(self, facts: RequestFacts, now: float, now_wall: float) -> Fired:
        return Blocked(self.spec.prompt, self.spec.reason or "SAFETY")


@handles("overlap")
class OverlapHandler(FaultHandler[OverlapFault]):
    def applies(self, facts: RequestFacts) -> bool:
        return continuations(facts)

    def fire(self, facts: RequestFacts, now: float, now_wall: float) -> Fired:
        return Overlap(self.spec.words)


@handles("schema_violation")
class SchemaViolationHandler(FaultHandler[SchemaViolationFault]):
    def applies(self, facts: RequestFacts) -> bool:
        return structured(facts)

    def fire(self, facts: RequestFacts, now: float, now_wall: float) -> Fired:
        return SchemaViolation()
