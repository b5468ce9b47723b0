"""What endpoints cost per call, interleaved in one run against one emulator (its own
process): the manager over one GeminiBackend (today's set-up) vs the same chain through
EndpointsBackend on a named endpoint (the key split and dispatch), vs a Vertex AI
endpoint (project mode, fixed token: the SDK's Vertex path), and a request whose first
pair is skipped for a per-day quota so the same model on the other endpoint serves.

    python -m bench.endpoints [--calls 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.common import Row, emulator_process, interleave, median, ok, pct, table
from gemini_failover.config import load_settings
from gemini_failover.gemini.backend import GeminiBackend
from gemini_failover.gemini.endpoints import build_backend
from gemini_failover.protocol import GenerationRequest
from gemini_failover.resilience.manager import FailoverManager
from gemini_failover.state import CooldownKind

MODEL = "bench-pro"


def endpoints(base_url: str) -> dict[str, Any]:
    return {
        "studio": {"api_key": "bench", "base_url": base_url},
        "vertex": {
            "kind": "vertex",
            "project": "bench",
            "location": "us-central1",
            "access_token": "emulator-token",  # the emulator's default vertex_token
            "base_url": base_url,
        },
    }


async def measure(base_url: str, calls: int) -> str:
    request = GenerationRequest.from_prompt("What does a second quota pool cost?")
    plain = load_settings(api_key="bench", base_url=base_url, models=[MODEL, "bench-flash"])
    pairs = load_settings(
        api_key="bench",
        endpoints=endpoints(base_url),
        models=[f"studio:{MODEL}", f"vertex:{MODEL}"],
        embedding_models=["studio:bench-embed"],
    )
    vertex_first = pairs.model_copy(update={"models": [f"vertex:{MODEL}", f"studio:{MODEL}"]})
    managers = {
        "one backend": FailoverManager(plain, GeminiBackend(api_key="bench", base_url=base_url)),
        "endpoints": FailoverManager(pairs, build_backend(pairs)),
        "vertex": FailoverManager(vertex_first, build_backend(vertex_first)),
        "skip": FailoverManager(pairs, build_backend(pairs)),
    }
    skip = managers["skip"]
    # studio's pair has spent its day: every request skips it for vertex's
    skip.chain.set_cooldown(skip.chain[0], CooldownKind.QUOTA_EXHAUSTED, 86_400.0)

    def timed(manager: FailoverManager) -> Callable[[], Awaitable[float]]:
        async def one() -> float:
            t0 = time.perf_counter()
            await manager.generate(request)
            return time.perf_counter() - t0

        return one

    calls_of = {name: timed(m) for name, m in managers.items()}
    for _ in range(50):  # warm up every path (connections, caches, models.get)
        for one in calls_of.values():
            await one()
    base, via = await interleave(calls_of["one backend"], calls_of["endpoints"], calls)
    base2, vertex = await interleave(calls_of["one backend"], calls_of["vertex"], calls)
    base3, skipped = await interleave(calls_of["one backend"], calls_of["skip"], calls)
    for manager in managers.values():
        await manager.aclose()

    def rows(label: str, measured: list[float], baseline: list[float], target: float) -> list[Row]:
        mm, mb = median(measured), median(baseline)
        return [
            Row(
                f"{label}: median per call",
                f"{mm * 1e3:.3f} ms",
                f"{mb * 1e3:.3f} ms",
                f"{mm / mb:.3f}x",
                f"<= {target:.2f}x",
                ok(mm / mb <= target),
            ),
            Row(
                f"{label}: p99 per call",
                f"{pct(measured, 99) * 1e3:.3f} ms",
                f"{pct(baseline, 99) * 1e3:.3f} ms",
                f"{pct(measured, 99) / pct(baseline, 99):.3f}x",
                "",
                "",
            ),
        ]

    out = [
        *rows("named Gemini API endpoint (dispatch)", via, base, 1.02),
        *rows("Vertex AI endpoint (project mode)", vertex, base2, 1.10),
        *rows("first pair skipped (day quota), vertex serves", skipped, base3, 1.10),
    ]
    title = f"Endpoints vs one backend ({calls} calls each, interleaved, same emulator)"
    return table(title, out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    with emulator_process() as url:
        print(asyncio.run(measure(url, args.calls)))


if __name__ == "__main__":
    main()
