"""The error table, row by row, and the review's chaos scenarios: through the real
google-genai SDK against the emulator over loopback HTTP."""

from __future__ import annotations

import asyncio
import time

import pytest

from gemini_failover.emulator import expected_text
from gemini_failover.protocol import GenerationRequest
from gemini_failover.resilience import events as ev
from gemini_failover.resilience.breaker import BreakerState
from gemini_failover.resilience.results import RequestFailed
from tests.harness import Harness

PROMPT = "Explain circuit breakers in one paragraph."


def req(prompt: str = PROMPT, **kw: object) -> GenerationRequest:
    return GenerationRequest.from_prompt(prompt, **kw)


async def test_healthy_primary_serves_with_provenance(h: Harness) -> None:
    m = await h.manager()
    result = await m.generate(req())
    assert result.text == expected_text(PROMPT)
    assert result.provenance.served_by == "primary"
    assert [a.outcome for a in result.provenance.attempts] == ["ok"]
    assert result.usage.total_tokens > 0
    assert h.calls("fallback") == 0


async def test_primary_outage_no_user_visible_failure_and_breaker_stops_traffic(h: Harness) -> None:
    h.emulator.configure("primary", faults=[{"kind": "status", "code": 503}])
    m = await h.manager()
    results = [await m.generate(req(f"question {i}")) for i in range(40)]
    assert all(r.provenance.served_by == "fallback" for r in results)
    # three attempts on the first request open the breaker; the other 39 skip it
    assert h.calls("primary") == 3
    assert m.chain[0].breaker.snapshot.state is BreakerState.OPEN
    assert results[0].provenance.failovers[0].reason == "transient"
    assert [a.outcome for a in results[0].provenance.attempts] == ["503", "503", "503", "ok"]
    assert all(r.provenance.skipped == [("primary", "breaker_open")] for r in results[1:])
    assert m.active_model == "fallback"
    assert len(h.of(ev.FailoverEvent)) == 40


async def test_outage_then_recovery_switches_back_after_sustained_health(h: Harness) -> None:
    h.emulator.configure(
        "primary", faults=[{"kind": "status", "code": 503, "count": 3, "actions": ["generate"]}]
    )
    m = await h.manager(breaker={"break_seconds": 0.05, "sustained_health_seconds": 0.15})
    served: list[str] = []
    deadline = time.monotonic() + 5
    while m.chain[0].breaker.snapshot.state is not BreakerState.CLOSED or not served:
        result = await m.generate(req())
        served.append(result.provenance.served_by or "")
        await asyncio.sleep(0.01)  # steady traffic, not a wait for a condition
        assert time.monotonic() < deadline, "breaker never closed"
    transitions = [(t.from_state, t.to_state) for t in h.of(ev.BreakerTransition)]
    assert transitions == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert served[0] == "fallback"
    assert m.active_model == "primary"
    assert [(a.model, a.previous) for a in h.of(ev.ActiveModelChanged)] == [
        ("fallback", "primary"),
        ("primary", "fallback"),
    ]


async def test_flapping_model_does_not_thrash(h: Harness) -> None:
    h.emulator.configure("primary", faults=[{"kind": "flap", "code": 503, "actions": ["generate"]}])
    m = await h.manager(
        retry={"max_attempts_per_model": 1},
        breaker={
            "break_seconds": 0.02,
            "max_break_seconds": 0.32,
            "sustained_health_seconds": 0.2,
            "required_successes": 3,
            "minimum_throughput": 4,
            "failure_rate_threshold": 0.4,
        },
    )
    failures = 0
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        try:
            await m.generate(req())
        except RequestFailed:
            failures += 1
        await asyncio.sleep(0.005)  # steady traffic for 1.5 s, not a wait for a condition
    opened = [t for t in h.of(ev.BreakerTransition) if t.to_state == "open"]
    closed = [t for t in h.of(ev.BreakerTransition) if t.to_state == "closed"]
    assert failures == 0
    assert closed == []  # never "sustained health": it stays away from the flapping model
    # doubling break: 0.02+0.04+0.08+0.16+0.32+0.32... fits at most ~7 trips in 1.5 s
    assert 2 <= len(opened) <= 8
    breaks = [t.epoch for t in opened]
    assert breaks == sorted(breaks)


async def test_rate_limit_longer_than_the_deadline_moves_on_to_the_fallback(h: Harness) -> None:
    # The primary's wait (~6 s to its next token) cannot fit the 2 s deadline: the
    # requests move on to the fallback (through its admission limit, ramping up from
    # rate_limit.spill_start_rate) instead of being rejected while it sits idle; none
    # retries the primary.
    h.emulator.configure(
        "primary",
        faults=[{"kind": "rate_limit", "rpm": 10, "quota": "minute", "actions": ["generate"]}],
    )
    m = await h.manager(
        total_timeout=2.0, attempt_timeout=2.0, retry={"budget_min_per_second": 1.0}
    )

    async def one(i: int) -> str:
        r = await m.generate(req(f"q{i}"))
        return r.provenance.served_by or ""

    served = await asyncio.gather(*(one(i) for i in range(60)))
    assert served.count("primary") == 10  # the bucket's 10 tokens
    assert served.count("fallback") == 50
    # at most one attempt each; fewer: the primary's starting admission limit (16, its
    # health unproven) plus one per success sends a first wave, and the requests queued
    # behind it move on once its 429s set the cool-down, without calling it
    start = m.settings.concurrency.per_model
    assert 10 < h.calls("primary") <= start + 10
    assert h.of(ev.RetryScheduled) == []
    # the 429s set a shared cool-down: a second wave goes to the fallback without a call
    first_wave = h.calls("primary")
    second = await asyncio.gather(*(one(i) for i in range(20)))
    assert second == ["fallback"] * 20
    assert h.calls("primary") == first_wave
    assert m.chain[0].breaker.snapshot.state is BreakerState.CLOSED


async def test_short_rate_limit_is_waited_out_on_the_same_model(h: Harness) -> None:
    h.emulator.configure(
        "primary",
        faults=[
            {"kind": "status", "code": 429, "retry_after": 0.2, "count": 1, "actions": ["generate"]}
        ],
    )
    m = await h.manager()
    result = await m.generate(req())
    assert result.provenance.served_by == "primary"
    assert [a.outcome for a in result.provenance.attempts] == ["429", "ok"]
    assert h.calls("fallback") == 0
    # waiting out a rate limit is not a retry: the 429, then a wait of at least its
    # Retry-After (the planned wait, not a measured time), then the second attempt
    assert h.of(ev.RetryScheduled) == []
    order = [
        type(e).__name__ if not isinstance(e, ev.AttemptFinished) else f"attempt {e.status}"
        for e in h.events
        if isinstance(e, ev.AttemptFinished | ev.RateLimitWait)
    ]
    assert order == ["attempt 429", "RateLimitWait", "attempt ok"]
    assert h.of(ev.RateLimitWait)[0].seconds >= 0.2


async def test_spill_fraction_sends_some_rate_limited_traffic_to_the_fallback(h: Harness) -> None:
    h.emulator.configure("primary", faults=[{"kind": "status", "code": 429, "retry_after": 5}])
    m = await h.manager(rate_limit={"spill_fraction": 1.0}, total_timeout=2.0)
    first = await m.generate(req())  # one 429, then spilled rather than waiting
    assert first.provenance.served_by == "fallback"
    assert first.provenance.failovers[0].reason == "spill"
    second = await m.generate(req())  # primary cooling down: spilled
    assert second.provenance.served_by == "fallback"
    assert second.provenance.failovers[0].reason == "spill"


async def test_daily_quota_exhaustion_fails_over_and_skips_until_reset(h: Harness) -> None:
    h.emulator.configure(
        "primary",
        faults=[{"kind": "rate_limit", "rpm": 1, "quota": "day", "actions": ["generate"]}],
    )
    m = await h.manager()
    first = await m.generate(req())
    second = await m.generate(req())
    third = await m.generate(req())
    assert first.provenance.served_by == "primary"
    assert second.provenance.served_by == "fallback"
    assert second.provenance.failovers[0].reason == "quota_exhausted"
    assert third.provenance.skipped == [("primary", "quota_exhausted")]
    assert h.calls("primary") == 2
    (quota,) = h.of(ev.QuotaExhausted)
    assert quota.until - time.time() > 60  # until the daily reset, not a few seconds
    assert m.active_model == "fallback"


@pytest.mark.parametrize("code", [401, 403, 400])  # 400: API_KEY_INVALID, Gemini's answer
async def test_auth_failure_fails_at_once_and_alerts(h: Harness, code: int) -> None:
    h.emulator.configure("primary", faults=[{"kind": "auth", "code": code}])
    m = await h.manager()
    with pytest.raises(RequestFailed) as info:
        await m.generate(req())
    assert info.value.category == "auth"
    assert "GEMINI_API_KEY" in info.value.message
    assert h.calls("primary") == 1
    assert h.calls("fallback") == 0
    assert [a.status for a in h.of(ev.AuthFailure)] == [str(code)]
    assert m.chain[0].breaker.failure_rate() == (0.0, 0)  # not model sickness


async def test_bad_request_fails_at_once_with_the_upstream_message(h: Harness) -> None:
    h.emulator.configure(
        "primary", faults=[{"kind": "status", "code": 400, "message": "Invalid stop sequence"}]
    )
    m = await h.manager()
    with pytest.raises(RequestFailed) as info:
        await m.generate(req())
    assert info.value.category == "bad_request"
    assert "Invalid stop sequence" in info.value.message
    assert h.calls("primary") == 1
    assert h.calls("fallback") == 0


async def test_model_not_found_is_marked_unavailable(h: Harness) -> None:
    h.emulator.configure("primary", faults=[{"kind": "status", "code": 404}])
    m = await h.manager()
    first = await m.generate(req())
    second = await m.generate(req())
    assert first.provenance.failovers[0].reason == "model_unavailable"
    assert second.provenance.skipped == [("primary", "unavailable")]
    assert h.calls("primary") == 1


@pytest.mark.parametrize("prompt", [False, True])  # finishReason SAFETY, or a blocked prompt
async def test_blocked_answer_is_a_refusal_not_a_failover(h: Harness, prompt: bool) -> None:
    h.emulator.configure("primary", faults=[{"kind": "blocked", "prompt": prompt}])
    m = await h.manager()
    with pytest.raises(RequestFailed) as info:
        await m.generate(req())
    assert info.value.category == "blocked"
    assert "SAFETY" in info.value.message
    assert h.calls("primary") == 1
    assert h.calls("fallback") == 0


@pytest.mark.parametrize("kind", ["empty", "malformed"])
async def test_empty_or_malformed_answer_is_retried(h: Harness, kind: str) -> None:
    h.emulator.configure("primary", faults=[{"kind": kind, "count": 1, "actions": ["generate"]}])
    m = await h.manager()
    result = await m.generate(req())
    assert result.text == expected_text(PROMPT)
    assert result.provenance.served_by == "primary"
    assert result.provenance.attempts[0].outcome == ("empty" if kind == "empty" else "malformed")


async def test_hang_times_out_then_fails_over_within_the_deadline(h: Harness) -> None:
    h.emulator.configure("primary", faults=[{"kind": "hang", "actions": ["generate"]}])
    m = await h.manager(attempt_timeout=0.2, retry={"max_attempts_per_model": 2})
    # The primary hangs forever: the request ending at all shows the attempt timeout
    # cut it (twice, per the provenance); how long that took is bench/'s business.
    result = await m.generate(req())
    assert result.provenance.served_by == "fallback"
    assert [a.outcome for a in result.provenance.attempts] == ["timeout", "timeout", "ok"]
    await h.emulator.wait_for(lambda log: sum(r.outcome == "client_disconnected" for r in log) == 2)


async def test_deadline_bounds_a_request_whatever_the_chain_does(h: Harness) -> None:
    for model in ("primary", "fallback"):
        h.emulator.configure(model, faults=[{"kind": "hang", "actions": ["generate"]}])
    m = await h.manager(attempt_timeout=0.3, total_timeout=0.5)
    with pytest.raises(RequestFailed) as info:  # both hang forever: the deadline ends it
        await m.generate(req())
    assert info.value.category in {"timeout", "unavailable"}
