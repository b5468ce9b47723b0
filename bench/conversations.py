"""What continuing a conversation adds to a call: loading the thread and appending the
new exchange (the two store calls a continued generation makes on top of a stateless
one), against doing nothing in their place, interleaved in one run; in-process store
and Redis, on a typical thread and on a large one.

    python -m bench.conversations [--calls 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.common import Row, interleave, median, ok, pct, table
from bench.shared_state import redis_server
from gemini_failover.observability.logging import configure_logging
from gemini_failover.protocol import TextFile, Turn
from gemini_failover.state.conversations import (
    ConversationSettings,
    ConversationStore,
    Exchange,
    MemoryConversationStore,
)
from gemini_failover.state.redis import RedisConversationStore

#: (name, exchanges kept, characters of the answer; the question is a quarter of
#: that plus a file as long as the answer)
THREADS = [("typical thread", 10, 500), ("large thread", 20, 8000)]


def exchange(i: int, chars: int) -> Exchange:
    body = ("lorem ipsum dolor sit amet " * (chars // 27 + 1))[:chars]
    return Exchange(
        Turn("user", f"question {i}: {body[: chars // 4]}", (TextFile("notes.md", body),)),
        Turn("model", f"answer {i}: {body}"),
        served_by="gemini-2.5-flash",
        at=time.time(),
    )


async def continuation_cost(
    store: ConversationStore, exchanges: int, chars: int, calls: int
) -> tuple[list[float], list[float], int]:
    """(nothing, load + append) per call, in seconds, and the thread's stored bytes;
    the thread is kept full (each append drops the oldest exchange)."""
    cid = (await store.create()).conversation_id
    size = 0
    for i in range(exchanges):
        size = (await store.append(cid, exchange(i, chars))).size
    new = exchange(exchanges, chars)

    async def nothing() -> float:
        t0 = time.perf_counter()
        await asyncio.sleep(0)
        return time.perf_counter() - t0

    async def continued() -> float:
        t0 = time.perf_counter()
        await asyncio.sleep(0)
        thread = await store.load(cid)
        assert len(thread.exchanges) == exchanges
        await store.append(cid, new)
        return time.perf_counter() - t0

    for _ in range(50):  # warm-up: connections, script cache, allocator
        await continued()
    base, cost = await interleave(nothing, continued, calls)
    return base, cost, size


async def measure(redis_url: str, calls: int) -> str:
    rows: list[Row] = []
    for title, exchanges, chars in THREADS:
        settings = ConversationSettings(max_turns=2 * exchanges)
        memory = MemoryConversationStore(settings)
        redis = RedisConversationStore(
            redis_url, settings=settings, prefix=f"bench-{time.time_ns()}"
        )
        for store, target in ((memory, 1e-3), (redis, 2e-3)):
            base, cost, size = await continuation_cost(store, exchanges, chars, calls)
            thread = f"{title} ({exchanges} exchanges, {size / 1024:.0f} KiB)"
            delta = median(cost) - median(base)
            # the targets are for the typical thread; the large one is for scale
            typical = exchanges == THREADS[0][1]
            rows.append(
                Row(
                    f"{store.backend}, {thread}: load + append (median)",
                    f"{median(cost) * 1e3:.3f} ms",
                    f"{median(base) * 1e3:.3f} ms (nothing)",
                    f"+{delta * 1e3:.3f} ms",
                    f"< {target * 1e3:.0f} ms" if typical else "",
                    ok(delta < target) if typical else "",
                )
            )
            rows.append(
                Row(
                    f"{store.backend}, {thread}: load + append (p99)",
                    f"{pct(cost, 99) * 1e3:.3f} ms",
                    f"{pct(base, 99) * 1e3:.3f} ms (nothing)",
                    f"+{(pct(cost, 99) - pct(base, 99)) * 1e3:.3f} ms",
                    "",
                    "",
                )
            )
        await redis.aclose()
    return table("Conversation continuation (load + append) vs a stateless call", rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    configure_logging("warning")
    with redis_server() as redis_url:
        print(asyncio.run(measure(redis_url, args.calls)))


if __name__ == "__main__":
    main()
