"""`make bench`: run every benchmark script and write one markdown report
(bench/RESULTS.md) that the README quotes, with the date and the machine.

Each script runs in its own process, one after the other, so they do not compete for
the machine's cores. Figures are ratios against a baseline measured in the same run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.common import machine

SCRIPTS: list[tuple[str, list[str]]] = [
    ("bench.overhead", []),
    ("bench.tracing", []),
    ("bench.continuation", []),
    ("bench.startup", []),
    ("bench.e2e", []),
    ("bench.shared_state", []),
    ("bench.chaos_load", []),
    ("bench.storm", []),
    ("bench.conversations", []),
    ("bench.files", []),
    ("bench.gateway", []),
    ("bench.endpoints", []),
]


def main() -> int:
    sections = [f"# Benchmark results\n\n{machine()}\n"]
    failed = []
    for module, args in SCRIPTS:
        print(f"running {module} ...", file=sys.stderr, flush=True)
        proc = subprocess.run(
            [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=1200
        )
        if proc.returncode != 0:
            failed.append(module)
            sections.append(f"### {module}\n\nfailed:\n\n```\n{proc.stderr[-2000:]}\n```\n")
            continue
        sections.append(proc.stdout.strip() + "\n")
        print(proc.stdout, flush=True)
    report = "\n".join(sections)
    out = Path(__file__).with_name("RESULTS.md")
    out.write_text(report)
    print(f"wrote {out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
