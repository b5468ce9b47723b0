"""A picture of an outage drill: `gemini-failover demo --timeline out.svg`.

:class:`Timeline` collects what the demo already observes, the provenance of every
tool result (``served_by``, ``attempts``, ``failovers``, ``spans``) and every health
document it reads (each model's breaker state), and :meth:`Timeline.svg` draws it:

- one row per model of the chain, each call a bar from its start to its end in the
  row of the model that served it, its colour the call's outcome;
- under each row, a band with that model's breaker state over time (closed,
  half-open, open), as sampled from the health documents;
- an arrow from one model's row to the next for every failover of a call, across
  the middle of the call (provenance says which attempts were made, not when), dashed
  when the model left had no failed attempt in that call (skipped: breaker open);
- the drill's phases along the time axis, and a legend.

The SVG is built with :mod:`xml.etree.ElementTree` rather than a drawing library: it
is a few dozen rectangles, lines and labels, ElementTree escapes the text and
serialises it, and the demo keeps its dependencies (a plotting stack such as
matplotlib would dwarf the server it illustrates). Elements carry ``class`` and
``data-*`` attributes so that a test can count rows, calls and failovers.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

#: Outcome of a call -> (colour, legend text).
OUTCOMES: Final[dict[str, tuple[str, str]]] = {
    "ok": ("#2f9e44", "served at the first attempt"),
    "retried": ("#1c7ed6", "served after retries or waits on the same model"),
    "failover": ("#f08c00", "served after failing over"),
    "skipped": ("#0c8599", "served by a fallback, the models before it skipped"),
    "continued": ("#9c36b5", "stream cut, continued on another model"),
    "failed": ("#e03131", "failed"),
}
#: Breaker state -> (band colour, label).
BREAKER: Final[dict[str, tuple[str, str]]] = {
    "closed": ("#c3e6cb", "closed"),
    "half_open": ("#ffe066", "half-open"),
    "open": ("#ff8787", "open"),
}
FAILOVER_COLOUR: Final = "#d9480f"
SKIP_COLOUR: Final = "#495057"

WIDTH: Final = 1200
LEFT: Final = 200  # room for the row labels
RIGHT: Final = 30
TOP: Final = 50  # title
PHASE_LINE: Final = 16  # one line of phase labels
LANE: Final = 56  # call bars of one model
TRACK: Final = 8  # one bar's height; overlapping calls take the next track
BAND: Final = 14  # breaker band under the lane
ROW_GAP: Final = 18
FONT: Final = "font-family:DejaVu Sans,Helvetica,Arial,sans-serif"


@dataclass(frozen=True)
class Call:
    start: float  # seconds since the drill started
    end: float
    phase: str
    tool: str
    served_by: str | None  # None: the call failed
    outcome: str
    failovers: tuple[tuple[str, str, str], ...]  # (from, to, reason)
    failed_on: frozenset[str] = frozenset()  # models with a failed attempt in this call


@dataclass(frozen=True)
class BreakerSample:
    at: float
    states: Mapping[str, str]  # model -> closed / half_open / open


@dataclass(frozen=True)
class Phase:
    start: float
    name: str


def outcome_of(result: Mapping[str, Any] | None) -> str:
    """The colour class of a call from its tool result (None: an error result)."""
    if result is None:
        return "failed"
    if len(result.get("spans", [])) > 1:
        return "continued"
    attempts = result.get("attempts", [])
    if result.get("failovers"):
        return "skipped" if all(a["outcome"] == "ok" for a in attempts) else "failover"
    return "retried" if len(attempts) > 1 else "ok"


class Timeline:
    """What the drill did, over time; :meth:`svg` draws it."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._origin = clock()
        self.models: list[str] = []
        self.calls: list[Call] = []
        self.breakers: list[BreakerSample] = []
        self.phases: list[Phase] = []

    def now(self) -> float:
        """Seconds since the timeline started."""
        return self._clock() - self._origin

    def phase(self, name: str) -> None:
        self.phases.append(Phase(self.now(), name))

    def health(self, document: Mapping[str, Any]) -> None:
        """Record the breaker states of a health document (``health://status``)."""
        states = {m["model"]: m["breaker"]["state"] for m in document.get("models", [])}
        for model in states:
            if model not in self.models:
                self.models.append(model)
        self.breakers.append(BreakerSample(self.now(), states))

    def call(self, phase: str, tool: str, started: float, result: Mapping[str, Any] | None) -> None:
        """Record a finished call; *started* is :meth:`now` before it was made and
        *result* its structured result (None when it returned an error)."""
        served_by = result["served_by"] if result is not None else None
        failovers = tuple(
            (f["from"], f["to"], f["reason"]) for f in (result or {}).get("failovers", [])
        )
        for model in [served_by, *(m for f in failovers for m in f[:2])]:
            if model and model not in self.models:
                self.models.append(model)
        attempts = (result or {}).get("attempts", [])
        failed_on = frozenset(a["model"] for a in attempts if a["outcome"] != "ok")
        outcome = outcome_of(result)
        self.calls.append(
            Call(started, self.now(), phase, tool, served_by, outcome, failovers, failed_on)
        )

    def write(self, path: str | Path) -> None:
        Path(path).write_text(self.svg(), encoding="utf-8")

    # -- drawing ----------------------------------------------------------------------

    def svg(self) -> str:
        return _Drawing(self).render()


def _tick_step(duration: float) -> float:
    for step in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600):
        if duration / step <= 12:
            return step
    return 1200.0


class _Drawing:
    def __init__(self, timeline: Timeline) -> None:
        self.t = timeline
        # The axis starts with the first phase (or call): not with the server's start-up.
        starts = [p.start for p in timeline.phases] or [c.start for c in timeline.calls]
        self.origin = min(starts, default=0.0)
        ends = [c.end for c in timeline.calls] + [s.at for s in timeline.breakers]
        self.duration = max([*ends, *starts, self.origin + 1.0]) - self.origin
        self.plot_width = WIDTH - LEFT - RIGHT
        self.phase_lines = self._place_phase_labels()
        self.rows_top = TOP + PHASE_LINE * max(1, len(set(self.phase_lines))) + 10
        self.failed_lane = any(c.served_by is None for c in timeline.calls)
        self.row_y = {
            m: self.rows_top + i * (LANE + BAND + ROW_GAP) for i, m in enumerate(timeline.models)
        }
        self.rows_bottom = self.rows_top + len(timeline.models) * (LANE + BAND + ROW_GAP)
        if self.failed_lane:
            self.rows_bottom += LANE + ROW_GAP
        self.root = ET.Element(
            "svg",
            xmlns="http://www.w3.org/2000/svg",
            width=str(WIDTH),
            viewBox=f"0 0 {WIDTH} 0",
            style=FONT,
        )

    def x(self, at: float) -> float:
        """The x of a time of the timeline (clipped to the axis)."""
        share = min(max((at - self.origin) / self.duration, 0.0), 1.0)
        return round(LEFT + self.plot_width * share, 1)

    def el(self, parent: ET.Element, tag: str, text: str | None = None, **attrs: Any) -> ET.Element:
        element = ET.SubElement(
            parent, tag, {k.rstrip("_").replace("_", "-"): str(v) for k, v in attrs.items()}
        )
        if text is not None:
            element.text = text
        return element

    def _place_phase_labels(self) -> list[int]:
        """A line for each phase label, so that labels of short phases do not overlap
        (a label is about 7 px per character)."""
        ends: list[float] = []
        lines: list[int] = []
        for phase in self.t.phases:
            x = self.x(phase.start)
            width = 7.2 * len(phase.name) + 12
            line = next((i for i, end in enumerate(ends) if end < x), len(ends))
            if line == len(ends):
                ends.append(0.0)
            ends[line] = x + width
            lines.append(line)
        return lines

    def render(self) -> str:
        calls, failovers = len(self.t.calls), sum(len(c.failovers) for c in self.t.calls)
        self.el(self.root, "rect", width=WIDTH, height="100%", fill="#ffffff")
        self.el(
            self.root,
            "text",
            "gemini-failover outage drill: which model served each call",
            x=20,
            y=26,
            font_size=18,
            font_weight="bold",
        )
        failed = sum(c.served_by is None for c in self.t.calls)
        self.el(
            self.root,
            "text",
            f"{calls} calls, {failed} failed, {failovers} failovers, "
            f"{self.duration:.1f} s; bars: one per call, from its start to its end",
            x=20,
            y=44,
            font_size=12,
            fill="#495057",
        )
        self._defs()
        self._phases()
        for model in self.t.models:
            self._row(model)
        if self.failed_lane:
            self._failed_row()
        self._calls()
        self._failovers()
        bottom = self._axis()
        bottom = self._legend(bottom + 16)
        self.root.set("height", str(bottom))
        self.root.set("viewBox", f"0 0 {WIDTH} {bottom}")
        ET.indent(self.root)
        return ET.tostring(self.root, encoding="unicode", xml_declaration=True) + "\n"

    def _defs(self) -> None:
        defs = self.el(self.root, "defs")
        for name, colour in (("arrow", FAILOVER_COLOUR), ("arrow-skipped", SKIP_COLOUR)):
            marker = self.el(
                defs,
                "marker",
                id=name,
                viewBox="0 0 10 10",
                refX=9,
                refY=5,
                markerWidth=7,
                markerHeight=7,
                orient="auto-start-reverse",
            )
            self.el(marker, "path", d="M 0 0 L 10 5 L 0 10 z", fill=colour)

    def _phases(self) -> None:
        group = self.el(self.root, "g", class_="phases")
        starts = [p.start for p in self.t.phases]
        for i, phase in enumerate(self.t.phases):
            end = starts[i + 1] if i + 1 < len(starts) else self.origin + self.duration
            x0, x1 = self.x(phase.start), self.x(end)
            top = TOP + 4
            self.el(
                group,
                "rect",
                x=x0,
                y=top,
                width=max(x1 - x0, 0.5),
                height=self.rows_bottom - top,
                fill="#f1f3f5" if i % 2 == 0 else "#ffffff",
            )
            self.el(
                group,
                "line",
                x1=x0,
                x2=x0,
                y1=top,
                y2=self.rows_bottom,
                stroke="#adb5bd",
                stroke_dasharray="4 3",
            )
        for phase, line in zip(self.t.phases, self.phase_lines, strict=True):
            self.el(  # after every background, which would hide a label running over
                group,
                "text",
                phase.name,
                class_="phase",
                x=self.x(phase.start) + 4,
                y=TOP + PHASE_LINE * (line + 1),
                font_size=12,
                font_weight="bold",
                fill="#343a40",
                stroke="#ffffff",  # a halo where a phase line crosses the label
                stroke_width=3,
                paint_order="stroke",
            )

    def _row(self, model: str) -> None:
        y = self.row_y[model]
        group = self.el(self.root, "g", class_="row", data_model=model)
        self.el(group, "rect", x=LEFT, y=y, width=self.plot_width, height=LANE + BAND,
                fill="none", stroke="#ced4da")  # fmt: skip
        self.el(group, "text", model, x=LEFT - 10, y=y + LANE / 2 + 4, font_size=13,
                text_anchor="end", font_weight="bold")  # fmt: skip
        self.el(group, "text", "breaker", x=LEFT - 10, y=y + LANE + BAND - 3, font_size=10,
                text_anchor="end", fill="#495057")  # fmt: skip
        self.el(group, "line", x1=LEFT, x2=WIDTH - RIGHT, y1=y + LANE, y2=y + LANE,
                stroke="#ced4da")  # fmt: skip
        samples = [s for s in self.t.breakers if model in s.states]
        for i, sample in enumerate(samples):
            start = self.origin if i == 0 else sample.at
            end = samples[i + 1].at if i + 1 < len(samples) else self.origin + self.duration
            state = sample.states[model]
            colour = BREAKER.get(state, ("#dee2e6", state))[0]
            self.el(
                group,
                "rect",
                class_="breaker",
                data_state=state,
                x=self.x(start),
                y=y + LANE + 1,
                width=max(self.x(end) - self.x(start), 0.5),
                height=BAND - 2,
                fill=colour,
            )

    def _failed_row(self) -> None:
        y = self.rows_bottom - LANE - ROW_GAP
        group = self.el(self.root, "g", class_="row-failed")
        self.el(group, "rect", x=LEFT, y=y, width=self.plot_width, height=LANE, fill="none",
                stroke="#ced4da")  # fmt: skip
        self.el(group, "text", "failed calls", x=LEFT - 10, y=y + LANE / 2 + 4, font_size=13,
                text_anchor="end", fill=OUTCOMES["failed"][0])  # fmt: skip

    def _lane_top(self, call: Call) -> float:
        if call.served_by is None:
            return self.rows_bottom - LANE - ROW_GAP
        return self.row_y[call.served_by]

    def _calls(self) -> None:
        group = self.el(self.root, "g", class_="calls")
        tracks: dict[float, list[float]] = {}  # lane -> end x of the last bar per track
        for call in sorted(self.t.calls, key=lambda c: c.start):
            lane = self._lane_top(call)
            x0 = self.x(call.start)
            x1 = max(self.x(call.end), x0 + 3)
            ends = tracks.setdefault(lane, [])
            track = next((i for i, end in enumerate(ends) if end <= x0), len(ends))
            if track == len(ends):
                ends.append(0.0)
            ends[track] = x1 + 1
            track %= LANE // TRACK
            colour, meaning = OUTCOMES[call.outcome]
            bar = self.el(
                group,
                "rect",
                class_=f"call outcome-{call.outcome}",
                data_phase=call.phase,
                x=x0,
                y=lane + 3 + track * TRACK,
                width=round(x1 - x0, 1),
                height=TRACK - 2,
                rx=1.5,
                fill=colour,
            )
            served = call.served_by or "no model"
            self.el(bar, "title", f"{call.phase}: {call.tool}, {served} ({meaning}), "
                    f"{(call.end - call.start) * 1000:.0f} ms")  # fmt: skip

    def _failovers(self) -> None:
        group = self.el(self.root, "g", class_="failovers")
        marks = [(call, *f) for call in self.t.calls for f in call.failovers]
        # the few failovers after a failed attempt on top of the many past a skipped model
        marks.sort(key=lambda mark: mark[1] in mark[0].failed_on)
        for call, source, target, reason in marks:
            at = self.x((call.start + call.end) / 2)
            skip = source not in call.failed_on
            top, target_top = self.row_y[source], self.row_y[target]
            y0 = top + LANE / 2  # from the middle of the lane left, to the edge of the next
            y1 = target_top if target_top > top else target_top + LANE
            line = self.el(
                group,
                "line",
                class_="failover",
                data_reason=reason,
                x1=at,
                x2=at,
                y1=y0,
                y2=y1,
                stroke=SKIP_COLOUR if skip else FAILOVER_COLOUR,
                stroke_width=1 if skip else 2,
                marker_end="url(#arrow-skipped)" if skip else "url(#arrow)",
            )
            if skip:
                line.set("stroke-dasharray", "3 2")
            self.el(line, "title", f"failover {source} -> {target} ({reason})")

    def _axis(self) -> float:
        y = self.rows_bottom + 4
        group = self.el(self.root, "g", class_="axis")
        self.el(group, "line", x1=LEFT, x2=WIDTH - RIGHT, y1=y, y2=y, stroke="#343a40")
        step = _tick_step(self.duration)
        tick = 0.0
        while tick <= self.duration + 1e-9:
            x = self.x(self.origin + tick)
            self.el(group, "line", x1=x, x2=x, y1=y, y2=y + 5, stroke="#343a40")
            label = f"{tick:g} s"
            self.el(group, "text", label, x=x, y=y + 18, font_size=11, text_anchor="middle")
            tick += step
        self.el(group, "text", "time since the drill started", x=LEFT - 10, y=y + 18,
                font_size=11, text_anchor="end", fill="#495057")  # fmt: skip
        return y + 24

    def _legend(self, y: float) -> float:
        group = self.el(self.root, "g", class_="legend")
        self.el(group, "text", "call:", x=20, y=y + 10, font_size=12, font_weight="bold")
        items = [(colour, text) for colour, text in OUTCOMES.values()]
        for i, (colour, text) in enumerate(items):
            cx = 70 + (i % 3) * 370
            cy = y + (i // 3) * 20
            self.el(group, "rect", x=cx, y=cy, width=18, height=TRACK - 2, rx=1.5, fill=colour)
            self.el(group, "text", text, x=cx + 24, y=cy + 7, font_size=12)
        y += ((len(items) + 2) // 3) * 20 + 6
        self.el(group, "text", "breaker:", x=20, y=y + 10, font_size=12, font_weight="bold")
        for i, (colour, text) in enumerate(BREAKER.values()):
            cx = 90 + i * 110
            self.el(group, "rect", x=cx, y=y, width=24, height=BAND - 2, fill=colour)
            self.el(group, "text", text, x=cx + 30, y=y + 10, font_size=12)
        for i, (colour, text, dash) in enumerate(
            (
                (FAILOVER_COLOUR, "failover after a failed attempt", ""),
                (SKIP_COLOUR, "failover past a skipped model (breaker open)", "3 2"),
            )
        ):
            cx = 440 + i * 330
            line = self.el(group, "line", x1=cx, x2=cx + 28, y1=y + 6, y2=y + 6, stroke=colour,
                           stroke_width=2, marker_end="url(#arrow)" if not dash else
                           "url(#arrow-skipped)")  # fmt: skip
            if dash:
                line.set("stroke-dasharray", dash)
            self.el(group, "text", text, x=cx + 36, y=y + 10, font_size=12)
        return y + BAND + 14
