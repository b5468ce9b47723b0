"""Shared state through Redis: manager overhead with the Redis store vs the memory
store (same run, interleaved), and how fast a breaker transition on one instance
reaches two others.

    python -m bench.shared_state [--calls 1000] [--transitions 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator

from bench.common import Row, emulator_process, free_port, interleave, median, ok, pct, table
from gemini_failover.config import load_settings
from gemini_failover.gemini.backend import GeminiBackend
from gemini_failover.observability.logging import configure_logging
from gemini_failover.protocol import GenerationRequest
from gemini_failover.resilience import events as ev
from gemini_failover.resilience.breaker import BreakerSnapshot, BreakerState
from gemini_failover.resilience.manager import FailoverManager
from gemini_failover.state.redis import RedisStateStore


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found: run .ci/ensure-tools.sh")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    proc = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        import redis

        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


async def overhead(base_url: str, redis_url: str, calls: int) -> list[Row]:
    models = ["bench-primary", "bench-fallback"]

    def manager(store: RedisStateStore | None) -> FailoverManager:
        settings = load_settings(api_key="b", base_url=base_url, models=models)
        return FailoverManager(settings, GeminiBackend(api_key="b", base_url=base_url), store=store)

    memory = manager(None)
    shared = manager(RedisStateStore(redis_url, prefix=f"bench-{time.time_ns()}"))
    await memory.start()
    await shared.start()
    request = GenerationRequest.from_prompt("Shared state costs how much?")

    async def timed(m: FailoverManager) -> float:
        t0 = time.perf_counter()
        await m.generate(request)
        return time.perf_counter() - t0

    for _ in range(50):
        await timed(memory)
        await timed(shared)

    async def on_memory() -> float:
        return await timed(memory)

    async def on_redis() -> float:
        return await timed(shared)

    a, b = await interleave(on_memory, on_redis, calls)
    await memory.aclose()
    await shared.aclose()
    ma, mb = median(a), median(b)
    return [
        Row(
            "per-call latency, Redis store (median)",
            f"{mb * 1e3:.3f} ms",
            f"{ma * 1e3:.3f} ms (memory store)",
            f"{mb / ma:.3f}x",
            "<= 1.05x",
            ok(mb / ma <= 1.05),
        ),
    ]


async def propagation(redis_url: str, transitions: int) -> list[Row]:
    prefix = f"bench-prop-{time.time_ns()}"
    settings = load_settings(api_key="b", base_url="http://127.0.0.1:9", models=["m1", "m2"])
    managers = [
        FailoverManager(
            settings,
            GeminiBackend(api_key="b", base_url="http://127.0.0.1:9"),
            store=RedisStateStore(redis_url, prefix=prefix),
        )
        for _ in range(3)
    ]
    for m in managers:
        await m.start()
    source, others = managers[0], managers[1:]
    delays: list[float] = []
    for i in range(transitions):
        arrived = [asyncio.Event() for _ in others]
        unsubscribe = []
        for event_flag, other in zip(arrived, others, strict=True):

            def on(event: ev.Event, flag: asyncio.Event = event_flag, epoch: int = 0) -> None:
                if isinstance(event, ev.BreakerTransition) and event.remote:
                    flag.set()

            unsubscribe.append(other.events.subscribe(on))
        breaker = source.chain[0].breaker
        state = BreakerState.OPEN if i % 2 == 0 else BreakerState.CLOSED
        now = time.time()
        snapshot = BreakerSnapshot(state, breaker.snapshot.epoch + 1, now, now + 60, 1, "bench")
        t0 = time.perf_counter()
        breaker.apply(snapshot)
        source.store.publish_breaker("m1", snapshot)
        await asyncio.wait_for(asyncio.gather(*(f.wait() for f in arrived)), 5)
        delays.append(time.perf_counter() - t0)
        for remove in unsubscribe:
            remove()
    for m in managers:
        await m.aclose()
    p99 = pct(delays, 99)
    return [
        Row(
            "breaker transition -> 2 other instances (median)",
            f"{median(delays) * 1e3:.2f} ms",
            "",
            "",
            "",
            "",
        ),
        Row(
            "breaker transition -> 2 other instances (p99)",
            f"{p99 * 1e3:.2f} ms",
            "",
            "",
            "<= 50 ms",
            ok(p99 <= 0.05),
        ),
    ]


async def measure(base_url: str, redis_url: str, calls: int, transitions: int) -> str:
    rows = await overhead(base_url, redis_url, calls)
    rows += await propagation(redis_url, transitions)
    return table("Shared state through Redis", rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--transitions", type=int, default=200)
    args = parser.parse_args()
    configure_logging("warning")  # the store logs its connections; keep stdout a table
    with redis_server() as redis_url, emulator_process() as url:
        print(asyncio.run(measure(url, redis_url, args.calls, args.transitions)))


if __name__ == "__main__":
    main()
