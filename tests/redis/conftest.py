"""Fixtures for the Redis suite: always a real redis-server, never a fake.

``redis_url``: ``$REDIS_URL`` (CI: ``.ci/start-redis.sh``), else a private
redis-server started for the session. Neither available: the suite FAILS (it is not
optional; CI must run it). ``controlled_redis``: a private server on its own port
that a test may kill and restart (outage tests).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from redis.client import Redis as SyncRedis

from gemini_failover.state.redis import RedisStateStore
from tests.redis.helpers import Changes, ObservedStore, StoreFactory
from tests.redis.server import RedisProcess, shared_or_private_redis

pytestmark = pytest.mark.redis


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with shared_or_private_redis() as url:
        yield url


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of its own per test; its keys are deleted afterwards."""
    value = f"gf-test-{uuid.uuid4().hex[:12]}"
    yield value
    client = SyncRedis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{value}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[SyncRedis]:
    """A plain synchronous client for looking at what the store wrote."""
    client = SyncRedis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def controlled_redis() -> Iterator[RedisProcess]:
    server = RedisProcess()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
async def bus() -> Changes:
    """Poked by every sink and store of the test on any change."""
    return Changes()


@pytest.fixture
async def make_store(redis_url: str, prefix: str, bus: Changes) -> AsyncIterator[StoreFactory]:
    """Start a store (with a recording sink) on the test's prefix; closed at teardown.

    ``await make_store("A", models=["m"], url=..., **store_kwargs)``. Defaults suit
    tests: fast reconnects, and a long resync period so that what a test sees
    arrived through pub/sub unless it asks for resyncs.
    """
    stores: list[RedisStateStore] = []

    async def factory(
        instance_id: str, *, models: list[str] | None = None, url: str | None = None,
        **kwargs: Any,
    ) -> ObservedStore:  # fmt: skip
        options: dict[str, Any] = {
            "prefix": prefix,
            "resync_seconds": 60.0,
            "reconnect_min_seconds": 0.02,
            "reconnect_max_seconds": 0.1,
            "socket_timeout": 1.0,
            "connect_timeout": 0.5,
        }
        options.update(kwargs)
        observed = ObservedStore(url or redis_url, bus, instance_id=instance_id, **options)
        stores.append(observed.store)
        await observed.start(models if models is not None else ["m"])
        return observed

    yield factory
    for store in stores:
        await store.aclose()
