"""`gemini-failover demo`: the offline outage drill.

An in-process Gemini emulator, the real MCP server (`gemini-failover serve`) as a
stdio subprocess pointed at it, and an MCP client driving a scripted story:

1. normal traffic: the primary serves everything;
2. a 429 storm on the primary: back off and wait, never stampede the fallback;
3. a stream cut half-way: continued on the fallback, without repeating a word;
4. the primary goes down (503): retries, breaker opens, the fallback takes over,
   not one failed call;
5. the primary recovers: half-open probes, sustained health, switch back.

A live terminal view (rich) shows each call, the model that served it, the breaker
states and counters; without a TTY it prints plain lines. The exit status is 0 only
if every phase behaved as expected.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from gemini_failover.timeline import Timeline

PRIMARY = "gemini-pro-latest"
FALLBACK = "gemini-flash-latest"


@dataclass
class CallRecord:
    phase: str
    tool: str
    served_by: str
    attempts: list[str]
    failovers: list[str]
    spans: int
    latency_ms: float
    error: str | None = None


@dataclass
class Check:
    phase: str
    what: str
    passed: bool
    detail: str = ""


@dataclass
class PhaseSummary:
    name: str
    story: str
    shows: str
    calls: int = 0
    failed: int = 0
    failovers: int = 0
    retries: int = 0
    sheds: int = 0
    continuations: int = 0
    checks: list[Check] = field(default_factory=list)


class View:
    """Live rich view on a TTY, plain lines otherwise."""

    def __init__(self, console: Console, live: bool) -> None:
        self.console = console
        self.live_enabled = live
        self.calls: list[CallRecord] = []
        self.health: dict[str, Any] = {}
        self.phase = ""
        self.story = ""
        self._live: Live | None = None

    def __enter__(self) -> View:
        if self.live_enabled:
            self._live = Live(self._render(), console=self.console, refresh_per_second=8)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def say(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(text, highlight=False, markup=False)
        else:
            print(text, flush=True)

    def set_phase(self, index: int, name: str, story: str) -> None:
        self.phase, self.story = name, story
        self.say(f"\n== phase {index}: {name} - {story}")
        self._refresh()

    def add(self, call: CallRecord) -> None:
        self.calls.append(call)
        if self._live is None:
            outcome = call.error or f"served by {call.served_by}"
            extra = f" failover: {'; '.join(call.failovers)}" if call.failovers else ""
            self.say(
                f"   {call.tool:<16} {outcome:<40} attempts={','.join(call.attempts)}"
                f"{extra} {call.latency_ms:.0f} ms"
            )
        self._refresh()

    def set_health(self, health: dict[str, Any]) -> None:
        self.health = health
        self._refresh()

    def check(self, check: Check) -> None:
        mark = "PASS" if check.passed else "FAIL"
        self.say(f"   [{mark}] {check.what}" + (f" ({check.detail})" if check.detail else ""))

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render())

    def _render(self) -> Group:
        calls = Table(title=f"{self.phase}: {self.story}" if self.phase else "starting...")
        for column in ("phase", "tool", "served by", "attempts", "failovers", "ms"):
            calls.add_column(column)
        for c in self.calls[-12:]:
            served = Text(
                c.error or c.served_by,
                style="red" if c.error else ("green" if c.served_by == PRIMARY else "yellow"),
            )
            calls.add_row(
                c.phase,
                c.tool,
                served,
                " ".join(c.attempts),
                " ".join(c.failovers),
                f"{c.latency_ms:.0f}",
            )
        models = Table(title="models")
        for column in ("model", "role", "breaker", "error rate", "active"):
            models.add_column(column)
        for m in self.health.get("models", []):
            state = m["breaker"]["state"]
            style = {"closed": "green", "half_open": "yellow", "open": "red"}.get(state, "")
            models.add_row(
                m["model"],
                m["role"],
                Text(state, style=style),
                f"{m['error_rate']:.0%}",
                "*" if m["active"] else "",
            )
        status = self.health.get("status", "?")
        return Group(
            calls,
            models,
            Panel(
                f"status: {status}   calls: {len(self.calls)}   failed: "
                f"{sum(1 for c in self.calls if c.error)}"
            ),
        )


class Drill:
    def __init__(self, view: View, pace: float) -> None:
        self.view = view
        self.pace = pace
        self.summaries: list[PhaseSummary] = []
        self.client: Any = None
        self.emulator: Any = None
        self.timeline = Timeline()  # what `--timeline FILE` draws

    # -- plumbing -------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        result = await self.client.read_resource("health://status")
        doc: dict[str, Any] = json.loads(result.contents[0].text)
        self.view.set_health(doc)
        self.timeline.health(doc)
        return doc

    async def call(
        self,
        tool: str,
        arguments: dict[str, Any],
        progress: Callable[[float, float | None, str | None], Awaitable[None]] | None = None,
    ) -> dict[str, Any] | None:
        summary = self.summaries[-1]
        t0, started = time.perf_counter(), self.timeline.now()
        result = await self.client.call_tool(tool, arguments, progress_callback=progress)
        latency = (time.perf_counter() - t0) * 1000
        summary.calls += 1
        if result.is_error:
            self.timeline.call(summary.name, tool, started, None)
            message = " ".join(getattr(c, "text", "") for c in result.content)
            summary.failed += 1
            if "rate limited" in message:
                summary.sheds += 1
            self.view.add(CallRecord(summary.name, tool, "-", [], [], 0, latency, message))
            return None
        data: dict[str, Any] = result.structured_content or {}
        self.timeline.call(summary.name, tool, started, data)
        attempts = [f"{a['model'].split('-')[1]}:{a['outcome']}" for a in data["attempts"]]
        failovers = [f"{f['from']}->{f['to']} ({f['reason']})" for f in data["failovers"]]
        models_tried = [a["model"] for a in data["attempts"]]
        summary.failovers += len(data["failovers"])
        summary.retries += sum(
            1 for i in range(1, len(models_tried)) if models_tried[i] == models_tried[i - 1]
        )
        summary.continuations += max(0, len(data.get("spans", [])) - 1)
        self.view.add(
            CallRecord(
                summary.name,
                tool,
                data["served_by"],
                attempts,
                failovers,
                len(data.get("spans", [])),
                latency,
            )
        )
        await self.health()
        return data

    def expect(self, what: str, passed: bool, detail: str = "") -> None:
        check = Check(self.summaries[-1].name, what, passed, detail)
        self.summaries[-1].checks.append(check)
        self.view.check(check)

    async def pause(self) -> None:
        if self.pace:
            await asyncio.sleep(self.pace)  # pacing for human eyes, not a wait for state

    def begin(self, name: str, story: str, shows: str) -> None:
        self.summaries.append(PhaseSummary(name, story, shows))
        self.timeline.phase(name)
        self.view.set_phase(len(self.summaries), name, story)

    def calls_to(self, model: str, action: str = "generate") -> int:
        count: int = self.emulator.count(model=model, action=action)
        return count

    # -- the story -----------------------------------------------------------------

    async def normal(self) -> None:
        self.begin("normal traffic", "the primary serves every call", "the primary serves")
        served = []
        for i in range(5):
            data = await self.call("gemini_generate", {"prompt": f"Summarise incident {i}."})
            served.append(data["served_by"] if data else "failed")
            await self.pause()
        self.expect("all 5 calls served by the primary", served == [PRIMARY] * 5, str(served))

    async def rate_limit_storm(self) -> None:
        self.begin(
            "429 storm",
            "the primary rate-limits: wait it out, do not stampede the fallback",
            "backoff on Retry-After, no stampede",
        )
        fallback_before = self.calls_to(FALLBACK)
        self.emulator.configure(
            PRIMARY,
            faults=[
                {
                    "kind": "status",
                    "code": 429,
                    "retry_after": 1.5,
                    "count": 6,
                    "actions": ["generate"],
                }
            ],
        )
        results = await asyncio.gather(
            *(self.call("gemini_generate", {"prompt": f"Burst question {i}"}) for i in range(6))
        )
        ok = [r for r in results if r is not None]
        self.expect("every burst call answered", len(ok) == 6, f"{len(ok)}/6")
        self.expect(
            "all answered by the primary after backing off",
            all(r["served_by"] == PRIMARY for r in ok),
        )
        self.expect(
            "zero calls stampeded onto the fallback", self.calls_to(FALLBACK) == fallback_before
        )
        self.expect(
            "the primary answered 429 and was retried after Retry-After",
            any("429" in a["outcome"] for r in ok for a in r["attempts"]),
        )
        self.emulator.configure(PRIMARY, faults=[])

    async def stream_cut(self) -> None:
        from gemini_failover.emulator import expected_text

        self.begin(
            "stream cut",
            "the primary's stream breaks half-way: continue on the fallback",
            "continued on the fallback, exact text",
        )
        self.emulator.configure(
            PRIMARY,
            faults=[{"kind": "stream_cut", "after": 4, "count": 1, "actions": ["stream"]}],
        )
        deltas: list[str] = []

        async def progress(done: float, total: float | None, message: str | None) -> None:
            if message:
                deltas.append(message)

        prompt = "Write a short story about a lighthouse keeper."
        data = await self.call("gemini_generate", {"prompt": prompt}, progress)
        self.emulator.configure(PRIMARY, faults=[])
        if data is None:
            self.expect("the cut stream was completed", False)
            return
        spans = data.get("spans", [])
        self.expect(
            "the answer is complete and exactly the expected text",
            data["text"] == expected_text(prompt),
        )
        self.expect(
            "the streamed deltas add up to the answer, nothing repeated",
            "".join(deltas) == data["text"],
            f"{len(deltas)} deltas",
        )
        self.expect(
            "two spans: primary, then fallback",
            [s["model"] for s in spans] == [PRIMARY, FALLBACK],
            ", ".join(f"{s['model']} [{s['start']}:{s['end']})" for s in spans),
        )

    async def outage(self) -> None:
        self.begin(
            "primary outage",
            "the primary returns 503: retry, open the breaker, fail over",
            "breaker opens, zero failed calls",
        )
        primary_before = self.calls_to(PRIMARY)
        self.emulator.configure(PRIMARY, faults=[{"kind": "status", "code": 503}])
        served = []
        for i in range(8):
            data = await self.call("gemini_generate", {"prompt": f"Status report {i}"})
            served.append(data["served_by"] if data else "failed")
            await self.pause()
        health = await self.health()
        primary = next(m for m in health["models"] if m["model"] == PRIMARY)
        self.expect("zero failed calls", "failed" not in served)
        self.expect("the fallback took over", served[-1] == FALLBACK)
        self.expect("the primary's breaker is open", primary["breaker"]["state"] == "open")
        spent = self.calls_to(PRIMARY) - primary_before
        self.expect(
            "the sick primary got only the first request's retries",
            spent <= 3,
            f"{spent} primary calls for 8 requests",
        )

    async def recovery(self) -> None:
        self.begin(
            "recovery",
            "the primary heals: half-open probes, sustained health, switch back",
            "probes, sustained health, switch back",
        )
        self.emulator.configure(PRIMARY, faults=[])
        states: list[str] = []
        deadline = time.monotonic() + 30
        health = await self.health()
        while health["active_model"] != PRIMARY and time.monotonic() < deadline:
            await self.call("gemini_generate", {"prompt": "Are we back?"})
            health = await self.health()
            state = next(m for m in health["models"] if m["model"] == PRIMARY)["breaker"]["state"]
            if not states or states[-1] != state:
                states.append(state)
            await asyncio.sleep(max(self.pace, 0.2))  # steady traffic while it heals
        self.expect("traffic switched back to the primary", health["active_model"] == PRIMARY)
        self.expect(
            "it went through half-open before closing",
            "half_open" in states and states[-1] == "closed",
            " -> ".join(states),
        )
        data = await self.call("gemini_generate", {"prompt": "Final check"})
        self.expect(
            "the next call is served by the primary",
            data is not None and data["served_by"] == PRIMARY,
        )

    async def run(self) -> bool:
        from mcp import Client, StdioServerParameters

        from gemini_failover.emulator import Emulator, EmulatorServer

        self.emulator = Emulator()
        # a little latency so that the story is watchable
        self.emulator.configure("*", faults=[{"kind": "latency", "ms": 60, "per_chunk_ms": 40}])
        async with EmulatorServer(self.emulator) as server:
            env = {
                **os.environ,
                "GEMINI_API_KEY": "demo-key-not-a-secret",
                "GEMINI_FAILOVER_BASE_URL": server.base_url,
                "GEMINI_FAILOVER_MODELS": f"{PRIMARY},{FALLBACK}",
                "GEMINI_FAILOVER_TOTAL_TIMEOUT": "20",
                "GEMINI_FAILOVER_ATTEMPT_TIMEOUT": "10",
                "GEMINI_FAILOVER_RETRY__BACKOFF_INITIAL": "0.05",
                "GEMINI_FAILOVER_BREAKER__CONSECUTIVE_FAILURES": "3",
                "GEMINI_FAILOVER_BREAKER__BREAK_SECONDS": "1.5",
                "GEMINI_FAILOVER_BREAKER__HALF_OPEN_PROBES": "1",
                "GEMINI_FAILOVER_BREAKER__REQUIRED_SUCCESSES": "2",
                "GEMINI_FAILOVER_BREAKER__SUSTAINED_HEALTH_SECONDS": "2",
                "GEMINI_FAILOVER_LOG_LEVEL": "error",
            }
            params = StdioServerParameters(
                command=sys.executable, args=["-m", "gemini_failover.cli", "serve"], env=env
            )
            self.view.say(
                f"emulator on {server.base_url}; starting `gemini-failover serve` (stdio)"
            )
            async with Client(params) as client:
                self.client = client
                tools = await client.list_tools()
                self.view.say("tools: " + ", ".join(t.name for t in tools.tools))
                await self.health()
                for phase in (
                    self.normal,
                    self.rate_limit_storm,
                    self.stream_cut,
                    self.outage,
                    self.recovery,
                ):
                    await phase()
        return all(c.passed for s in self.summaries for c in s.checks)

    def summary(self) -> Table:
        table = Table(title="outage drill summary")
        columns = ("phase", "calls", "failed", "failovers", "retries", "sheds", "continuations")
        for column in (*columns, "checks", "demonstrated"):
            table.add_column(column)
        for s in self.summaries:
            passed = sum(c.passed for c in s.checks)
            table.add_row(
                s.name,
                str(s.calls),
                str(s.failed),
                str(s.failovers),
                str(s.retries),
                str(s.sheds),
                str(s.continuations),
                f"{passed}/{len(s.checks)}",
                s.shows,
            )
        return table


async def run_demo(
    *,
    console: Console | None = None,
    live: bool | None = None,
    pace: float = 0.3,
    timeline: str | None = None,
) -> bool:
    console = console or Console()
    if not console.is_terminal:
        console.width = max(console.width, 150)
    live = console.is_terminal if live is None else live
    view = View(console, live)
    drill = Drill(view, pace)
    with view:
        passed = await drill.run()
    console.print(drill.summary())
    if timeline:
        drill.timeline.write(timeline)
        console.print(f"timeline of the drill written to {timeline}", markup=False)
    verdict = "every phase behaved as expected" if passed else "SOME CHECKS FAILED"
    console.print(f"outage drill: {verdict}", markup=False)
    return passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gemini-failover demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--fast", action="store_true", help="no pacing between calls")
    parser.add_argument("--plain", action="store_true", help="plain lines, no live view")
    parser.add_argument("--timeline", metavar="FILE", help="draw the drill as an SVG timeline")
    args = parser.parse_args(argv)
    live, pace = (False if args.plain else None), (0.0 if args.fast else 0.3)
    passed = asyncio.run(run_demo(live=live, pace=pace, timeline=args.timeline))
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
