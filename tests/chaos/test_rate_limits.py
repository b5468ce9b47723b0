"""Issue 13's "done when" lines at test scale, through the real google-genai SDK
against the emulator: rate-limit storms (waiting is not a retry, gradual release,
adaptive spill) and a prompt over a fallback's token window. Counts only: the timings
are bench/storm.py's."""

from __future__ import annotations

import asyncio

from gemini_failover.protocol import GenerationRequest
from gemini_failover.resilience import events as ev
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
    assert h.calls("primary") == 30  # one call each: never retried
    assert m.chain[1].slots.limit < m.settings.concurrency.per_model  # its 429s shrank it


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
