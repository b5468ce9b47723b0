#!/usr/bin/env bash
# Prometheus checks: alert rules are valid, their unit tests pass, and the metrics a
# ManagerMetrics exposes (after one event of every type) pass `promtool check metrics`.
# Usage: .ci/promtool-checks.sh   (from anywhere; needs promtool, e.g. apt-get install prometheus)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! command -v promtool >/dev/null 2>&1; then
    echo "promtool-checks: promtool not found on PATH." >&2
    echo "  Install it (Debian/Ubuntu: apt-get install -y --no-install-recommends prometheus," >&2
    echo "  or unpack a release from https://github.com/prometheus/prometheus/releases)." >&2
    exit 127
fi

python="${PYTHON:-$root/.venv/bin/python}"
if [ ! -x "$python" ]; then
    echo "promtool-checks: no Python at $python (create .venv or set PYTHON)." >&2
    exit 127
fi

echo "== promtool $(promtool --version 2>&1 | head -n1)"

echo "== promtool check rules deploy/prometheus/alerts.yml"
promtool check rules deploy/prometheus/alerts.yml

echo "== promtool test rules deploy/prometheus/alerts_test.yml"
promtool test rules deploy/prometheus/alerts_test.yml

echo "== promtool check metrics (sample exposition of ManagerMetrics)"
exposition="$(mktemp)"
trap 'rm -f "$exposition"' EXIT
"$python" -c 'import sys; from gemini_failover.observability.metrics import sample_exposition; sys.stdout.write(sample_exposition())' >"$exposition"
if ! grep -q '^dualmodelmanager_active_model' "$exposition"; then
    echo "promtool-checks: the sample exposition has no dualmodelmanager metrics" >&2
    exit 1
fi
# promtool prints lint problems and exits non-zero when there are any.
promtool check metrics <"$exposition"
echo "== all promtool checks passed"
