"""Shared pieces of the benchmark scripts: an emulator in its own process, timing
helpers, and markdown tables. Ratios are always measured side by side in one run."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used, so that importing bench.common stays cheap
    from gemini_failover.config import Settings
    from gemini_failover.resilience.manager import FailoverManager


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


def markdown_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A titled markdown table with any columns (``table`` has fixed ones)."""
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def peak_window(times: Sequence[float], window: float) -> int:
    """The most timestamps falling in any half-open interval of ``window`` seconds."""
    ordered = sorted(times)
    best = start = 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def switches(values: Sequence[object]) -> int:
    """How many times the value changes from one item to the next."""
    return sum(1 for a, b in itertools.pairwise(values) if a != b)


class EmulatorControl:
    """The emulator's HTTP control API (/_emulator/...), so one scenario can reset and
    reconfigure an emulator running in another process (or in the same loop)."""

    def __init__(self, base_url: str) -> None:
        import httpx2

        self._http = httpx2.AsyncClient(base_url=base_url, timeout=30.0)

    async def reset(self) -> None:
        (await self._http.post("/_emulator/reset")).raise_for_status()

    async def configure(
        self,
        model: str,
        profile: dict[str, Any] | None = None,
        faults: list[dict[str, Any]] | None = None,
    ) -> None:
        body = {"profile": profile or {}, "faults": faults or []}
        (await self._http.put(f"/_emulator/models/{model}", json=body)).raise_for_status()

    async def requests(self, **filters: str) -> list[dict[str, Any]]:
        """The request log (records as dicts: model, action, status, time, outcome,
        ...), oldest first, filtered by model / action / outcome."""
        answer = await self._http.get("/_emulator/requests", params=filters)
        answer.raise_for_status()
        records: list[dict[str, Any]] = answer.json()["requests"]
        return records

    async def aclose(self) -> None:
        await self._http.aclose()


# -- driving the real FailoverManager through its public interface ------------------------


def build_settings(
    base_url: str, models: Sequence[str], overrides: Mapping[str, Any], **scenario: Any
) -> Settings:
    """Settings for a benchmark: ``overrides`` (a variant under test, merged into the
    nested groups) over today's defaults; the scenario's own values (chain, endpoint,
    deadline) win, since they define the scenario rather than the policy."""
    from gemini_failover.config import load_settings

    values = _merge({}, overrides)
    values.update(api_key="bench", base_url=base_url, models=list(models), **scenario)
    if "total_timeout" in scenario:  # attempt_timeout may not exceed it
        values["attempt_timeout"] = min(
            float(values["total_timeout"]), float(values.get("attempt_timeout", 30.0))
        )
    return load_settings(**values)


def _merge(into: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value
    return into


@contextlib.asynccontextmanager
async def running_manager(settings: Settings) -> AsyncIterator[FailoverManager]:
    """A started manager built as the server builds one (Settings plus a google-genai
    backend), closed on exit."""
    from gemini_failover.gemini.backend import GeminiBackend
    from gemini_failover.resilience.manager import FailoverManager

    key = settings.api_key.get_secret_value() if settings.api_key else ""
    backend = GeminiBackend(
        api_key=key, base_url=settings.base_url, api_version=settings.api_version
    )
    manager = FailoverManager(settings, backend)
    await manager.start()
    try:
        yield manager
    finally:
        await manager.aclose()


@dataclass(frozen=True)
class Outcome:
    """One ``manager.generate`` call, as its caller sees it."""

    served_by: str | None
    category: str | None  # RequestFailed.category, "unfinished", or None when answered
    retry_after: float | None
    done_at: float  # perf_counter at completion: the completion order


async def fire(
    manager: FailoverManager,
    prompts: Sequence[str],
    *,
    concurrency: int,
    limit: float,
    interval: float = 0.0,
) -> list[Outcome]:
    """Send each prompt through ``manager.generate``, at most ``concurrency`` at once;
    with ``interval``, call i starts ``i * interval`` seconds in (a sleep that paces the
    arrivals). Calls still running after ``limit`` seconds are cancelled and reported
    as "unfinished", so a benchmark always ends."""
    from gemini_failover.protocol import GenerationRequest
    from gemini_failover.resilience.results import RequestFailed

    gate = asyncio.Semaphore(concurrency)

    async def one(i: int, prompt: str) -> Outcome:
        if interval:
            await asyncio.sleep(i * interval)
        async with gate:
            try:
                result = await manager.generate(GenerationRequest.from_prompt(prompt))
            except RequestFailed as exc:
                return Outcome(None, exc.category, exc.retry_after, time.perf_counter())
            return Outcome(result.provenance.served_by, None, None, time.perf_counter())

    tasks = [asyncio.create_task(one(i, p)) for i, p in enumerate(prompts)]
    done, pending = await asyncio.wait(tasks, timeout=limit)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    now = time.perf_counter()
    return [t.result() if t in done else Outcome(None, "unfinished", None, now) for t in tasks]
