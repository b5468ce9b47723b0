"""What continuing a conversation adds to a call: loading the thread and appending the
new exchange (the two store calls a continued generation makes on top of a stateless
one), against doing nothing in their place, interleaved in one run; in-process store
and Redis, on a typical thread and on a large one.

Also the tool path (``gemini_failover.tools.threads``: what gemini_generate does around
the manager call): a stateless call now starts a thread (one create), a continued one
loads it and appends (the same two store calls, plus building the request and the
exchange).

    python -m bench.conversations [--calls 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, cast

from bench.common import Row, interleave, median, ok, pct, table
from bench.shared_state import redis_server
from gemini_failover.observability.logging import configure_logging
from gemini_failover.protocol import TextFile, Turn, Usage
from gemini_failover.resilience.results import Provenance, Result
from gemini_failover.state.conversations import (
    ConversationSettings,
    ConversationStore,
    Exchange,
    MemoryConversationStore,
)
from gemini_failover.state.redis import RedisConversationStore
from gemini_failover.tools import threads

if TYPE_CHECKING:
    from gemini_failover.resilience.manager import FailoverManager

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


async def tool_path_cost(
    store: ConversationStore, calls: int
) -> tuple[list[float], list[float], list[float]]:
    """(nothing, a stateless tool call's thread bookkeeping, a continued call's) per
    call, in seconds, on a typical thread (the manager call itself left out: it is the
    same on every side)."""
    # threads needs only the manager's conversation store
    manager = cast("FailoverManager", SimpleNamespace(conversations=store))
    cid = ""
    for i in range(THREADS[0][1]):
        first = exchange(i, THREADS[0][2])
        thread = await threads.load(manager, cid or None)
        result = Result(first.model.text, "STOP", Usage(), Provenance(request_id="b"))
        cid = (await threads.save(manager, thread, (first.user,), result)).conversation_id
    new = exchange(99, THREADS[0][2])
    result = Result(new.model.text, "STOP", Usage(), Provenance(request_id="b"))

    async def nothing() -> float:
        t0 = time.perf_counter()
        await asyncio.sleep(0)
        return time.perf_counter() - t0

    async def stateless() -> float:
        t0 = time.perf_counter()
        await asyncio.sleep(0)
        await threads.save(manager, await threads.load(manager, None), (new.user,), result)
        return time.perf_counter() - t0

    async def continued() -> float:
        t0 = time.perf_counter()
        await asyncio.sleep(0)
        thread = await threads.load(manager, cid)
        await threads.save(manager, thread, (new.user,), result)
        return time.perf_counter() - t0

    for _ in range(50):
        await stateless()
        await continued()
    base, fresh = await interleave(nothing, stateless, calls)
    _, cont = await interleave(nothing, continued, calls)
    return base, fresh, cont


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
    settings = ConversationSettings(max_turns=2 * THREADS[0][1])
    memory = MemoryConversationStore(settings)
    redis = RedisConversationStore(redis_url, settings=settings, prefix=f"bench-{time.time_ns()}")
    for store, target in ((memory, 1e-3), (redis, 2e-3)):
        base, fresh, cont = await tool_path_cost(store, calls)
        for what, cost in (("new thread (a stateless call)", fresh), ("continued", cont)):
            delta = median(cost) - median(base)
            rows.append(
                Row(
                    f"{store.backend}, tool path, {what} (median)",
                    f"{median(cost) * 1e3:.3f} ms",
                    f"{median(base) * 1e3:.3f} ms (nothing)",
                    f"+{delta * 1e3:.3f} ms",
                    f"< {target * 1e3:.0f} ms",
                    ok(delta < target),
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
