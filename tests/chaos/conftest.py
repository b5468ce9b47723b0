from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.harness import Harness, harness


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    async with harness() as h:
        yield h
