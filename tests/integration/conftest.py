"""Fixtures for integration tests: a Gemini emulator served over loopback HTTP and
google-genai clients pointed at it (always with HttpRetryOptions(attempts=1): retries
are the failover manager's job, never the SDK's)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import pytest

from gemini_failover.emulator import Emulator, EmulatorServer

if TYPE_CHECKING:
    from google import genai

GenaiClientFactory = Callable[..., "genai.Client"]


@pytest.fixture
def emulator() -> Emulator:
    """A fresh emulator: every model served with the default profile, no faults."""
    return Emulator()


@pytest.fixture
async def emulator_server(emulator: Emulator) -> AsyncIterator[EmulatorServer]:
    """The `emulator` served on 127.0.0.1 with a free port, in the test's event loop."""
    async with EmulatorServer(emulator) as server:
        yield server


@pytest.fixture
async def make_genai_client(
    emulator_server: EmulatorServer,
) -> AsyncIterator[GenaiClientFactory]:
    """Build genai.Clients for the running emulator: ``make_genai_client(timeout_ms=500)``."""
    from google import genai
    from google.genai import types

    clients: list[genai.Client] = []

    def make(*, timeout_ms: int | None = None, base_url: str | None = None) -> genai.Client:
        client = genai.Client(
            api_key="test-key",
            http_options=types.HttpOptions(
                base_url=base_url or emulator_server.base_url,
                api_version="v1beta",
                timeout=timeout_ms,
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aio.aclose()


@pytest.fixture
def genai_client(make_genai_client: GenaiClientFactory) -> genai.Client:
    """A genai.Client for the running emulator (no timeout, no SDK retries)."""
    return make_genai_client()
