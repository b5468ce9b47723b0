#!/usr/bin/env bash
# Install the system tools the test suite needs, if missing: Debian's redis-server
# (tests/redis start their own throwaway instances on loopback) and promtool (from
# Debian's prometheus package: alert rules, their unit tests, metrics lint). Where
# Node >= 20 and npm are installed, the official JavaScript SDK at the version pinned in
# tests/gateway/js/package-lock.json (the gateway's JS SDK test).
set -euo pipefail
cd "$(dirname "$0")/.."

js_sdk() {
    # Best effort: without Node >= 20 or the npm registry, that one test is skipped.
    local skip="ensure-tools: the JavaScript SDK test will be skipped"
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || {
        echo "$skip (no node/npm)" >&2
        return 0
    }
    local version major
    version="$(node --version 2>/dev/null || true)"
    major="${version#v}"
    major="${major%%.*}"
    if ! [[ "$major" =~ ^[0-9]+$ ]] || [ "$major" -lt 20 ]; then
        echo "$skip (node ${version:-unusable}; needs >= 20)" >&2
        return 0
    fi
    local dir=tests/gateway/js stamp
    stamp="$(cksum < "$dir/package-lock.json")"
    [ "$(cat "$dir/node_modules/.installed-lock" 2>/dev/null)" = "$stamp" ] && return 0
    echo "ensure-tools: npm ci in $dir..." >&2
    if ! npm ci --prefix "$dir" --no-audit --no-fund --ignore-scripts --loglevel=error >&2; then
        echo "$skip (npm ci failed)" >&2
        return 0
    fi
    echo "$stamp" > "$dir/node_modules/.installed-lock"
}
js_sdk

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
