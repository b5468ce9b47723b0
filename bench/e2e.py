"""End to end: a `gemini_generate` round trip over stdio through the MCP server, against
a direct google-genai call to the same emulator (its own process), interleaved.

    python -m bench.e2e [--calls 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

from mcp import Client, StdioServerParameters

from bench.common import Row, emulator_process, median, ok, pct, table
from bench.startup import BARE

PROMPT = "What does an MCP server add to a Gemini call?"


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
    env = {
        **os.environ,
        "GEMINI_API_KEY": "bench",
        "GEMINI_FAILOVER_BASE_URL": base_url,
        "GEMINI_FAILOVER_MODELS": "bench-primary,bench-fallback",
        "GEMINI_FAILOVER_LOG_LEVEL": "error",
    }
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "gemini_failover.cli", "serve"], env=env
    )
    bare = StdioServerParameters(command=sys.executable, args=[BARE], env=env)
    via_mcp: list[float] = []
    via_sdk: list[float] = []
    via_bare: list[float] = []
    async with Client(params) as client, Client(bare) as bare_client:

        async def one_bare() -> float:
            t0 = time.perf_counter()
            await bare_client.call_tool("echo", {"text": PROMPT})
            return time.perf_counter() - t0

        async def one_mcp() -> float:
            t0 = time.perf_counter()
            result = await client.call_tool("gemini_generate", {"prompt": PROMPT})
            assert not result.is_error
            return time.perf_counter() - t0

        async def one_sdk() -> float:
            t0 = time.perf_counter()
            await direct.aio.models.generate_content(
                model="bench-primary", contents=PROMPT, config=config
            )
            return time.perf_counter() - t0

        for _ in range(30):
            await one_mcp()
            await one_sdk()
            await one_bare()
        for i in range(calls):
            if i % 2:
                via_sdk.append(await one_sdk())
                via_mcp.append(await one_mcp())
            else:
                via_mcp.append(await one_mcp())
                via_sdk.append(await one_sdk())
            via_bare.append(await one_bare())
    await direct.aio.aclose()
    mm, ms = median(via_mcp), median(via_sdk)
    added = (mm - ms) * 1e3
    floor = median(via_bare)
    rows = [
        Row(
            "gemini_generate round trip (median)",
            f"{mm * 1e3:.2f} ms",
            f"{ms * 1e3:.2f} ms (direct SDK)",
            f"+{added:.2f} ms",
            "<= +1 ms",
            ok(added <= 1.0),
        ),
        Row(
            "  of which the MCP stdio round trip itself",
            f"{floor * 1e3:.2f} ms",
            "bare MCPServer, echo tool",
        ),
        Row("  of which this server (tool, manager, provenance)", f"{added - floor * 1e3:.2f} ms"),
        Row(
            "p99",
            f"{pct(via_mcp, 99) * 1e3:.2f} ms",
            f"{pct(via_sdk, 99) * 1e3:.2f} ms",
            f"+{(pct(via_mcp, 99) - pct(via_sdk, 99)) * 1e3:.2f} ms",
            "",
            "",
        ),
    ]
    return table(f"MCP round trip over stdio ({calls} calls each, interleaved)", rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    with emulator_process() as url:
        print(asyncio.run(measure(url, args.calls)))


if __name__ == "__main__":
    main()
