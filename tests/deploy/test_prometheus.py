"""The shipped alert rules are valid, their promtool unit tests pass, and the metrics
exposition passes promtool's lint."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_promtool_checks_pass() -> None:
    assert shutil.which("promtool"), "promtool missing: run .ci/ensure-tools.sh"
    result = subprocess.run(
        ["bash", str(ROOT / ".ci" / "promtool-checks.sh")],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "PYTHON": sys.executable},
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all promtool checks passed" in result.stdout
    assert "SUCCESS" in result.stdout
