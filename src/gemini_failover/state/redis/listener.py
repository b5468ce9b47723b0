"""The pub/sub listener: other instances' breaker and cool-down events, decoded and
handed on; this instance's own events, unknown models and junk are dropped."""

from __future__ import annotations

from collections.abc import Callable, Container
from typing import Any

import structlog
from redis.asyncio.client import PubSub

from gemini_failover.resilience.breaker import BreakerSnapshot
from gemini_failover.state.interface import CooldownKind
from gemini_failover.state.redis.codec import BreakerEvent, CooldownEvent, decode_event

__all__ = ["Listener"]

log = structlog.get_logger(__name__)


class Listener:
    """*models* is read on every message (the store's set grows as models appear)."""

    def __init__(
        self,
        instance_id: str,
        models: Container[str],
        *,
        on_breaker: Callable[[str, BreakerSnapshot], None],
        on_cooldown: Callable[[str, CooldownKind, float], None],
        channel: str,
    ) -> None:
        self._instance_id = instance_id
        self._models = models
        self._on_breaker = on_breaker
        self._on_cooldown = on_cooldown
        self._channel = channel

    async def run(self, pubsub: PubSub, closing: Callable[[], bool]) -> None:
        while not closing():
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None and message.get("type") == "message":
                self.handle(message["data"])

    def handle(self, data: Any) -> None:
        try:
            event = decode_event(data)
        except ValueError:
            log.debug("ignored a malformed state event", channel=self._channel)
            return
        if event is None or event.origin == self._instance_id or event.model not in self._models:
            return
        if isinstance(event, BreakerEvent):
            self._on_breaker(event.model, event.snapshot)
        elif isinstance(event, CooldownEvent):
            self._on_cooldown(event.model, event.kind, event.until)
