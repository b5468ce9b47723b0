"""Connection supervision: one Redis client and its pub/sub subscription, and the
loop that keeps a session up, reconnecting with capped exponential backoff (with
jitter, redis-py's own ``EqualJitterBackoff``) after every failure."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import AbstractBackoff, NoBackoff
from redis.exceptions import RedisError

__all__ = [
    "FAILURES",
    "Connection",
    "SessionHooks",
    "client_name",
    "default_instance_id",
    "leaf",
    "supervise",
]

log = structlog.get_logger(__name__)

#: What Redis going away looks like; anything else escaping a session is a bug.
FAILURES: tuple[type[BaseException], ...] = (RedisError, OSError)


def default_instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def client_name(instance_id: str) -> str:
    """CLIENT SETNAME refuses spaces and control characters."""
    name = "".join(c if c.isprintable() and not c.isspace() else "_" for c in instance_id)
    return f"gemini-failover:{name}"[:128]


def leaf(exc: BaseException) -> BaseException:
    """The first exception at the bottom of (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


class Connection:
    """A client (no retries of its own: the supervisor reconnects) and, while a
    session is open, its subscription. Creating it does no I/O; a malformed URL raises
    ValueError."""

    def __init__(
        self,
        url: str,
        *,
        instance_id: str,
        socket_timeout: float,
        connect_timeout: float,
    ) -> None:
        self.client: Redis = Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            retry=Retry(NoBackoff(), 0),
            client_name=client_name(instance_id),
        )
        self.pubsub: PubSub | None = None

    async def open(self, channel: str) -> PubSub:
        """PING, then subscribe to *channel*."""
        await self.client.ping()
        pubsub = self.client.pubsub()
        self.pubsub = pubsub
        await pubsub.subscribe(channel)
        return pubsub

    async def drop(self, timeout: float, *, close: bool) -> None:
        """Disconnect (``close``: for good), whatever state the link is in."""
        pubsub, self.pubsub = self.pubsub, None
        with contextlib.suppress(*FAILURES, TimeoutError):  # closing a broken link
            async with asyncio.timeout(timeout):
                if pubsub is not None:
                    await pubsub.aclose()
                if close:
                    await self.client.aclose(close_connection_pool=True)
                else:
                    await self.client.connection_pool.disconnect()


@dataclass(frozen=True, slots=True)
class SessionHooks:
    """What the supervisor drives."""

    connect: Callable[[], Awaitable[None]]  # raises when Redis cannot be reached
    serve: Callable[[], Awaitable[None]]  # runs until the session fails
    connect_failed: Callable[[BaseException], None]
    lost: Callable[[BaseException], None]  # a live session failed
    disconnect: Callable[[], Awaitable[None]]  # after every session
    closing: Callable[[], bool]


async def supervise(hooks: SessionHooks, backoff: AbstractBackoff, *, connected: bool) -> None:
    """Serve sessions until closing: after a failure, reconnect with backoff (the
    attempt count restarts once a connection succeeds)."""
    attempt = 0
    while not hooks.closing():
        if not connected:
            await asyncio.sleep(backoff.compute(attempt))
            attempt += 1
            try:
                await hooks.connect()
            except Exception as exc:
                if not isinstance(exc, FAILURES):
                    log.error("redis state store failed to reconnect", exc_info=exc)
                hooks.connect_failed(exc)
                continue
            connected = True
        attempt = 0
        try:
            await hooks.serve()
        except Exception as exc:  # any failure means: reconnect
            cause = leaf(exc)
            if not isinstance(cause, FAILURES):
                # not Redis going away: a bug (here or in the sink); say it loudly
                log.error("redis state store failed", exc_info=cause)
            hooks.lost(cause)
        connected = False
        await hooks.disconnect()
