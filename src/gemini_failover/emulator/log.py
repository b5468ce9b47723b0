"""The request log: one record per Gemini API request, requests in flight, and waiting
for a condition on them from any event loop or thread."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .wire.requests import normalise_model

__all__ = ["RequestLog", "RequestRecord", "wake_all"]

Waiter = tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One Gemini API request the emulator answered (or did not).

    ``status`` is the HTTP status sent (0 when none was). ``outcome`` is ``"ok"``,
    ``"fault:<kind>"`` (the fault that decided the answer), ``"error:<STATUS>"`` (the
    emulated model rejected the request, e.g. ``error:INVALID_ARGUMENT``),
    ``"client_disconnected"``, ``"server_shutdown"`` or ``"emulator_error"`` (a bug in
    the emulator). ``faults`` lists every fault that fired, in order, including latency.
    ``endpoint``: the endpoint's name (``gemini_api``, ``vertex`` or a scenario
    endpoint's name). ``parts``: every part of every turn of a generate, stream or
    count_tokens request (``role``, ``turn``: its turn's index, ``kind``, ``mimeType``,
    ``bytes``, ``fileUri``);
    ``tools``: the tools declared; ``thinking``: the thinking config; ``file``: the
    ``files/{id}`` a Files API request made or named.
    """

    model: str
    action: str
    status: int
    time: float
    outcome: str
    chunks_sent: int = 0
    faults: tuple[str, ...] = ()
    duration: float = 0.0
    endpoint: str = "gemini_api"
    parts: tuple[dict[str, Any], ...] = ()
    tools: tuple[str, ...] = ()
    thinking: dict[str, Any] | None = None
    file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["faults"] = list(self.faults)
        data["parts"] = [dict(p) for p in self.parts]
        data["tools"] = list(self.tools)
        return data


def wake_all(entries: Iterable[Waiter]) -> None:
    """Resolve futures that may belong to other event loops (and threads)."""
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    for loop, fut in entries:
        if loop is running:
            _set_done(fut)
        else:
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(_set_done, fut)


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class RequestLog:
    """The last ``max_records`` records, oldest first, and the in-flight count."""

    def __init__(self, max_records: int) -> None:
        self._lock = threading.Lock()
        self._records: deque[RequestRecord] = deque(maxlen=max_records)
        self._waiters: list[Waiter] = []
        self._in_flight = 0

    def snapshot(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def begin(self) -> None:
        """A request arrived."""
        with self._lock:
            self._in_flight += 1
            waiters, self._waiters = self._waiters, []
        if waiters:
            wake_all(waiters)

    def add(self, record: RequestRecord) -> None:
        """A request ended (every ``begin`` has one ``add``)."""
        with self._lock:
            self._records.append(record)
            self._in_flight -= 1
            waiters, self._waiters = self._waiters, []
        if waiters:
            wake_all(waiters)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            waiters, self._waiters = self._waiters, []
        wake_all(waiters)

    def count(
        self,
        model: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        status: int | None = None,
        endpoint: str | None = None,
    ) -> int:
        if model is not None:
            model = normalise_model(model)
        with self._lock:
            return sum(
                1
                for r in self._records
                if (model is None or r.model == model)
                and (action is None or r.action == action)
                and (outcome is None or r.outcome == outcome)
                and (status is None or r.status == status)
                and (endpoint is None or r.endpoint == endpoint)
            )

    async def wait_for(
        self,
        predicate: Callable[[list[RequestRecord]], bool],
        timeout: float = 5.0,
    ) -> list[RequestRecord]:
        """Wait until ``predicate(log)`` is true; return that snapshot (TimeoutError
        after ``timeout``). Wakes whenever a request starts or ends, no polling."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            with self._lock:
                snapshot = list(self._records)
                if predicate(snapshot):
                    return snapshot
                waiter: asyncio.Future[None] = loop.create_future()
                entry = (loop, waiter)
                self._waiters.append(entry)
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                snapshot = self.snapshot()
                if predicate(snapshot):
                    return snapshot
                tail = ", ".join(
                    f"{r.model}/{r.action}:{r.status}:{r.outcome}" for r in snapshot[-10:]
                )
                raise TimeoutError(
                    f"request log condition not met within {timeout}s "
                    f"({len(snapshot)} requests; last: {tail or 'none'})"
                ) from None
            finally:
                with self._lock:
                    if entry in self._waiters:
                        self._waiters.remove(entry)
