"""Manager policy with an in-memory backend and a fake clock: what no emulator
scenario shows well (bugs propagating, the retry budget across requests, load
shedding, deadlines, the active model after a cool-down)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from gemini_failover.config import load_settings
from gemini_failover.protocol import (
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    StreamChunk,
    Turn,
    Usage,
)
from gemini_failover.resilience import events as ev
from gemini_failover.resilience.clock import FakeClock
from gemini_failover.resilience.errors import Upstream, attach
from gemini_failover.resilience.manager import FailoverManager
from gemini_failover.resilience.results import RequestFailed

REQ = GenerationRequest.from_prompt("hello")


def unavailable() -> gexc.GoogleAPICallError:
    exc = gexc.ServiceUnavailable("down")
    attach(exc, Upstream("503"))
    return exc


def quota_day() -> gexc.GoogleAPICallError:
    exc = gexc.TooManyRequests("daily quota")
    attach(exc, Upstream("429", retry_after=30.0, quota_scope="day"))
    return exc


class Backend:
    """Answers from a per-model script: a callable raising or returning."""

    def __init__(self) -> None:
        self.behaviour: dict[str, Callable[[], None]] = {}
        self.calls: Counter[str] = Counter()
        self.gate: asyncio.Event | None = None
        self.two_in_flight = asyncio.Event()
        self.entered = asyncio.Event()

    async def generate(self, model: str, request: GenerationRequest, *, timeout: float) -> Any:
        self.calls[model] += 1
        self.entered.set()
        if self.calls[model] == 2:
            self.two_in_flight.set()
        if self.gate is not None:
            await self.gate.wait()
        self.behaviour.get(model, lambda: None)()
        return GenerationResult(f"answer from {model}", "STOP", Usage(1, 1, 2))

    async def stream(self, *a: Any, **kw: Any) -> AsyncIterator[StreamChunk]:
        yield StreamChunk("x", "STOP")

    async def count_tokens(self, model: str, contents: tuple[Turn, ...], *, timeout: float) -> int:
        return 1

    async def embed(self, *a: Any, **kw: Any) -> list[list[float]]:
        return [[1.0]]

    async def model_info(self, model: str, *, timeout: float) -> ModelInfo:
        return ModelInfo(model, 1_000_000, 65_536)

    async def aclose(self) -> None:
        return None


def manager(backend: Backend, clock: FakeClock | None = None, **overrides: Any) -> FailoverManager:
    settings = load_settings(api_key="k", models=["p", "f"], **overrides)
    return FailoverManager(settings, backend, clock=clock or FakeClock())


async def test_a_bug_in_our_code_propagates_and_is_never_a_failover() -> None:
    backend = Backend()

    def bug() -> None:
        raise KeyError("candidates")

    backend.behaviour["p"] = bug
    m = manager(backend)
    seen: list[ev.Event] = []
    m.events.subscribe(seen.append)
    with pytest.raises(KeyError):
        await m.generate(REQ)
    assert backend.calls == Counter({"p": 1})
    assert not [e for e in seen if isinstance(e, ev.FailoverEvent)]
    assert m.chain[0].breaker.failure_rate() == (0.0, 0)  # says nothing of the model


async def test_retry_budget_caps_retries_across_requests_during_an_outage() -> None:
    backend = Backend()
    backend.behaviour["p"] = lambda: (_ for _ in ()).throw(unavailable())
    m = manager(
        backend,
        retry={"budget_ratio": 0.1, "budget_min_per_second": 0.0, "max_attempts_per_model": 3},
        breaker={"consecutive_failures": 10_000, "minimum_throughput": 10_000},
        outlier={"consecutive_errors": 10_000, "minimum_requests": 10_000},
    )
    for _ in range(100):
        result = await m.generate(REQ)
        assert result.provenance.served_by == "f"
    # without a budget: 3 attempts each = 300; with 10%: 100 first attempts + ~10 retries
    assert 100 <= backend.calls["p"] <= 111


async def test_overload_is_shed_with_a_clear_error_not_queued_forever() -> None:
    backend = Backend()
    backend.gate = asyncio.Event()
    m = manager(backend, concurrency={"per_model": 2, "max_waiting": 1})
    running = [asyncio.create_task(m.generate(REQ)) for _ in range(3)]  # 2 in flight, 1 waits
    await backend.two_in_flight.wait()  # the third task is queued by then (FIFO loop)
    assert m.chain[0].waiting == 1
    # no later model allowed: shed at once, with when to come back
    with pytest.raises(RequestFailed) as info:
        await m.generate(REQ, failover=False)
    assert info.value.category == "overloaded"
    assert info.value.retry_after == 1.0
    # a later model that can take traffic: the full queue spills onto it instead
    spilled = asyncio.create_task(m.generate(REQ))
    backend.gate.set()
    results = await asyncio.gather(*running, spilled)
    assert [r.provenance.served_by for r in results] == ["p", "p", "p", "f"]


async def test_deadline_is_checked_before_every_attempt() -> None:
    clock = FakeClock()
    backend = Backend()

    def slow_failure() -> None:
        clock.advance(6.0)
        raise unavailable()

    backend.behaviour["p"] = slow_failure
    backend.behaviour["f"] = slow_failure
    m = manager(backend, clock, total_timeout=10.0, attempt_timeout=5.0)
    with pytest.raises(RequestFailed) as info:
        await m.generate(REQ)
    assert info.value.category == "timeout"
    assert sum(backend.calls.values()) == 2  # the third attempt never starts


async def test_active_model_returns_to_the_primary_when_its_quota_resets() -> None:
    clock = FakeClock()
    backend = Backend()
    backend.behaviour["p"] = lambda: (_ for _ in ()).throw(quota_day())
    m = manager(backend, clock)
    assert (await m.generate(REQ)).provenance.served_by == "f"
    assert m.active_model == "f"
    backend.behaviour.pop("p")
    clock.advance(31)
    assert (await m.generate(REQ)).provenance.served_by == "p"
    assert m.active_model == "p"


async def test_time_spent_waiting_for_a_slot_counts_against_the_deadline() -> None:
    clock = FakeClock()
    backend = Backend()
    backend.gate = asyncio.Event()
    m = manager(
        backend,
        clock,
        total_timeout=10.0,
        attempt_timeout=10.0,
        concurrency={"per_model": 1, "max_waiting": 5},
    )
    first = asyncio.create_task(m.generate(REQ))
    await backend.entered.wait()  # the first call holds the only slot
    second = asyncio.create_task(m.generate(REQ))
    await asyncio.sleep(0)  # one loop turn: the second request queues for the slot
    assert m.chain[0].waiting == 1
    clock.advance(11)  # the second request's deadline passes while it waits
    backend.gate.set()
    await first
    with pytest.raises(RequestFailed) as info:
        await second
    assert info.value.category == "timeout"
    assert backend.calls["p"] == 1  # the late request never reached the backend


async def test_health_reads_see_the_primary_back_after_a_quota_reset_without_traffic() -> None:
    clock = FakeClock()
    backend = Backend()
    backend.behaviour["p"] = lambda: (_ for _ in ()).throw(quota_day())
    m = manager(backend, clock)
    await m.generate(REQ)
    assert m.active_model == "f"
    clock.advance(31)
    status = {row["model"]: row["active"] for row in m.model_status()}
    assert status == {"p": True, "f": False, "gemini-embedding-001": False}
