"""Issue 13's "done when" lines at test scale, through the real google-genai SDK
against the emulator: rate-limit storms (waiting is not a retry, gradual release,
adaptive spill) and a prompt over a fallback's token window. Counts only: the timings
are bench/storm.py's."""

from __future__ import annotations

import asyncio

from gemini_failover.protocol import GenerationRequest
from gemini_failover.resilience import events as ev
from gemini_failover.resilience.breaker import BreakerState
from gemini_failover.resilience.results import RequestFailed
from tests.harness import Harness

ANSWERS = ["generate"]


def req(prompt: str) -> GenerationRequest:
    return GenerationRequest.from_prompt(prompt)


async def _fire(h: Harness, m: object, n: int, tag: str) -> list[str | RequestFailed]:
    from gemini_failover.resilience.manager import FailoverManager

    assert isinstance(m, FailoverManager)

    async def one(i: int) -> str | RequestFailed:
        try:
            r = await m.generate(req(f"{tag} {i}"))
        except RequestFailed as exc:
            return exc
        return r.provenance.served_by or ""

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def test_transient_storm_is_waited_out_on_the_primary_and_released_gradually(
    h: Harness,
) -> None:
    calls = 30
    storm = {"kind": "status", "code": 429, "retry_after": 1, "count": calls, "actions": ANSWERS}
    h.emulator.configure("primary", faults=[storm])
    m = await h.manager(total_timeout=30.0, attempt_timeout=5.0)
    outcomes = await _fire(h, m, calls, "storm")
    assert outcomes == ["primary"] * calls  # every call, by the primary
    assert h.calls("fallback") == 0
    records = [r for r in h.emulator.requests if r.model == "primary" and r.action == "generate"]
    after = sorted(r.time for r in records if r.outcome != "fault:status")
    assert len(records) - calls <= 1.3 * calls  # beyond the injected 429s
    assert h.of(ev.RetryScheduled) == []  # waiting is not a retry
    # released gradually: no 100 ms window takes more than a quarter of the waiters
    peak = max(sum(1 for t in after if start <= t < start + 0.1) for start in after)
    assert peak <= calls / 4


async def test_persistent_429_spills_onto_the_fallback_up_to_its_capacity(h: Harness) -> None:
    h.emulator.configure("primary", faults=[{"kind": "rate_limit", "rpm": 0, "actions": ANSWERS}])
    h.emulator.configure("fallback", faults=[{"kind": "rate_limit", "rpm": 20, "actions": ANSWERS}])
    m = await h.manager(total_timeout=4.0, attempt_timeout=4.0)
    outcomes = await _fire(h, m, 30, "persistent")
    served = [o for o in outcomes if isinstance(o, str)]
    shed = [o for o in outcomes if isinstance(o, RequestFailed)]
    assert set(served) == {"fallback"}
    assert len(served) >= 0.9 * 20  # what the fallback's bucket carries in the deadline
    # what no model could take in time is shed, with a retry-after
    assert all(e.category == "rate_limited" and e.retry_after for e in shed)
    # never retried: the first wave (the primary's starting admission limit) found the
    # 429, the rest saw its cool-down and moved on without a call
    assert h.calls("primary") == m.settings.concurrency.per_model
    # the fallback is paced from its first 429 on (the rate its RetryInfo shows), not
    # sent calls until the next 429: at most the calls in flight at that first 429
    fallback = [r for r in h.emulator.requests if r.model == "fallback" and r.action == "generate"]
    refused = sum(r.status == 429 for r in fallback)
    assert refused <= 2


async def test_per_minute_storm_calls_the_primary_no_more_than_needed(h: Harness) -> None:
    h.emulator.configure("primary", faults=[{"kind": "rate_limit", "rpm": 2, "actions": ANSWERS}])
    m = await h.manager(total_timeout=30.0)
    outcomes = await _fire(h, m, 12, "minute")
    assert all(isinstance(o, str) for o in outcomes)
    assert outcomes.count("primary") == 2
    assert h.calls("primary") <= 18


async def test_a_prompt_over_a_fallbacks_window_is_answered_by_a_model_that_fits(
    h: Harness,
) -> None:
    # the primary is down; the fallback's window (1,000 tokens) is smaller than the
    # prompt and its models.get answers late, so the first call cannot know it
    h.emulator.configure("primary", faults=[{"kind": "status", "code": 503, "actions": ANSWERS}])
    h.emulator.configure(
        "fallback",
        profile={"input_token_limit": 1000},
        faults=[{"kind": "latency", "ms": 2000, "actions": ["get"]}],
    )
    m = await h.manager(("primary", "fallback", "third"))
    prompt = "lorem ipsum " * 400  # ~1,200 tokens
    first = await m.generate(req(prompt))
    assert first.provenance.served_by == "third"  # on the first call
    assert [a.outcome for a in first.provenance.attempts][-2:] == ["400", "ok"]
    assert m.chain[1].profile.input_token_limit == 1000  # learned from the 400
    assert m.chain[1].profile.source == "learned"
    second = await m.generate(req("again " + prompt))
    assert second.provenance.served_by == "third"
    assert any(
        name == "fallback" and why.startswith("capability")
        for name, why in second.provenance.skipped
    )
    assert h.calls("fallback") == 1


async def test_start_fetches_the_model_limits_in_the_background(h: Harness) -> None:
    slow_get = [{"kind": "latency", "ms": 500, "actions": ["get"]}]
    h.emulator.configure("primary", faults=slow_get)
    m = await h.manager()
    assert m.chain[0].info is None  # start did not wait for models.get ...
    await m.fetch_profiles(timeout=10.0)  # ... but had already asked: this joins it
    assert m.chain[0].info is not None
    assert h.calls("primary", "get") == 1


async def _stream(m: object, prompt: str) -> tuple[str, list[str]]:
    from gemini_failover.resilience.manager import FailoverManager

    assert isinstance(m, FailoverManager)
    stream = m.stream(req(prompt))
    text = "".join([d async for d in stream])
    assert stream.result is not None
    prov = stream.result.provenance
    return f"{prov.served_by}:{text != ''}", [a.outcome for a in prov.attempts]


async def test_a_stream_waits_out_a_short_rate_limit_like_a_unary_call(h: Harness) -> None:
    # Streams take the unary rate-limit policy: the 429 sends the request back to the
    # release gate (a wait, then the probe), not into the retry loop.
    h.emulator.configure(
        "primary",
        faults=[
            {"kind": "status", "code": 429, "retry_after": 0.2, "count": 1, "actions": ["stream"]}
        ],
    )
    m = await h.manager()
    served, attempts = await _stream(m, "stream storm")
    assert served == "primary:True"
    assert attempts == ["429", "ok"]
    assert h.of(ev.RetryScheduled) == []  # waiting is not a retry
    assert len(h.of(ev.RateLimitWait)) == 1
    assert h.calls("fallback", "stream") == 0


async def test_streams_in_a_storm_are_released_through_the_gate_one_probe_first(
    h: Harness,
) -> None:
    # 20 streams meet a 429 storm: after the cool-down one probe goes first, the rest
    # follow on its success (the gate), and none is retried by the retry loop.
    calls = 20
    storm = {"kind": "status", "code": 429, "retry_after": 0.3, "count": 1, "actions": ["stream"]}
    h.emulator.configure("primary", faults=[storm])
    m = await h.manager(total_timeout=30.0, attempt_timeout=5.0)
    results = await asyncio.gather(*(_stream(m, f"streams {i}") for i in range(calls)))
    assert [served for served, _ in results] == ["primary:True"] * calls
    assert h.of(ev.RetryScheduled) == []
    records = [r for r in h.emulator.requests if r.model == "primary" and r.action == "stream"]
    # the first 429 set the cool-down: the other streams queued behind it did not call
    # the primary again before the probe's success released them
    assert [r.outcome for r in records].count("fault:status") == 1
    assert len(records) == calls + 1
    # the release_gate_waiters gauge's events: the streams waited there, then left
    waiters = [e.waiters for e in h.of(ev.GateWaiters) if e.model == "primary"]
    assert max(waiters) > 1
    assert waiters[-1] == 0


async def test_a_burst_on_a_flapping_primary_spends_only_its_first_slots_on_it(
    h: Harness,
) -> None:
    # 100 calls at once on a primary that alternates 200 / 503, its health unproven:
    # only its starting admission limit's worth go before outcomes are known; the
    # outlier detector ejects it and the calls queued behind move on without calling it.
    h.emulator.configure("primary", faults=[{"kind": "flap", "code": 503, "actions": ANSWERS}])
    m = await h.manager(total_timeout=30.0, attempt_timeout=5.0)
    outcomes = await _fire(h, m, 100, "flap")
    assert all(isinstance(o, str) for o in outcomes)  # every call answered
    start = m.settings.concurrency.per_model
    assert start == 16  # the default
    assert h.calls("primary") <= 2 * start  # (100 before the slow start: every call)
    opened = [t for t in h.of(ev.BreakerTransition) if t.model == "primary"]
    assert [t.to_state for t in opened][:1] == ["open"]  # ejected (or tripped)
    assert outcomes.count("fallback") >= 100 - start


async def test_a_model_back_from_an_ejection_slow_starts(h: Harness) -> None:
    m = await h.manager(total_timeout=30.0, attempt_timeout=5.0)
    start = m.settings.concurrency.per_model
    assert await _fire(h, m, 100, "warm") == ["primary"] * 100
    grown = m.chain[0].slots.limit
    assert grown > start  # the queue grew it: a healthy model is not throttled
    h.emulator.configure("primary", faults=[{"kind": "status", "code": 503, "actions": ANSWERS}])
    assert set(await _fire(h, m, 10, "down")) == {"fallback"}
    assert m.chain[0].breaker.snapshot.state is not BreakerState.CLOSED  # ejected
    assert m.chain[0].slots.limit == start  # it comes back from the starting limit
    # the admission gauges' events: the queue grew the limit, the ejection reset it
    admission = [e for e in h.of(ev.AdmissionChanged) if e.model == "primary"]
    assert max(e.queued for e in admission) > 0
    assert max(e.limit for e in admission) == int(grown)
    assert admission[-1].limit == start
