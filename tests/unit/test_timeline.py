"""The drill timeline (`gemini-failover demo --timeline`) drawn from recorded data."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from gemini_failover.timeline import LEFT, RIGHT, WIDTH, Timeline, outcome_of

SVG = "{http://www.w3.org/2000/svg}"
PRO, FLASH = "pro & co", "flash"  # "&" must come out escaped
FAILED = ("failover", "continued")  # outcomes of calls that failed over after an error


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def health(pro: str, flash: str = "closed") -> dict[str, Any]:
    return {
        "models": [
            {"model": PRO, "breaker": {"state": pro}},
            {"model": FLASH, "breaker": {"state": flash}},
        ]
    }


def result(served_by: str, attempts: list[tuple[str, str]], **extra: Any) -> dict[str, Any]:
    return {
        "served_by": served_by,
        "attempts": [{"model": m, "outcome": o} for m, o in attempts],
        "failovers": extra.get("failovers", []),
        "spans": extra.get("spans", [{"model": served_by, "start": 0, "end": 5}]),
    }


def failover(reason: str) -> list[dict[str, str]]:
    return [{"from": PRO, "to": FLASH, "reason": reason}]


def drill() -> Timeline:
    clock = Clock()
    timeline = Timeline(clock)
    clock.now += 3.0  # start-up before the first phase is not drawn
    timeline.health(health("closed"))
    played: list[tuple[str, dict[str, Any] | None, str]] = [
        ("calm", result(PRO, [(PRO, "ok")]), "closed"),
        ("calm", result(PRO, [(PRO, "429"), (PRO, "ok")]), "closed"),
        ("storm", result(FLASH, [(PRO, "503"), (FLASH, "ok")], failovers=failover("breaker_open")),
         "open"),
        ("storm", result(FLASH, [(FLASH, "ok")], failovers=failover("breaker_open")), "open"),
        ("storm", None, "open"),
        ("cut", result(FLASH, [(PRO, "network"), (FLASH, "ok")], failovers=failover("transient"),
                       spans=[{"model": PRO, "start": 0, "end": 3},
                              {"model": FLASH, "start": 3, "end": 9}]), "half_open"),
    ]  # fmt: skip
    for phase, outcome, state in played:
        if not timeline.phases or timeline.phases[-1].name != phase:
            timeline.phase(phase)
        started = timeline.now()
        clock.now += 0.5
        timeline.call(phase, "gemini_generate", started, outcome)
        timeline.health(health(state))
        clock.now += 0.25
    return timeline


def test_outcome_of_a_call() -> None:
    assert outcome_of(None) == "failed"
    assert outcome_of(result(PRO, [(PRO, "ok")])) == "ok"
    assert outcome_of(result(PRO, [(PRO, "429"), (PRO, "ok")])) == "retried"
    assert outcome_of(result(FLASH, [(FLASH, "ok")], failovers=failover("x"))) == "skipped"
    assert outcome_of(result(FLASH, [(PRO, "503"), (FLASH, "ok")], failovers=failover("t"))) == (
        "failover"
    )
    two = [{"model": PRO, "start": 0, "end": 1}, {"model": FLASH, "start": 1, "end": 2}]
    assert outcome_of(result(FLASH, [(PRO, "ok"), (FLASH, "ok")], spans=two)) == "continued"


def test_the_svg_shows_rows_calls_breakers_failovers_and_phases() -> None:
    timeline = drill()
    text = timeline.svg()
    assert "pro &amp; co" in text
    svg = ET.fromstring(text)
    rows = svg.findall(f".//{SVG}g[@class='row']")
    assert [r.get("data-model") for r in rows] == [PRO, FLASH]
    assert svg.find(f".//{SVG}g[@class='row-failed']") is not None  # one call failed

    marks = [r for r in svg.iter(f"{SVG}rect") if "call" in (r.get("class") or "").split()]
    assert len(marks) == 6
    classes = [m.get("class") for m in marks]
    assert classes == [
        f"call outcome-{o}" for o in ("ok", "retried", "failover", "skipped", "failed", "continued")
    ]
    for mark in marks:  # inside the plot, the first call at its left edge
        assert LEFT <= float(mark.get("x", "0")) <= WIDTH - RIGHT
    assert float(marks[0].get("x", "0")) == LEFT

    failovers = [ln for ln in svg.iter(f"{SVG}line") if ln.get("class") == "failover"]
    assert sorted(f.get("data-reason") or "" for f in failovers) == [
        "breaker_open", "breaker_open", "transient"
    ]  # fmt: skip
    # Dashed: PRO skipped without an attempt in that call. The first breaker_open
    # failover came after PRO failed in the same call (its breaker opened then): solid.
    dashed = [f for f in failovers if f.get("stroke-dasharray")]
    assert len(dashed) == 1
    assert "skipped" in (dashed[0].get("marker-end") or "")
    solid_x = sorted(float(f.get("x1", "0")) for f in failovers if f not in dashed)
    failed_over = [m for m in marks if m.get("class") in {f"call outcome-{o}" for o in FAILED}]
    middles = sorted(float(m.get("x", "0")) + float(m.get("width", "0")) / 2 for m in failed_over)
    assert solid_x == pytest.approx(middles, abs=0.2)  # drawn across the call that failed over

    pro_states = [b.get("data-state") for b in rows[0] if b.get("class") == "breaker"]
    assert pro_states == ["closed", "closed", "closed", "open", "open", "open", "half_open"]
    phases = [t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "phase"]
    assert phases == ["calm", "storm", "cut"]
    assert int(svg.get("height", "0")) > 300


def test_an_empty_timeline_still_draws() -> None:
    svg = ET.fromstring(Timeline().svg())
    assert svg.findall(f".//{SVG}g[@class='row']") == []
    assert svg.find(f".//{SVG}g[@class='legend']") is not None


def test_the_readme_shows_an_example_timeline() -> None:
    root = Path(__file__).resolve().parents[2]
    assert "](docs/img/demo-timeline.svg)" in (root / "README.md").read_text()
    svg = ET.parse(root / "docs" / "img" / "demo-timeline.svg").getroot()
    assert len(svg.findall(f".//{SVG}g[@class='row']")) == 2
