"""Mid-stream failover cost: time from the cut of the primary's stream to the first
continued delta, against the fallback's own time to first token for the same
continuation request, interleaved in one run.

    python -m bench.continuation [--runs 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time

from bench.common import Row, emulator_process, median, ok, pct, table
from gemini_failover.config import load_settings
from gemini_failover.emulator import expected_text, stream_chunks_for
from gemini_failover.gemini.backend import GeminiBackend
from gemini_failover.protocol import GenerationRequest
from gemini_failover.resilience import events as ev
from gemini_failover.resilience.continuation import continuation_request
from gemini_failover.resilience.manager import FailoverManager

CUT_AFTER = 4
SCENARIO = {
    "models": {
        "bench-primary": {
            "faults": [{"kind": "stream_cut", "after": CUT_AFTER, "actions": ["stream"]}]
        }
    }
}


async def measure(base_url: str, runs: int) -> str:
    settings = load_settings(
        api_key="bench",
        base_url=base_url,
        models=["bench-primary", "bench-fallback"],
        retry={"max_attempts_per_model": 1},
        breaker={"consecutive_failures": 1_000_000, "minimum_throughput": 1_000_000},
        # every stream is cut on purpose: the primary must not be ejected as an outlier
        outlier={"consecutive_errors": 1_000_000, "minimum_requests": 1_000_000},
    )
    manager = FailoverManager(settings, GeminiBackend(api_key="bench", base_url=base_url))
    direct = GeminiBackend(api_key="bench", base_url=base_url)
    cut_at: list[float] = []

    def on_event(event: ev.Event) -> None:
        if isinstance(event, ev.AttemptFinished) and event.model == "bench-primary":
            cut_at.append(time.perf_counter())

    manager.events.subscribe(on_event)
    gaps: list[float] = []
    ttfts: list[float] = []
    for i in range(runs + 20):
        prompt = f"Tell me about resilience, take {i}."
        request = GenerationRequest.from_prompt(prompt)
        # the manager: cut after CUT_AFTER chunks, continued on the fallback
        cut_at.clear()
        first_after: float | None = None
        async for _ in manager.stream(request):
            if cut_at and first_after is None:
                first_after = time.perf_counter()
        assert first_after is not None and cut_at
        # the fallback alone, same continuation request
        sent = "".join(stream_chunks_for(expected_text(prompt), 8)[:CUT_AFTER])
        t0 = time.perf_counter()
        async for _ in direct.stream(
            "bench-fallback", continuation_request(request, sent), timeout=10
        ):
            ttft = time.perf_counter() - t0
            break
        if i >= 20:  # warm-up done
            gaps.append(first_after - cut_at[0])
            ttfts.append(ttft)
    await manager.aclose()
    await direct.aclose()
    gm, tm = median(gaps), median(ttfts)
    added_ms = (gm - tm) * 1e3
    rows = [
        Row(
            "cut -> first continued delta (median)",
            f"{gm * 1e3:.2f} ms",
            f"{tm * 1e3:.2f} ms (fallback TTFT)",
            f"+{added_ms:.2f} ms",
            "<= +5 ms",
            ok(added_ms <= 5),
        ),
        Row(
            "p99",
            f"{pct(gaps, 99) * 1e3:.2f} ms",
            f"{pct(ttfts, 99) * 1e3:.2f} ms",
            f"+{(pct(gaps, 99) - pct(ttfts, 99)) * 1e3:.2f} ms",
            "",
            "",
        ),
    ]
    return table(f"Mid-stream continuation ({runs} cut streams)", rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(SCENARIO, f)
        f.flush()
        with emulator_process(f.name) as url:
            print(asyncio.run(measure(url, args.runs)))


if __name__ == "__main__":
    main()
