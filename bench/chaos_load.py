"""Chaos load: many requests at high concurrency against an emulator (its own
process) with mixed faults. Reports availability, latency, fallback share, primary
attempts per request and peak RSS.

    python -m bench.chaos_load [--requests 10000] [--concurrency 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import tempfile
import time
from collections import Counter

from bench.common import Row, emulator_process, median, ok, pct, table
from gemini_failover.config import load_settings
from gemini_failover.gemini.backend import GeminiBackend
from gemini_failover.protocol import GenerationRequest
from gemini_failover.resilience import events as ev
from gemini_failover.resilience.manager import FailoverManager
from gemini_failover.resilience.results import RequestFailed

SCENARIO = {
    "models": {
        # the primary flaps (every other call a 503), is slowish, and has a rate limit
        "load-primary": {
            "faults": [
                {"kind": "latency", "ms": 3},
                {"kind": "rate_limit", "rpm": 600_000, "quota": "minute"},
                {"kind": "flap", "code": 503},
            ]
        },
        "load-fallback": {"faults": [{"kind": "latency", "ms": 5}]},
    }
}


async def run(base_url: str, total: int, concurrency: int) -> str:
    settings = load_settings(
        api_key="bench",
        base_url=base_url,
        models=["load-primary", "load-fallback"],
        total_timeout=30,
        attempt_timeout=10,
        concurrency={"per_model": concurrency, "max_waiting": total},
        retry={"backoff_initial": 0.005, "backoff_max": 0.05},
        breaker={"break_seconds": 0.5, "sustained_health_seconds": 1.0},
    )
    manager = FailoverManager(settings, GeminiBackend(api_key="bench", base_url=base_url))
    attempts: Counter[str] = Counter()

    def count(event: ev.Event) -> None:
        if isinstance(event, ev.AttemptFinished):
            attempts[event.model] += 1

    manager.events.subscribe(count)
    semaphore = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    served: Counter[str] = Counter()
    failures: Counter[str] = Counter()

    async def one(i: int) -> None:
        async with semaphore:
            t0 = time.perf_counter()
            try:
                result = await manager.generate(GenerationRequest.from_prompt(f"load {i % 50}"))
            except RequestFailed as exc:
                failures[exc.category] += 1
            else:
                served[result.provenance.served_by or "?"] += 1
            latencies.append(time.perf_counter() - t0)

    t_start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(total)))
    elapsed = time.perf_counter() - t_start
    await manager.aclose()

    ok_count = sum(served.values())
    availability = ok_count / total
    fallback_share = served["load-fallback"] / max(1, ok_count)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = [
        Row("availability", f"{availability:.4%}", "", "", ">= 99.9%", ok(availability >= 0.999)),
        Row("throughput", f"{total / elapsed:.0f} req/s", "", "", "", ""),
        Row(
            "latency p50 / p99",
            f"{median(latencies) * 1e3:.1f} / {pct(latencies, 99) * 1e3:.1f} ms",
            "",
            "",
            "",
            "",
        ),
        Row("served by fallback", f"{fallback_share:.1%}", "", "", "", ""),
        Row(
            "primary attempts per request",
            f"{attempts['load-primary'] / total:.2f}",
            "",
            "",
            "",
            "",
        ),
        Row("failed requests", str(dict(failures) or 0), "", "", "", ""),
        Row("peak RSS", f"{rss_mb:.0f} MB", "", "", "", ""),
    ]
    return table(
        f"Chaos load: {total:,} requests, {concurrency} concurrent, flapping primary", rows
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=200)
    args = parser.parse_args()
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(SCENARIO, f)
        f.flush()
        with emulator_process(f.name) as url:
            print(asyncio.run(run(url, args.requests, args.concurrency)))


if __name__ == "__main__":
    main()
