"""What the gateway costs: the google-genai SDK calling the emulator through
`gemini-failover gateway` vs calling the same emulator directly, interleaved in one run
(median and p99 per call), and throughput with 200 calls in flight.

The emulator and the gateway each run in their own process, as they would in
production, so the client, the gateway and the emulator do not share an event loop; the
gateway runs on its default loop (uvloop where installed).

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
from pathlib import Path
from typing import Any

from bench.common import Row, emulator_process, free_port, interleave, median, ok, pct, table

KEY = "bench-gateway-key"
MODEL = "bench-primary"
PROMPT = "How much does a failover gateway cost?"
CONCURRENCY = 200


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux /proc; 0 elsewhere). Unlike
    wall-clock latency, it hardly moves with the load other processes put on the
    machine."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def gateway_process(upstream: str) -> Iterator[tuple[str, int]]:
    """`gemini-failover gateway` in its own process, pointed at ``upstream``: its base
    URL and process id."""
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
        yield f"http://127.0.0.1:{port}", proc.pid
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


async def in_process_cpu(calls: int) -> float:
    """CPU seconds per request of the gateway's own code and the manager, in this
    process, with an upstream that answers at once (no HTTP on either side)."""
    from gemini_failover.config import load_settings
    from gemini_failover.gateway import build_gateway_app, gateway_security
    from gemini_failover.protocol import GenerationResult, ModelInfo, Usage
    from gemini_failover.server.runtime import Runtime

    class Upstream:  # stands in for GeminiBackend: answers at once
        async def generate(self, model: str, request: object, *, timeout: float) -> object:
            return GenerationResult("An answer.", "STOP", Usage(9, 3, 12), model)

        async def model_info(self, model: str, *, timeout: float) -> ModelInfo:
            return ModelInfo(model, 1_048_576, 65_536)

    runtime = Runtime(load_settings(api_key="bench", models=[MODEL], gateway_keys=[KEY]))
    await runtime.start(warm_up=False)
    real = runtime.manager.backend
    runtime.manager.backend = Upstream()  # type: ignore[assignment]
    app = build_gateway_app(runtime, gateway_security("127.0.0.1", [KEY]), keys=[KEY])
    body = b'{"contents": [{"role": "user", "parts": [{"text": "%s"}]}]}' % PROMPT.encode()
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1beta/models/auto:generateContent",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8080"), (b"x-goog-api-key", KEY.encode())],
    }
    never = asyncio.Event()

    async def send(message: Any) -> None:
        return None

    async def one() -> None:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await never.wait()  # a client that stays connected
            return {"type": "http.disconnect"}

        await app(dict(scope), receive, send)

    for _ in range(200):
        await one()
    t0 = time.process_time()
    for _ in range(calls):
        await one()
    spent = (time.process_time() - t0) / calls
    runtime.manager.backend = real  # closed with the runtime
    await runtime.aclose()
    return spent


async def measure(
    emulator: str, gateway: str, gateway_pid: int, calls: int, throughput_calls: int
) -> str:
    direct_client, gateway_client = _client(emulator, "bench"), _client(gateway, KEY)
    direct, through = _caller(direct_client, MODEL), _caller(gateway_client, "auto")
    for _ in range(100):  # warm up: connections, caches, models.get, the SDK
        await direct()
        await through()
    cpu_before = cpu_seconds(gateway_pid)
    g, d = await interleave(through, direct, calls)
    gateway_cpu = (cpu_seconds(gateway_pid) - cpu_before) / calls
    own_cpu = await in_process_cpu(calls)
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
            "gateway process CPU per call (HTTP in and out, upstream call included)",
            f"{gateway_cpu * 1e3:.3f} ms",
            "",
            "",
            "",
            "",
        ),
        # Not a share of the row above: in the gateway process the same code runs with
        # caches the client and the emulator have just used, and costs 2-3x this.
        Row(
            "gateway code + manager alone, in-process with warm caches (instant upstream)",
            f"{own_cpu * 1e3:.3f} ms",
            "",
            "",
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
    with emulator_process() as emulator, gateway_process(emulator) as (gateway, pid):
        print(asyncio.run(measure(emulator, gateway, pid, args.calls, args.throughput_calls)))


if __name__ == "__main__":
    main()
