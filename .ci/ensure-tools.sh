#!/usr/bin/env bash
# Install the system tools the test suite needs, if missing: Debian's redis-server
# (tests/redis start their own throwaway instances on loopback) and promtool (from
# Debian's prometheus package: alert rules, their unit tests, metrics lint).
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" != "0" ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "ensure-tools: need ${missing[*]} (apt-get install ${missing[*]}) and am not root" >&2
        exit 1
    fi
    sudo="sudo -n"
fi
echo "ensure-tools: installing ${missing[*]}..." >&2
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
$sudo env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
# Debian starts services after install where it can; the suite runs its own Redis.
$sudo service redis-server stop >/dev/null 2>&1 || true
$sudo service prometheus stop >/dev/null 2>&1 || true
