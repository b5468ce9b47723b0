"""Every fault kind, as the real google-genai SDK (over httpx2) observes it."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import pytest
from google import genai
from google.genai import errors, types

from gemini_failover.emulator import Emulator, EmulatorServer, RequestRecord, expected_text
from gemini_failover.emulator.quota import QUOTA_TIMEZONE

GenaiClientFactory = Callable[..., genai.Client]
PROMPT = "What is a retry budget?"


async def _collect(
    stream: AsyncIterator[types.GenerateContentResponse], into: list[types.GenerateContentResponse]
) -> None:
    async for chunk in stream:
        into.append(chunk)


async def _stream(client: genai.Client, model: str = "m") -> list[types.GenerateContentResponse]:
    chunks: list[types.GenerateContentResponse] = []
    await _collect(
        await client.aio.models.generate_content_stream(model=model, contents=PROMPT), chunks
    )
    return chunks


def _candidate(response: types.GenerateContentResponse) -> types.Candidate:
    """The first candidate; the SDK types `candidates` as optional."""
    assert response.candidates is not None
    return response.candidates[0]


def _block_reason(response: types.GenerateContentResponse) -> types.BlockedReason | None:
    assert response.prompt_feedback is not None
    return response.prompt_feedback.block_reason


def _detail(error: errors.APIError, type_suffix: str) -> dict[str, Any]:
    details = error.details["error"]["details"]
    return next(d for d in details if d["@type"].endswith(type_suffix))


async def test_status_fault_raises_server_error(
    genai_client: genai.Client, emulator: Emulator
) -> None:
    emulator.configure("m", faults=[{"kind": "status", "code": 503}])
    with pytest.raises(errors.ServerError) as exc_info:
        await genai_client.aio.models.generate_content(model="m", contents=PROMPT)
    error = exc_info.value
    assert error.code == 503
    assert error.status == "UNAVAILABLE"
    assert error.message == "The model is overloaded. Please try again later."
    assert set(error.details["error"]) == {"code", "message", "status"}
    assert emulator.requests[-1].outcome == "fault:status"

    with pytest.raises(errors.ServerError) as streamed:
        await _stream(genai_client)
    assert streamed.value.code == 503


@pytest.mark.parametrize(
    ("code", "status", "error_type"),
    [
        (400, "INVALID_ARGUMENT", errors.ClientError),
        (404, "NOT_FOUND", errors.ClientError),
        (500, "INTERNAL", errors.ServerError),
        (504, "DEADLINE_EXCEEDED", errors.ServerError),
    ],
)
async def test_status_fault_names(
    genai_client: genai.Client,
    emulator: Emulator,
    code: int,
    status: str,
    error_type: type[errors.APIError],
) -> None:
    emulator.configure("m", faults=[{"kind": "status", "code": code, "message": "boom"}])
    with pytest.raises(error_type) as exc_info:
        await genai_client.aio.models.count_tokens(model="m", contents=PROMPT)
    assert (exc_info.value.code, exc_info.value.status, exc_info.value.message) == (
        code,
        status,
        "boom",
    )


async def test_status_fault_with_retry_after(
    genai_client: genai.Client, emulator: Emulator
) -> None:
    emulator.configure("m", faults=[{"kind": "status", "code": 503, "retry_after": 2.5}])
    with pytest.raises(errors.ServerError) as exc_info:
        await genai_client.aio.models.generate_content(model="m", contents=PROMPT)
    assert _detail(exc_info.value, "RetryInfo")["retryDelay"] == "2.5s"
    response = exc_info.value.response
    assert isinstance(response, httpx2.Response)
    assert response.headers["retry-after"] == "3"


async def test_rate_limit_per_minute(genai_client: genai.Client, emulator: Emulator) -> None:
    emulator.configure("m", faults=[{"kind": "rate_limit", "rpm": 2}])
    models = genai_client.aio.models
    await models.generate_content(model="m", contents=PROMPT)
    await models.count_tokens(model="m", contents=PROMPT)
    with pytest.raises(errors.ClientError) as exc_info:
        await models.generate_content(model="m", contents=PROMPT)
    error = exc_info.value
    assert error.code == 429
    assert error.status == "RESOURCE_EXHAUSTED"
    violation = _detail(error, "QuotaFailure")["violations"][0]
    assert violation == {
        "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
        "quotaDimensions": {"location": "global", "model": "m"},
        "quotaValue": "2",
    }
    delay = _detail(error, "RetryInfo")["retryDelay"]
    assert delay.endswith("s")
    assert 29.0 < float(delay[:-1]) <= 30.0  # one token refills in 60/rpm seconds
    assert isinstance(error.response, httpx2.Response)
    assert error.response.headers["retry-after"] == "30"
    assert [r.status for r in emulator.requests] == [200, 200, 429]


async def test_rate_limit_per_day(genai_client: genai.Client, emulator: Emulator) -> None:
    emulator.configure("m", faults=[{"kind": "rate_limit", "rpm": 1, "quota": "day"}])
    await genai_client.aio.models.generate_content(model="m", contents=PROMPT)
    with pytest.raises(errors.ClientError) as exc_info:
        await genai_client.aio.models.generate_content(model="m", contents=PROMPT)
    error = exc_info.value
    violation = _detail(error, "QuotaFailure")["violations"][0]
    assert violation["quotaId"] == "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
    now = dt.datetime.now(QUOTA_TIMEZONE)  # per-day quotas reset at midnight Pacific time
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(0), QUOTA_TIMEZONE)
    delay = float(_detail(error, "RetryInfo")["retryDelay"][:-1])
    assert abs(delay - (midnight.timestamp() - now.timestamp())) < 5
    assert isinstance(error.response, httpx2.Response)
    assert "retry-after" not in error.response.headers


async def test_latency_delays_then_later_faults_apply(
    genai_client: genai.Client, emulator: Emulator
) -> None:
    emulator.configure(
        "m",
        faults=[
            {"kind": "latency", "ms": 150},
            {"kind": "status", "code": 500, "count": 1},
        ],
    )
    started = time.perf_counter()
    with pytest.raises(errors.ServerError):
        await genai_client.aio.models.generate_content(model="m", contents=PROMPT)
    assert time.perf_counter() - started >= 0.15
    first = emulator.requests[-1]
    assert first.faults == ("latency", "status")
    assert first.outcome == "fault:status"
    assert first.duration >= 0.15

    response = await genai_client.aio.models.generate_content(model="m", contents=PROMPT)
    assert response.text == expected_text(PROMPT)
    assert emulator.requests[-1].outcome == "ok"
    assert emulator.requests[-1].faults == ("latency",)


async def test_latency_per_chunk(genai_client: genai.Client, emulator: Emulator) -> None:
    emulator.configure("m", {"stream_chunks": 4}, faults=[{"kind": "latency", "per_chunk_ms": 40}])
    started = time.perf_counter()
    chunks = await _stream(genai_client)
    assert len(chunks) == 4
    assert time.perf_counter() - started >= 3 * 0.04


async def test_hang_ends_when_the_client_times_out(
    make_genai_client: GenaiClientFactory, emulator: Emulator
) -> None:
    client = make_genai_client(timeout_ms=200)
    emulator.configure("m", faults=[{"kind": "hang"}])
    with pytest.raises(httpx2.ReadTimeout):
        await client.aio.models.generate_content(model="m", contents=PROMPT)
    records = await emulator.wait_for(lambda log: len(log) == 1)
    assert records[0].outcome == "client_disconnected"
    assert records[0].status == 0

    with pytest.raises(httpx2.ReadTimeout):
        await _stream(client)
    records = await emulator.wait_for(lambda log: len(log) == 2)
    assert records[1].outcome == "client_disconnected"
    assert emulator.in_flight == 0


async def test_hang_mid_stream(make_genai_client: GenaiClientFactory, emulator: Emulator) -> None:
    client = make_genai_client(timeout_ms=300)
    emulator.configure("m", faults=[{"kind": "hang", "after": 2}])
    chunks: list[types.GenerateContentResponse] = []
    with pytest.raises(httpx2.ReadTimeout):
        await _collect(
            await client.aio.models.generate_content_stream(model="m", contents=PROMPT), chunks
        )
    assert len(chunks) == 2
    records = await emulator.wait_for(lambda log: len(log) == 1)
    assert (records[0].outcome, records[0].chunks_sent, records[0].status) == (
        "client_disconnected",
        2,
        200,
    )


async def test_hang_does_not_block_server_shutdown() -> None:
    emulator = Emulator({"models": {"m": {"faults": [{"kind": "hang"}]}}})
    async with EmulatorServer(emulator) as server:
        client = genai.Client(
            api_key="k",
            http_options=types.HttpOptions(
                base_url=server.base_url,
                api_version="v1beta",
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )
        call = asyncio.create_task(client.aio.models.generate_content(model="m", contents="q"))
        await emulator.wait_for(lambda _: emulator.in_flight == 1)
        started = time.perf_counter()
    assert time.perf_counter() - started < 1.0
    with pytest.raises(httpx2.RemoteProtocolError):
        await call
    await client.aio.aclose()
    assert [r.outcome for r in emulator.requests] == ["fault:hang"]


async def test_stream_cut_raises_transport_error_after_n_chunks(
    genai_client: genai.Client, emulator: Emulator
) -> None:
    emulator.configure("m", faults=[{"kind": "stream_cut", "after": 3, "count": 1}])
    chunks: list[types.GenerateContentResponse] = []
    with pytest.raises(httpx2.RemoteProtocolError, match="incomplete chunked read"):
        await _collect(
            await genai_client.aio.models.generate_content_stream(model="m", contents=PROMPT),
            chunks,
        )
    assert len(chunks) == 3
    assert all(_candidate(c).finish_reason is None for c in chunks)
    assert "".join(c.text or "" for c in chunks) == "".join(_chunks_of(expected_text(PROMPT))[:3])
    record = emulator.requests[-1]
    assert (record.outcome, record.chunks_sent, record.status) == ("fault:stream_cut", 3, 200)

    # The connection pool recovers: the next call on the same client works.
    assert len(await _stream(genai_client)) == 8


def _chunks_of(text: str) -> list[str]:
    from gemini_failover.emulator import stream_chunks_for

    return stream_chunks_for(text, 8)


async def test_stream_cut_before_any_chunk(genai_client: genai.Client, emulator: Emulator) -> None:
    emulator.configure("m", faults=[{"kind": "stream_cut", "after": 0}])
    chunks: list[types.GenerateContentResponse] = []
    with pytest.raises(httpx2.RemoteProtocolError):
        await _collect(
            await genai_client.aio.models.generate_content_stream(model="m", contents=PROMPT),
            chunks,
        )
    assert chunks == []


async def test_stream_truncate_ends_cleanly_without_finish_reason(
    genai_client: genai.Client, emulator: Emulator
) -> None:
    emulator.configure("m", faults=[{"kind": "stream_truncate", "after": 3}])
    chunks = await _stream(genai_client)
    assert len(chunks) == 3
    assert _candidate(chunks[-1]).finish_reason is None
    assert all(c.usage_metadata is None for c in chunks)
    assert emulator.requests[-1].outcome == "fault:stream_truncate"


async def test_stream_error_event_raises_api_error_after_n_chunks(
    genai_client: genai.Client, emulator: Emulator
) -> None:
    emulator.configure("m", faults=[{"kind": "stream_error", "after": 3, "code": 500}])
    chunks: list[types.GenerateContentResponse] = []
    with pytest.raises(errors.ServerError) as exc_info:
        await _collect(
            await genai_client.aio.models.generate_content_stream(model="m", contents=PROMPT),
            chunks,
        )
    assert len(chunks) == 3
    assert exc_info.value.code == 500
    assert exc_info.value.status == "INTERNAL"
    del exc_info
    gc.collect()  # the SDK leaves the HTTP response's generators open on an error event


async def test_stream_faults_do_not_apply_to_generate(
    genai_client: genai.Client, emulator: Emulator
) -> None:
    emulator.configure("m", faults=[{"kind": "stream_cut", "after": 1, "count": 1}])
    response = await genai_client.aio.models.generate_content(model="m", contents=PROMPT)
    assert response.text == expected_text(PROMPT)
    assert emulator.settings()["models"]["m"]["faults"][0]["count"] == 1  # not used up


async def test_malformed_body(genai_client: genai.Client, emulator: Emulator) -> None:
    emulator.configure("m", faults=[{"kind": "malformed"}])
    with pytest.raises(json.JSONDecodeError):
        await genai_client.aio.models.generate_content(model="m", contents=PROMPT)
    with pytest.raises(errors.UnknownApiResponseError):
        await _stream(genai_client)
    with pytest.raises(json.JSONDecodeError):
        await genai_client.aio.models.get(model="m")
    assert {r.status for r in emulator.requests} == {200}


@pytest.mark.parametrize(
    ("variant", "candidates"),
    [("no_candidates", None), ("empty_list", []), ("no_parts", "no_parts")],
)
async def test_empty_answers(
    genai_client: genai.Client, emulator: Emulator, variant: str, candidates: Any
) -> None:
    emulator.configure("m", faults=[{"kind": "empty", "variant": variant}])
    response = await genai_client.aio.models.generate_content(model="m", contents=PROMPT)
    assert response.text is None
    assert response.usage_metadata is not None
    assert response.usage_metadata.prompt_token_count is not None
    assert response.usage_metadata.prompt_token_count > 0
    if candidates == "no_parts":
        candidate = _candidate(response)
        assert candidate.content is not None
        assert candidate.content.parts is None
        assert candidate.finish_reason == types.FinishReason.STOP
    else:
        assert response.candidates == candidates
    chunks = await _stream(genai_client)
    assert len(chunks) == 1
    assert chunks[0].text is None


async def test_blocked_answers(genai_client: genai.Client, emulator: Emulator) -> None:
    emulator.configure("m", faults=[{"kind": "blocked"}])
    response = await genai_client.aio.models.generate_content(model="m", contents=PROMPT)
    assert response.text is None
    candidate = _candidate(response)
    assert candidate.finish_reason == types.FinishReason.SAFETY
    assert candidate.safety_ratings is not None
    assert any(r.blocked for r in candidate.safety_ratings)

    emulator.configure("m", faults=[{"kind": "blocked", "prompt": True}])
    response = await genai_client.aio.models.generate_content(model="m", contents=PROMPT)
    assert response.candidates is None
    assert _block_reason(response) == types.BlockedReason.SAFETY
    chunks = await _stream(genai_client)
    assert _block_reason(chunks[0]) == types.BlockedReason.SAFETY


async def test_flap_alternates(genai_client: genai.Client, emulator: Emulator) -> None:
    emulator.configure("m", faults=[{"kind": "flap", "code": 503}])
    statuses = []
    for _ in range(4):
        try:
            await genai_client.aio.models.generate_content(model="m", contents=PROMPT)
            statuses.append(200)
        except errors.ServerError as error:
            statuses.append(error.code)
    assert statuses == [200, 503, 200, 503]
    assert [r.outcome for r in emulator.requests] == ["ok", "fault:flap"] * 2


@pytest.mark.parametrize(
    ("code", "status", "reason"),
    [
        (401, "UNAUTHENTICATED", "CREDENTIALS_MISSING"),
        (403, "PERMISSION_DENIED", "API_KEY_SERVICE_BLOCKED"),
        (400, "INVALID_ARGUMENT", "API_KEY_INVALID"),
    ],
)
async def test_auth_fault(
    genai_client: genai.Client, emulator: Emulator, code: int, status: str, reason: str
) -> None:
    emulator.configure("m", faults=[{"kind": "auth", "code": code}])
    with pytest.raises(errors.ClientError) as exc_info:
        await genai_client.aio.models.get(model="m")
    assert (exc_info.value.code, exc_info.value.status) == (code, status)
    assert _detail(exc_info.value, "ErrorInfo")["reason"] == reason


async def test_count_applies_to_next_n_requests_then_drops(
    genai_client: genai.Client, emulator: Emulator
) -> None:
    emulator.configure("m", faults=[{"kind": "status", "code": 503, "count": 2}])
    models = genai_client.aio.models
    with pytest.raises(errors.ServerError):
        await models.generate_content(model="m", contents=PROMPT)
    assert emulator.settings()["models"]["m"]["faults"] == [
        {"kind": "status", "code": 503, "count": 1}
    ]
    with pytest.raises(errors.ServerError):
        await models.generate_content(model="m", contents=PROMPT)
    assert emulator.settings()["models"]["m"]["faults"] == []
    assert (await models.generate_content(model="m", contents=PROMPT)).text


async def test_actions_filter(genai_client: genai.Client, emulator: Emulator) -> None:
    emulator.configure("m", faults=[{"kind": "status", "code": 500, "actions": ["embed"]}])
    models = genai_client.aio.models
    assert (await models.generate_content(model="m", contents=PROMPT)).text
    assert (await models.count_tokens(model="m", contents=PROMPT)).total_tokens
    with pytest.raises(errors.ServerError):
        await models.embed_content(model="m", contents=PROMPT)


async def test_star_faults_apply_to_every_model_and_list(
    genai_client: genai.Client, emulator: Emulator
) -> None:
    emulator.configure("own", faults=[{"kind": "status", "code": 404, "count": 1}])
    emulator.configure("*", faults=[{"kind": "status", "code": 503}])
    models = genai_client.aio.models
    with pytest.raises(errors.ClientError):  # the model's own faults come first
        await models.generate_content(model="own", contents=PROMPT)
    for model in ("own", "other"):
        with pytest.raises(errors.ServerError):
            await models.generate_content(model=model, contents=PROMPT)
    with pytest.raises(errors.ServerError):
        await models.list()
    assert emulator.count(action="list", outcome="fault:status") == 1


async def test_wait_for_times_out(emulator: Emulator) -> None:
    started = time.perf_counter()
    with pytest.raises(TimeoutError, match="not met"):
        await emulator.wait_for(lambda log: len(log) > 0, timeout=0.05)
    assert time.perf_counter() - started < 1.0


async def test_wait_for_wakes_on_new_records(
    genai_client: genai.Client, emulator: Emulator
) -> None:
    def two_generates(log: list[RequestRecord]) -> bool:
        return sum(r.action == "generate" for r in log) == 2

    waiter = asyncio.create_task(emulator.wait_for(two_generates, timeout=5))
    await asyncio.gather(
        *(genai_client.aio.models.generate_content(model="m", contents=str(i)) for i in range(2))
    )
    records = await waiter
    assert len(records) == 2
