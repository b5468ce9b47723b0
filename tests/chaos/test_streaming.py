"""Streams that break half-way continue on the next model without repeating text."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gemini_failover.emulator import (
    Emulator,
    EmulatorThread,
    expected_text,
    stream_chunks_for,
)
from gemini_failover.gemini.backend import GeminiBackend
from gemini_failover.protocol import GenerationRequest
from gemini_failover.resilience import events as ev
from gemini_failover.resilience.manager import FailoverManager
from gemini_failover.resilience.results import RequestFailed
from tests.harness import Harness

PROMPT = "Tell me a story about resilient systems."
EXPECTED = expected_text(PROMPT)
CHUNKS = stream_chunks_for(EXPECTED, 8)


async def collect(m: FailoverManager, request: GenerationRequest) -> tuple[list[str], str]:
    stream = m.stream(request)
    deltas = [d async for d in stream]
    assert stream.result is not None
    return deltas, stream.result.text


def fault(kind: str, after: int) -> dict[str, object]:
    spec: dict[str, object] = {"kind": kind, "after": after, "actions": ["stream"], "count": 1}
    if kind == "stream_error":
        spec["code"] = 503
    return spec


async def test_clean_stream_yields_the_answer_in_chunks(h: Harness) -> None:
    m = await h.manager()
    deltas, text = await collect(m, GenerationRequest.from_prompt(PROMPT))
    assert text == EXPECTED
    assert "".join(deltas) == EXPECTED
    assert len(deltas) >= 4


@pytest.mark.parametrize("kind", ["stream_cut", "stream_error", "stream_truncate"])
@pytest.mark.parametrize("after", [1, len(CHUNKS) // 2, len(CHUNKS) - 1])
async def test_break_after_some_chunks_continues_on_the_fallback(
    h: Harness, kind: str, after: int
) -> None:
    h.emulator.configure("primary", faults=[fault(kind, after)])
    m = await h.manager()
    stream = m.stream(GenerationRequest.from_prompt(PROMPT))
    deltas = [d async for d in stream]
    assert stream.result is not None
    assert "".join(deltas) == EXPECTED
    sent = len("".join(CHUNKS[:after]))
    prov = stream.result.provenance
    assert [(s.model, s.start, s.end) for s in prov.spans] == [
        ("primary", 0, sent),
        ("fallback", sent, len(EXPECTED)),
    ]
    assert prov.served_by == "fallback"
    (cont,) = h.of(ev.ContinuationEvent)
    assert (cont.from_model, cont.to_model, cont.at_char) == ("primary", "fallback", sent)


async def test_repeated_words_of_the_fallback_are_trimmed(h: Harness) -> None:
    h.emulator.configure("primary", faults=[fault("stream_cut", 3)])
    h.emulator.configure("fallback", faults=[{"kind": "overlap", "words": 3}])
    m = await h.manager()
    deltas, text = await collect(m, GenerationRequest.from_prompt(PROMPT))
    assert text == EXPECTED
    assert "".join(deltas) == EXPECTED
    (cont,) = h.of(ev.ContinuationEvent)
    assert cont.overlap_trimmed > 0


async def test_failure_before_the_first_chunk_is_retried_like_a_unary_call(h: Harness) -> None:
    h.emulator.configure(
        "primary",
        faults=[{"kind": "status", "code": 503, "count": 1, "actions": ["stream"]}],
    )
    m = await h.manager()
    stream = m.stream(GenerationRequest.from_prompt(PROMPT))
    deltas = [d async for d in stream]
    assert "".join(deltas) == EXPECTED
    assert stream.result is not None
    assert stream.result.provenance.served_by == "primary"
    assert [a.outcome for a in stream.result.provenance.attempts] == ["503", "ok"]
    assert h.of(ev.ContinuationEvent) == []


async def test_broken_json_stream_is_regenerated_whole(h: Harness) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    h.emulator.configure("primary", faults=[fault("stream_cut", 1)])
    h.emulator.configure("primary", profile={"stream_chunks": 4}, faults=[fault("stream_cut", 1)])
    m = await h.manager(retry={"max_attempts_per_model": 1})
    stream = m.stream(GenerationRequest.from_prompt(PROMPT, response_schema=schema))
    deltas = [d async for d in stream]
    assert len(deltas) == 1  # nothing partial reached the consumer
    assert isinstance(json.loads(deltas[0]), dict)
    assert stream.result is not None
    assert stream.result.parsed == json.loads(deltas[0])
    assert stream.result.provenance.served_by == "fallback"
    assert h.of(ev.ContinuationEvent) == []


async def test_policy_fail_returns_the_partial_text(h: Harness) -> None:
    h.emulator.configure("primary", faults=[fault("stream_cut", 2)])
    m = await h.manager(continuation="fail")
    stream = m.stream(GenerationRequest.from_prompt(PROMPT))
    received: list[str] = []

    async def consume() -> None:
        async for delta in stream:
            received.append(delta)

    with pytest.raises(RequestFailed) as info:
        await consume()
    assert info.value.category == "stream_broken"
    assert info.value.partial_text == "".join(received) == "".join(CHUNKS[:2])
    assert h.calls("fallback", "stream") == 0


async def test_consumer_stopping_closes_the_upstream_stream(h: Harness) -> None:
    h.emulator.configure("primary", faults=[{"kind": "latency", "ms": 0, "per_chunk_ms": 50}])
    m = await h.manager()
    stream = m.stream(GenerationRequest.from_prompt(PROMPT))
    async for _ in stream:
        break
    await stream.aclose()
    log = await h.emulator.wait_for(
        lambda log: any(r.outcome == "client_disconnected" for r in log), timeout=2
    )
    (record,) = [r for r in log if r.action == "stream"]
    assert record.outcome == "client_disconnected"
    assert record.chunks_sent < len(CHUNKS)


async def test_cancelling_the_consumer_task_closes_the_upstream_stream(h: Harness) -> None:
    h.emulator.configure("primary", faults=[{"kind": "latency", "ms": 0, "per_chunk_ms": 50}])
    m = await h.manager()
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in m.stream(GenerationRequest.from_prompt(PROMPT)):
            first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await h.emulator.wait_for(lambda log: any(r.outcome == "client_disconnected" for r in log))


# -- randomized cut points: through the real SDK, >= 200 cases -------------------------

_EMULATOR = Emulator()


@pytest.fixture(scope="module")
def threaded_emulator() -> Iterator[EmulatorThread]:
    with EmulatorThread(_EMULATOR) as server:
        yield server


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    prompt=st.text(alphabet="abcdefghij klmno", min_size=1, max_size=40).filter(str.strip),
    chunks=st.integers(2, 12),
    data=st.data(),
)
def test_randomized_cuts_stitch_to_exactly_the_expected_text(
    threaded_emulator: EmulatorThread, prompt: str, chunks: int, data: st.DataObject
) -> None:
    after = data.draw(st.integers(1, chunks - 1), label="after")
    kind = data.draw(st.sampled_from(["stream_cut", "stream_error", "stream_truncate"]))
    overlap = data.draw(st.integers(0, 4), label="overlap")
    emulator = threaded_emulator.emulator
    emulator.reset()
    emulator.configure("primary", profile={"stream_chunks": chunks}, faults=[fault(kind, after)])
    fallback_faults = [{"kind": "overlap", "words": overlap}] if overlap else []
    emulator.configure("fallback", profile={"stream_chunks": chunks}, faults=fallback_faults)

    async def run() -> tuple[str, str]:
        from gemini_failover.config import load_settings
        from tests.harness import FAST, _merge

        s = load_settings(
            api_key="k",
            base_url=threaded_emulator.base_url,
            models=["primary", "fallback"],
            **_merge(FAST, {"retry": {"max_attempts_per_model": 1}}),
        )
        m = FailoverManager(s, GeminiBackend(api_key="k", base_url=s.base_url))
        try:
            stream = m.stream(GenerationRequest.from_prompt(prompt))
            joined = "".join([d async for d in stream])
            assert stream.result is not None
            return joined, stream.result.text
        finally:
            await m.aclose()

    joined, text = asyncio.run(run())
    expected = expected_text(prompt)
    assert joined == expected
    assert text == expected


# -- review findings: what may and may not continue elsewhere ---------------------------


@pytest.mark.parametrize(("code", "category"), [(400, "bad_request"), (403, "auth")])
async def test_a_refusal_mid_stream_ends_with_the_partial_text_not_a_failover(
    h: Harness, code: int, category: str
) -> None:
    h.emulator.configure(
        "primary",
        faults=[{"kind": "stream_error", "after": 2, "code": code, "actions": ["stream"]}],
    )
    m = await h.manager()
    stream = m.stream(GenerationRequest.from_prompt(PROMPT))
    received: list[str] = []

    async def consume() -> None:
        async for delta in stream:
            received.append(delta)

    with pytest.raises(RequestFailed) as info:
        await consume()
    assert info.value.category == category
    assert info.value.partial_text == "".join(received) == "".join(CHUNKS[:2])
    assert h.calls("fallback", "stream") == 0


async def test_a_rate_limit_mid_stream_waits_and_continues_on_the_same_model(h: Harness) -> None:
    h.emulator.configure(
        "primary",
        faults=[
            {"kind": "stream_error", "after": 3, "code": 429, "count": 1, "actions": ["stream"]}
        ],
    )
    m = await h.manager()
    deltas, text = await collect(m, GenerationRequest.from_prompt(PROMPT))
    assert text == EXPECTED
    assert "".join(deltas) == EXPECTED
    assert h.calls("fallback", "stream") == 0  # no stampede, even mid-stream


async def test_a_break_on_the_last_model_is_continued_on_the_same_model(h: Harness) -> None:
    h.emulator.configure("solo", faults=[fault("stream_cut", 3)])
    m = await h.manager(("solo",))
    stream = m.stream(GenerationRequest.from_prompt(PROMPT))
    deltas = [d async for d in stream]
    assert stream.result is not None
    assert "".join(deltas) == EXPECTED
    sent = len("".join(CHUNKS[:3]))
    assert [(s.model, s.start, s.end) for s in stream.result.provenance.spans] == [
        ("solo", 0, sent),
        ("solo", sent, len(EXPECTED)),
    ]
    assert h.calls("solo", "stream") == 2


async def test_aclose_releases_the_slot_and_closes_upstream_before_returning(h: Harness) -> None:
    h.emulator.configure("primary", faults=[{"kind": "latency", "ms": 0, "per_chunk_ms": 50}])
    m = await h.manager()
    stream = m.stream(GenerationRequest.from_prompt(PROMPT))
    async for _ in stream:
        break
    await stream.aclose()
    # the slot is back as aclose returns: no garbage collection needed
    assert m.chain[0].slots.in_flight == 0
    await h.emulator.wait_for(lambda log: any(r.outcome == "client_disconnected" for r in log))


async def test_an_empty_buffered_stream_is_a_semantic_failure(h: Harness) -> None:
    h.emulator.configure("primary", faults=[{"kind": "empty", "count": 1, "actions": ["stream"]}])
    m = await h.manager(continuation="restart")
    deltas, text = await collect(m, GenerationRequest.from_prompt(PROMPT))
    assert deltas == [EXPECTED]  # buffered: one delta, once complete
    assert text == EXPECTED
    assert h.of(ev.SemanticFailure)[0].kind == "empty"
