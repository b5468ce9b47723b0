"""Shared pieces of the benchmark scripts: an emulator in its own process, timing
helpers, and markdown tables. Ratios are always measured side by side in one run."""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def emulator_process(scenario: str | None = None) -> Iterator[str]:
    """Run `gemini-failover emulate` in its own process (so it does not share our GIL
    or event loop) and yield its base URL."""
    port = free_port()
    code = (
        "from gemini_failover.emulator import run_emulator; "
        f"run_emulator('127.0.0.1', {port}, {scenario!r})"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("emulator process did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


@dataclass
class Row:
    metric: str
    value: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    verdict: str = ""


def table(title: str, rows: Sequence[Row]) -> str:
    lines = [
        f"### {title}",
        "",
        "| metric | measured | baseline (same run) | ratio / delta | target | ok |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.metric} | {r.value} | {r.baseline} | {r.ratio} | {r.target} | {r.verdict} |"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}"
    )


def ok(flag: bool) -> str:
    return "yes" if flag else "NO"


async def interleave(
    first: Callable[[], Awaitable[float]], second: Callable[[], Awaitable[float]], calls: int
) -> tuple[list[float], list[float]]:
    """Time ``calls`` runs of each, alternating which goes first, so that drift in the
    machine's load touches both sides alike."""
    a: list[float] = []
    b: list[float] = []
    for i in range(calls):
        if i % 2:
            b.append(await second())
            a.append(await first())
        else:
            a.append(await first())
            b.append(await second())
    return a, b
