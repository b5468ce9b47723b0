"""The Redis store's health, and who hears about it: the sink exactly once per
transition (healthy -> degraded -> healthy), however many reconnect attempts fail in
between, and the log once per transition too (never per request or per attempt)."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from gemini_failover.state.interface import StoreHealth

__all__ = ["HealthReporter"]

log = structlog.get_logger(__name__)


class HealthReporter:
    """Holds the current :class:`StoreHealth`; *notify* is told the first state once
    :meth:`report` is called, and every transition after that (unless ``quiet``).
    *shown_url* must already be redacted."""

    def __init__(self, shown_url: str, notify: Callable[[StoreHealth], None]) -> None:
        self._url = shown_url
        self._notify = notify
        self.current = StoreHealth("redis", False, f"{shown_url}: not started")
        self._told_healthy: bool | None = None  # None until report()

    def update(self, healthy: bool, detail: str, *, quiet: bool = False) -> None:
        """*detail* follows the URL: ``"{url}: {detail}"``."""
        self.current = StoreHealth("redis", healthy, f"{self._url}: {detail}")
        if self._told_healthy is None or healthy == self._told_healthy:
            return  # report() tells the first state; afterwards, transitions only
        if not quiet:
            self.report()

    def report(self) -> None:
        """Tell (and log) the current state."""
        health = self.current
        recovery = self._told_healthy is False
        self._told_healthy = health.healthy
        if health.healthy:
            if recovery:
                log.info("redis state store recovered: sharing state again", url=self._url)
            else:
                log.info("redis state store connected", url=self._url)
        else:
            log.warning(
                "redis state store degraded: serving on local state, reconnecting",
                url=self._url,
                detail=health.detail,
            )
        self._notify(health)
