"""Start-up: spawn `gemini-failover serve` (stdio) -> `initialize` answered ->
`tools/list` answered, against a bare MCPServer with one trivial tool, interleaved.

    python -m bench.startup [--runs 15]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from mcp import Client, StdioServerParameters

from bench.common import Row, median, ok, table

BARE = str(Path(__file__).with_name("bare_server.py"))


async def spawn_to_tools(params: StdioServerParameters) -> float:
    t0 = time.perf_counter()
    async with Client(params) as client:
        tools = await client.list_tools()
        elapsed = time.perf_counter() - t0
    assert tools.tools
    return elapsed


async def measure(runs: int) -> str:
    env = {**os.environ, "GEMINI_API_KEY": "bench-key", "GEMINI_FAILOVER_LOG_LEVEL": "error"}
    ours = StdioServerParameters(
        command=sys.executable, args=["-m", "gemini_failover.cli", "serve"], env=env
    )
    bare = StdioServerParameters(command=sys.executable, args=[BARE], env=env)
    a: list[float] = []
    b: list[float] = []
    for i in range(runs + 2):
        pair = [(ours, a), (bare, b)] if i % 2 else [(bare, b), (ours, a)]
        for params, out in pair:
            elapsed = await spawn_to_tools(params)
            if i >= 2:  # the first runs warm the OS file cache
                out.append(elapsed)
    ma, mb = median(a), median(b)
    rows = [
        Row(
            "spawn -> initialize + tools/list (median)",
            f"{ma * 1e3:.0f} ms",
            f"{mb * 1e3:.0f} ms (bare MCPServer)",
            f"{ma / mb:.3f}x",
            "<= 1.10x",
            ok(ma / mb <= 1.10),
        ),
    ]
    return table(f"Start-up over stdio ({runs} spawns each, interleaved)", rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    print(asyncio.run(measure(args.runs)))


if __name__ == "__main__":
    main()
