"""`gemini-failover demo`: the offline outage drill passes end to end, without a TTY."""

from __future__ import annotations

import subprocess
import sys


def test_demo_drill_passes_every_phase() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gemini_failover.cli", "demo", "--plain", "--fast"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for phase in ("normal traffic", "429 storm", "stream cut", "primary outage", "recovery"):
        assert f": {phase} - " in out
    assert "[FAIL]" not in out
    assert out.count("[PASS]") == 15
    assert "outage drill: every phase behaved as expected" in out
    assert "\x1b[" not in out  # plain lines when stdout is not a terminal
