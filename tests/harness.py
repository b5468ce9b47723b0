"""A failover manager wired to a live emulator through the real google-genai SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from gemini_failover.config import Settings, load_settings
from gemini_failover.emulator import Emulator, EmulatorServer
from gemini_failover.gemini.endpoints import build_backend
from gemini_failover.resilience import events as ev
from gemini_failover.resilience.manager import FailoverManager
from gemini_failover.state import StateStore

#: Thresholds scaled down so that chaos scenarios play out in well under a second.
FAST: dict[str, Any] = {
    "attempt_timeout": 2.0,
    "stream_idle_timeout": 2.0,
    "total_timeout": 5.0,
    "retry": {
        "max_attempts_per_model": 3,
        "backoff_initial": 0.002,
        "backoff_max": 0.02,
        "budget_min_per_second": 50.0,
    },
    "breaker": {
        "window_seconds": 10,
        "minimum_throughput": 6,
        "consecutive_failures": 3,
        "break_seconds": 30,
        "max_break_seconds": 60,
        "half_open_probes": 1,
        "required_successes": 2,
        "sustained_health_seconds": 0.1,
    },
    "rate_limit": {"default_retry_after": 0.05},
}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


class Harness:
    def __init__(self, server: EmulatorServer) -> None:
        self.server = server
        self.emulator: Emulator = server.emulator
        self.events: list[ev.Event] = []
        self._managers: list[FailoverManager] = []

    def settings(
        self, models: tuple[str, ...] = ("primary", "fallback"), **overrides: Any
    ) -> Settings:
        values = _merge(FAST, overrides)
        values.setdefault("models", list(models))
        values.setdefault("embedding_models", ["embed-a", "embed-b"])
        return load_settings(api_key="test-key", base_url=self.server.base_url, **values)

    async def manager(
        self,
        models: tuple[str, ...] = ("primary", "fallback"),
        *,
        store: StateStore | None = None,
        **overrides: Any,
    ) -> FailoverManager:
        settings = self.settings(models, **overrides)
        backend = build_backend(settings)  # one client per endpoint the chains use
        manager = FailoverManager(settings, backend, store=store)
        manager.events.subscribe(self.events.append)
        await manager.start()
        self._managers.append(manager)
        return manager

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def calls(self, model: str, action: str = "generate") -> int:
        return self.emulator.count(model=model, action=action)

    async def aclose(self) -> None:
        for manager in self._managers:
            await manager.aclose()


@asynccontextmanager
async def harness(scenario: dict[str, Any] | None = None) -> AsyncIterator[Harness]:
    async with EmulatorServer(Emulator(scenario)) as server:
        h = Harness(server)
        try:
            yield h
        finally:
            await h.aclose()
