"""Where a request is, while it runs: which model is writing, failovers and attempts so
far. Read from the manager's event bus (its public way of saying what happens), so a
stream's headers and each chunk's ``modelVersion`` can name the model writing it before
the result with its full provenance exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gemini_failover.resilience import events as ev
from gemini_failover.resilience.results import Provenance

__all__ = ["Progress", "ProgressTracker", "provenance_headers"]


@dataclass(slots=True)
class Progress:
    chain: tuple[str, ...]
    skipped: set[str] = field(default_factory=set)
    current: str | None = None  # the model the last failover went to
    failovers: int = 0
    attempts: int = 0

    @property
    def model(self) -> str:
        """The model serving now: the last failover's target, else the first model of
        the chain that was not skipped."""
        if self.current is not None:
            return self.current
        for name in self.chain:
            if name not in self.skipped:
                return name
        return self.chain[0]


class ProgressTracker:
    """Subscribed once to the manager's events; follows only the requests it watches.
    Called inside ``publish`` (not deferred): a stream's next chunk names the model
    writing it."""

    #: the events it reads
    kinds = (ev.AttemptFinished, ev.FailoverEvent, ev.ModelSkipped)

    def __init__(self) -> None:
        self._watching: dict[str, Progress] = {}

    def watch(self, request_id: str, chain: tuple[str, ...]) -> Progress:
        progress = self._watching[request_id] = Progress(chain)
        return progress

    def forget(self, request_id: str) -> None:
        self._watching.pop(request_id, None)

    def handle(self, event: ev.Event) -> None:
        if not self._watching:
            return
        if isinstance(event, ev.AttemptFinished):
            progress = self._watching.get(event.request_id)
            if progress is not None:
                progress.attempts += 1
        elif isinstance(event, ev.FailoverEvent):
            progress = self._watching.get(event.request_id)
            if progress is not None:
                progress.current = event.to_model
                progress.failovers += 1
        elif isinstance(event, ev.ModelSkipped):
            progress = self._watching.get(event.request_id)
            if progress is not None:
                progress.skipped.add(event.model)


SERVED_BY = "x-gemini-failover-served-by"
FAILOVERS = "x-gemini-failover-failovers"
ATTEMPTS = "x-gemini-failover-attempts"
REQUEST_ID = "x-gemini-failover-request-id"


def provenance_headers(
    request_id: str, served_by: str | None, failovers: int, attempts: int
) -> list[tuple[str, str]]:
    headers = [(REQUEST_ID, request_id), (FAILOVERS, str(failovers)), (ATTEMPTS, str(attempts))]
    if served_by:
        headers.append((SERVED_BY, served_by))
    return headers


def headers_of(request_id: str, provenance: Provenance | None) -> list[tuple[str, str]]:
    if provenance is None:
        return [(REQUEST_ID, request_id)]
    return provenance_headers(
        request_id, provenance.served_by, len(provenance.failovers), len(provenance.attempts)
    )
