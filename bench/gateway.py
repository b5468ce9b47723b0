"""What the gateway costs: the google-genai SDK calling the emulator through
`gemini-failover gateway` vs calling the same emulator directly, interleaved in one run
(median and p99 per call), and throughput with 200 calls in flight.

The emulator and the gateway each run in their own process, as they would in
production, so the client, the gateway and the emulator do not share an event loop.

    python -m bench.gateway [--calls 1000] [--throughput-calls 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from bench.common import Row, emulator_process, free_port, interleave, median, ok, pct, table

KEY = "bench-gateway-key"
MODEL = "bench-primary"
PROMPT = "How much does a failover gateway cost?"
CONCURRENCY = 200


@contextlib.contextmanager
def gateway_process(upstream: str) -> Iterator[str]:
    """`gemini-failover gateway` in its own process, pointed at ``upstream``."""
    port = free_port()
    env = {
        **os.environ,
        "GEMINI_API_KEY": "bench",
        "GEMINI_FAILOVER_BASE_URL": upstream,
        "GEMINI_FAILOVER_MODELS": f"{MODEL},bench-fallback",
        "GEMINI_FAILOVER_GATEWAY_KEYS": KEY,
        "GEMINI_FAILOVER_CONCURRENCY__PER_MODEL": "256",
        "GEMINI_FAILOVER_LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gemini_failover.cli", "gateway", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("gateway process did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def _client(base_url: str, key: str) -> Any:
    import httpx2
    from google import genai
    from google.genai import types

    limits = httpx2.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    return genai.Client(
        api_key=key,
        http_options=types.HttpOptions(
            base_url=base_url,
            api_version="v1beta",
            retry_options=types.HttpRetryOptions(attempts=1),
            async_client_args={"limits": limits},
        ),
    )


def _caller(client: Any, model: str) -> Callable[[], Awaitable[float]]:
    from google.genai import types

    config = types.GenerateContentConfig(automatic_continuation=False)

    async def one() -> float:
        t0 = time.perf_counter()
        await client.aio.models.generate_content(model=model, contents=PROMPT, config=config)
        return time.perf_counter() - t0

    return one


async def _throughput(call: Callable[[], Awaitable[float]], total: int) -> float:
    """Calls per second with CONCURRENCY calls in flight."""
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    t0 = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for _ in range(CONCURRENCY):
            tg.create_task(worker())
    return total / (time.perf_counter() - t0)


async def measure(emulator: str, gateway: str, calls: int, throughput_calls: int) -> str:
    direct_client, gateway_client = _client(emulator, "bench"), _client(gateway, KEY)
    direct, through = _caller(direct_client, MODEL), _caller(gateway_client, "auto")
    for _ in range(100):  # warm up: connections, caches, models.get, the SDK
        await direct()
        await through()
    g, d = await interleave(through, direct, calls)
    direct_rate = await _throughput(direct, throughput_calls)
    gateway_rate = await _throughput(through, throughput_calls)
    await direct_client.aio.aclose()
    await gateway_client.aio.aclose()

    added_ms = (median(g) - median(d)) * 1e3
    rows = [
        Row(
            "median per call",
            f"{median(g) * 1e3:.3f} ms",
            f"{median(d) * 1e3:.3f} ms",
            f"+{added_ms:.3f} ms",
            "<= +0.5 ms",
            ok(added_ms <= 0.5),
        ),
        Row(
            "p99 per call",
            f"{pct(g, 99) * 1e3:.3f} ms",
            f"{pct(d, 99) * 1e3:.3f} ms",
            f"+{(pct(g, 99) - pct(d, 99)) * 1e3:.3f} ms",
            "",
            "",
        ),
        Row(
            f"throughput, {CONCURRENCY} in flight",
            f"{gateway_rate:.0f} calls/s",
            f"{direct_rate:.0f} calls/s",
            f"{gateway_rate / direct_rate:.2f}x",
            "",
            "",
        ),
    ]
    title = (
        f"Gateway overhead: SDK -> gateway -> emulator vs SDK -> emulator "
        f"({calls} calls each, interleaved; throughput: {throughput_calls} calls)"
    )
    return table(title, rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--throughput-calls", type=int, default=4000)
    args = parser.parse_args()
    with emulator_process() as emulator, gateway_process(emulator) as gateway:
        print(asyncio.run(measure(emulator, gateway, args.calls, args.throughput_calls)))


if __name__ == "__main__":
    main()
