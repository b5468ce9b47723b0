"""The health document: the ``health://status`` resource and the ``gemini_health`` tool.

Built from the manager's live state on every read (cheap: no I/O). It never contains a
secret: model names, numbers and states only; free text (the state backend's detail)
goes through the log redactor first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from gemini_failover import __version__
from gemini_failover.resilience.events import Event, FailoverEvent

if TYPE_CHECKING:
    from gemini_failover.resilience.manager import FailoverManager

Status = Literal["ok", "degraded", "down"]

EMULATOR_NOTICE = (
    "EMULATOR MODE: answers come from the built-in Gemini emulator, not from Gemini. "
    "Start without --emulator (and with GEMINI_API_KEY) for real answers."
)


@dataclass(slots=True)
class FailoverClock:
    """Remembers when the last failover happened (an EventBus subscriber)."""

    at: float | None = None
    count: int = 0
    _wall: Any = field(default=time.time, repr=False)

    #: the events it reads
    kinds: ClassVar[tuple[type[Event], ...]] = (FailoverEvent,)

    def handle(self, event: Event) -> None:
        if isinstance(event, FailoverEvent):
            self.at = self._wall()
            self.count += 1


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def health_document(
    manager: FailoverManager,
    *,
    emulator: bool = False,
    started_at: float | None = None,
    failovers: FailoverClock | None = None,
) -> dict[str, Any]:
    manager.events.flush()  # the failover clock and the rest: up to date
    from gemini_failover.observability.logging import redact_text

    status = manager.status()
    chain, embedding = status.models, status.embedding_models
    store = status.store
    primary = status.primary_model
    reasons: list[str] = []

    health: Status = "ok"
    if not any(m.usable for m in chain):
        health = "down"
        reasons.append("no generation model can take traffic")
    for m in (*chain, *embedding):
        name, breaker = m.model, m.breaker
        if breaker.state == "open":
            reasons.append(f"{name}: circuit breaker open ({breaker.reason})")
        elif breaker.state == "half_open":
            reasons.append(f"{name}: circuit breaker half-open (probing recovery)")
        if m.quota_exhausted_for_s:
            reasons.append(f"{name}: daily quota exhausted")
        if m.unavailable_for_s:
            reasons.append(f"{name}: model not found upstream")
        if m.rate_limited_for_s:
            reasons.append(f"{name}: rate limited for {m.rate_limited_for_s:g} s")
        if m.endpoint_down_for_s:
            reasons.append(
                f"{name}: endpoint {m.endpoint} credentials rejected "
                f"(left out for {m.endpoint_down_for_s:g} s)"
            )
    if status.active_model != primary:
        reasons.append(f"serving from fallback {status.active_model} instead of {primary}")
    if embedding and not any(m.usable for m in embedding):
        reasons.append("no embedding model can take traffic")
    if not store.healthy:
        reasons.append(f"state backend {store.backend} unhealthy")
    if emulator:
        reasons.insert(0, "emulator mode: not connected to Gemini")
    if health == "ok" and (reasons and not (emulator and len(reasons) == 1)):
        health = "degraded"

    last = status.last_failover
    document: dict[str, Any] = {
        "status": health,
        "reasons": reasons,
        "active_model": status.active_model,
        "primary_model": primary,
        "models": [m.as_dict() for m in chain],
        "embedding_models": [m.as_dict() for m in embedding],
        "last_failover": None
        if last is None
        else {
            "from": last.from_model,
            "to": last.to_model,
            "reason": last.reason,
            "at": _iso(failovers.at) if failovers is not None else None,
        },
        "failovers_since_start": failovers.count if failovers is not None else None,
        "state_backend": {
            "backend": store.backend,
            "healthy": store.healthy,
            "detail": redact_text(store.detail),
        },
        # requests per capability asked for (google_search, thinking, json_schema)
        "capabilities": {k: dict(v) for k, v in manager.capability_counts.items()},
        "emulator_mode": emulator,
        "version": __version__,
        "uptime_s": round(time.time() - started_at, 1) if started_at is not None else None,
    }
    if emulator:
        document["notice"] = EMULATOR_NOTICE
    return document
