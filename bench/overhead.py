"""Per-call latency through the FailoverManager vs a direct google-genai call to the
same emulator (its own process), interleaved in one run. A plain text request takes
the backend's direct path (gemini/wire.py); the last row is the same manager over the
SDK path, which requests with files, tools or thinking take.

    python -m bench.overhead [--calls 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.common import Row, emulator_process, interleave, median, ok, pct, table
from gemini_failover.config import load_settings
from gemini_failover.gemini.backend import GeminiBackend
from gemini_failover.protocol import GenerationRequest
from gemini_failover.resilience.manager import FailoverManager


async def measure(base_url: str, calls: int) -> str:
    from google import genai
    from google.genai import types

    direct = genai.Client(
        api_key="bench",
        http_options=types.HttpOptions(
            base_url=base_url,
            api_version="v1beta",
            retry_options=types.HttpRetryOptions(attempts=1),
        ),
    )
    config = types.GenerateContentConfig(automatic_continuation=False)
    settings = load_settings(
        api_key="bench", base_url=base_url, models=["bench-primary", "bench-fallback"]
    )
    manager = FailoverManager(settings, GeminiBackend(api_key="bench", base_url=base_url))
    # the same manager over the SDK path (what requests with files, tools or thinking take)
    sdk_backend = GeminiBackend(api_key="bench", base_url=base_url, direct=False)
    via_sdk = FailoverManager(settings, sdk_backend)
    request = GenerationRequest.from_prompt("How much does a failover manager cost?")
    contents = [{"role": "user", "parts": [{"text": request.contents[0].text}]}]

    async def one_direct() -> float:
        t0 = time.perf_counter()
        await direct.aio.models.generate_content(
            model="bench-primary", contents=contents, config=config
        )
        return time.perf_counter() - t0

    async def one_managed() -> float:
        t0 = time.perf_counter()
        await manager.generate(request)
        return time.perf_counter() - t0

    async def one_via_sdk() -> float:
        t0 = time.perf_counter()
        await via_sdk.generate(request)
        return time.perf_counter() - t0

    for _ in range(50):  # warm up both paths (connections, caches, models.get)
        await one_direct()
        await one_managed()
        await one_via_sdk()
    m, d = await interleave(one_managed, one_direct, calls)
    s, d2 = await interleave(one_via_sdk, one_direct, calls)
    await manager.aclose()
    await via_sdk.aclose()
    await direct.aio.aclose()

    md, mm = median(d), median(m)
    added_us = (mm - md) * 1e6
    rows = [
        Row(
            "median per call",
            f"{mm * 1e3:.3f} ms",
            f"{md * 1e3:.3f} ms",
            f"{mm / md:.3f}x",
            "<= 1.05x",
            ok(mm / md <= 1.05),
        ),
        Row("added per call (median)", f"{added_us:.0f} us", "", "", "< 50 us", ok(added_us < 50)),
        Row(
            "p99 per call",
            f"{pct(m, 99) * 1e3:.3f} ms",
            f"{pct(d, 99) * 1e3:.3f} ms",
            f"{pct(m, 99) / pct(d, 99):.3f}x",
            "",
            "",
        ),
        Row(
            "median per call, the manager over the SDK path (files, tools, thinking)",
            f"{median(s) * 1e3:.3f} ms",
            f"{median(d2) * 1e3:.3f} ms",
            f"{median(s) / median(d2):.3f}x",
            "",
            "",
        ),
    ]
    return table(f"Manager overhead ({calls} calls each, interleaved)", rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    with emulator_process() as url:
        print(asyncio.run(measure(url, args.calls)))


if __name__ == "__main__":
    main()
