"""The error table (README, "What each failure does"), row by row: each fault the
emulator injects, raised through the real google-genai SDK by GeminiBackend,
normalised and classified."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from gemini_failover.emulator import Emulator, EmulatorServer
from gemini_failover.gemini.backend import GeminiBackend
from gemini_failover.protocol import GenerationRequest
from gemini_failover.resilience.errors import (
    POLICY,
    UPSTREAM_ERRORS,
    Category,
    classify,
    upstream_of,
)

REQ = GenerationRequest.from_prompt("classify me")


@pytest.fixture
async def backend(emulator_server: EmulatorServer) -> AsyncIterator[GeminiBackend]:
    b = GeminiBackend(api_key="test-key", base_url=emulator_server.base_url)
    yield b
    await b.aclose()


async def failure(backend: GeminiBackend, operation: str, model: str = "m") -> BaseException:
    """Run one operation and return what it raised (it must raise)."""
    try:
        if operation == "generate":
            await backend.generate(model, REQ, timeout=0.5)
        elif operation == "stream":
            async for _ in backend.stream(model, REQ, timeout=0.5):
                pass
        elif operation == "count_tokens":
            await backend.count_tokens(model, REQ.contents, timeout=0.5)
        else:
            await backend.embed(model, ("a",), timeout=0.5)
    except UPSTREAM_ERRORS as exc:
        return exc
    raise AssertionError(f"{operation} did not fail")


ROWS: list[tuple[str, dict[str, Any], str, Category, str]] = [
    # (operation, fault, row of the table, category, metrics status label)
    ("generate", {"kind": "status", "code": 500}, "500", Category.TRANSIENT, "500"),
    ("generate", {"kind": "status", "code": 502}, "502", Category.TRANSIENT, "502"),
    ("generate", {"kind": "status", "code": 503}, "503", Category.TRANSIENT, "503"),
    ("generate", {"kind": "malformed"}, "malformed body", Category.TRANSIENT, "malformed"),
    ("stream", {"kind": "stream_cut", "after": 2}, "stream cut", Category.TRANSIENT, "network"),
    (
        "stream",
        {"kind": "stream_truncate", "after": 2},
        "EOF without finish reason",
        Category.TRANSIENT,
        "truncated",
    ),
    (
        "stream",
        {"kind": "stream_error", "after": 2, "code": 503},
        "error event",
        Category.TRANSIENT,
        "503",
    ),
    ("generate", {"kind": "status", "code": 504}, "504", Category.TIMEOUT, "504"),
    ("generate", {"kind": "hang"}, "hang", Category.TIMEOUT, "timeout"),
    ("stream", {"kind": "hang", "after": 2}, "hang mid-stream", Category.TIMEOUT, "timeout"),
    (
        "generate",
        {"kind": "rate_limit", "rpm": 1, "quota": "minute", "count": 2},
        "429 per minute",
        Category.RATE_LIMITED,
        "429",
    ),
    (
        "generate",
        {"kind": "rate_limit", "rpm": 1, "quota": "day", "count": 2},
        "429 per day",
        Category.QUOTA_EXHAUSTED,
        "429",
    ),
    ("generate", {"kind": "auth", "code": 401}, "401", Category.AUTH, "401"),
    ("generate", {"kind": "auth", "code": 403}, "403", Category.AUTH, "403"),
    ("generate", {"kind": "auth", "code": 400}, "400 API_KEY_INVALID", Category.AUTH, "400"),
    ("generate", {"kind": "status", "code": 400}, "400", Category.BAD_REQUEST, "400"),
    ("generate", {"kind": "status", "code": 404}, "404", Category.MODEL_UNAVAILABLE, "404"),
    ("generate", {"kind": "blocked"}, "finishReason SAFETY", Category.BLOCKED, "blocked"),
    (
        "generate",
        {"kind": "blocked", "prompt": True},
        "blocked prompt",
        Category.BLOCKED,
        "blocked",
    ),
    ("stream", {"kind": "blocked"}, "SAFETY in a stream", Category.BLOCKED, "blocked"),
    ("generate", {"kind": "empty"}, "empty candidates", Category.SEMANTIC, "empty"),
    ("stream", {"kind": "empty"}, "empty stream", Category.SEMANTIC, "empty"),
    (
        "count_tokens",
        {"kind": "status", "code": 503},
        "count_tokens 503",
        Category.TRANSIENT,
        "503",
    ),
    ("embed", {"kind": "status", "code": 429}, "embed 429", Category.RATE_LIMITED, "429"),
]


@pytest.mark.parametrize(
    ("operation", "fault", "row", "category", "status"),
    ROWS,
    ids=[row for _, _, row, _, _ in ROWS],
)
async def test_error_table_row(
    emulator: Emulator,
    backend: GeminiBackend,
    operation: str,
    fault: dict[str, Any],
    row: str,
    category: Category,
    status: str,
) -> None:
    model = "gemini-embedding-001" if operation == "embed" else "m"
    emulator.configure(model, faults=[fault])
    if fault["kind"] == "rate_limit":  # spend the bucket's one token first
        await backend.generate(model, REQ, timeout=2)
    raised = await failure(backend, operation, model)
    # nothing above gemini/ sees an SDK or transport type
    assert isinstance(raised, gexc.GoogleAPICallError) or type(raised).__module__.startswith(
        "gemini_failover"
    )
    c = classify(raised)
    assert c.category is category, f"{row}: {c}"
    assert c.status == status
    assert c.action == POLICY[category]


async def test_rate_limits_carry_the_retry_delay_and_scope(
    emulator: Emulator, backend: GeminiBackend
) -> None:
    emulator.configure(
        "m", faults=[{"kind": "status", "code": 429, "retry_after": 7.5, "count": 1}]
    )
    raised = await failure(backend, "generate")
    up = upstream_of(raised)
    assert up is not None
    assert up.retry_after == 8.0  # Retry-After header rounds up; RetryInfo says 7.5 s
    assert classify(raised).retry_after == 8.0


async def test_a_bug_is_not_an_upstream_failure() -> None:
    c = classify(KeyError("candidates"))
    assert c.category is Category.BUG
    assert not c.action.fail_over
    assert not c.action.retry_same_model
