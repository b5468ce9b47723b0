"""How much a hostile JSON Schema job delays the event loop: run in a thread vs in the
worker process (what the server does). The job validates a string against a
backtracking ``pattern`` for about a second; meanwhile a 1 ms timer measures how late
the loop wakes up.

    python -m bench.schema_guard
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any

from gemini_failover import jsonschema_worker
from gemini_failover.jsonschema_guard import AnswerInvalid, encode, prepare, validate_answer

SCHEMA = {"type": "string", "pattern": "^(.+)+!$"}
#: Backtracks for roughly a second on this machine (doubling per character).
ANSWER = '"' + "a" * 25 + '"'


async def lag_during(job: Callable[[], Coroutine[Any, Any, None]]) -> tuple[float, float, float]:
    """(job seconds, median and max lateness of a 1 ms timer while it ran, in ms)."""
    lags: list[float] = []
    task = asyncio.create_task(job())
    start = time.perf_counter()
    while not task.done():
        before = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append((time.perf_counter() - before - 0.001) * 1000)
    await task
    elapsed = time.perf_counter() - start
    lags.sort()
    return elapsed, lags[len(lags) // 2], lags[-1]


async def main() -> None:
    prepared = prepare(encode(SCHEMA))

    def validate_here() -> None:
        with contextlib.suppress(AnswerInvalid):
            validate_answer(prepared, ANSWER)

    async def in_thread() -> None:
        await asyncio.to_thread(validate_here)

    async def in_worker() -> None:
        with contextlib.suppress(AnswerInvalid):
            await jsonschema_worker.validate(SCHEMA, ANSWER)

    await jsonschema_worker.validate(SCHEMA, '"a!"')  # start the worker first
    print("### Event-loop lateness of a 1 ms timer during a backtracking pattern\n")
    print("| job runs in | job time | median lateness | worst lateness |")
    print("|---|---|---|---|")
    for name, job in (("a thread", in_thread), ("the worker process", in_worker)):
        elapsed, median, worst = await lag_during(job)
        print(f"| {name} | {elapsed:.2f} s | {median:.2f} ms | {worst:.2f} ms |")


if __name__ == "__main__":
    asyncio.run(main())
