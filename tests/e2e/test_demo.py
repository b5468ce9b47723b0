"""`gemini-failover demo`: the offline outage drill passes end to end, without a TTY,
and `--timeline` draws it."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

PHASES = ("normal traffic", "429 storm", "stream cut", "primary outage", "recovery")
MODELS = {"gemini-pro-latest", "gemini-flash-latest"}
SVG = "{http://www.w3.org/2000/svg}"


@dataclass(frozen=True)
class DemoRun:
    returncode: int
    stdout: str
    stderr: str
    timeline: Path


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    timeline = tmp_path_factory.mktemp("demo") / "timeline.svg"
    command = [sys.executable, "-m", "gemini_failover.cli", "demo", "--plain", "--fast"]
    result = subprocess.run(
        [*command, "--timeline", str(timeline)], capture_output=True, text=True, timeout=180
    )
    return DemoRun(result.returncode, result.stdout, result.stderr, timeline)


def test_demo_drill_passes_every_phase(demo: DemoRun) -> None:
    out = demo.stdout
    assert demo.returncode == 0, out + demo.stderr
    for phase in PHASES:
        assert f": {phase} - " in out
    assert "[FAIL]" not in out
    assert out.count("[PASS]") == 15
    assert "outage drill: every phase behaved as expected" in out
    assert "\x1b[" not in out  # plain lines when stdout is not a terminal


def test_demo_draws_the_drill_as_a_timeline(demo: DemoRun) -> None:
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert f"timeline of the drill written to {demo.timeline}" in demo.stdout
    svg = ET.parse(demo.timeline).getroot()  # well-formed XML
    assert svg.tag == f"{SVG}svg"
    rows = svg.findall(f".//{SVG}g[@class='row']")
    assert {row.get("data-model") for row in rows} == MODELS
    assert len(rows) == len(MODELS)

    # one call mark per call the drill made (plain mode prints one line per call)
    calls_made = len(re.findall(r"^   gemini_\w+ ", demo.stdout, re.MULTILINE))
    marks = [r for r in svg.iter(f"{SVG}rect") if "call" in (r.get("class") or "").split()]
    assert calls_made >= 30
    assert len(marks) == calls_made
    assert {m.get("data-phase") for m in marks} == set(PHASES)
    outcomes = {c.removeprefix("outcome-") for m in marks for c in m.get("class", "").split()}
    assert {"ok", "retried", "continued", "skipped"} <= outcomes  # 429 waits, cut, outage
    assert "failed" not in outcomes

    failovers = [ln for ln in svg.iter(f"{SVG}line") if ln.get("class") == "failover"]
    assert len(failovers) >= 9  # the stream cut, then every call of the outage
    assert any(ln.get("stroke-dasharray") is None for ln in failovers)  # after a failure
    assert any(ln.get("data-reason") == "breaker_open" for ln in failovers)

    phases = [t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "phase"]
    assert phases == list(PHASES)

    primary = next(r for r in rows if r.get("data-model") == "gemini-pro-latest")
    states = [
        b.get("data-state") for b in primary.iter(f"{SVG}rect") if b.get("class") == "breaker"
    ]
    runs = [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]
    # closed, open, half_open, closed; on a slow machine a failed probe may show too
    assert runs[0] == runs[-1] == "closed", runs
    assert "open" in runs and "half_open" in runs[runs.index("open") :], runs
