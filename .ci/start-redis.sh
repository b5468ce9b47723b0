#!/usr/bin/env bash
# Start a throwaway Redis for the tests/redis suite and print its URL.
#
#   eval "$(.ci/start-redis.sh)"   # exports nothing itself; prints REDIS_URL=...
#   export "$(.ci/start-redis.sh | tail -n 1)"
#
# Installs Debian's redis-server when it is missing (needs root or sudo), starts it on
# 127.0.0.1:${REDIS_PORT:-6399} with no persistence, waits until it answers PING and
# prints REDIS_URL=redis://127.0.0.1:PORT/0 as its last line. Stop it with
#   redis-cli -p PORT shutdown nosave
set -euo pipefail

port="${REDIS_PORT:-6399}"
workdir="${REDIS_DIR:-/tmp/gemini-failover-redis-${port}}"

if ! command -v redis-server >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" != "0" ]; then
        sudo="sudo"
    fi
    echo "installing redis-server..." >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    $sudo env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends redis-server >&2
fi

mkdir -p "$workdir"

if redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
    echo "redis already answering on 127.0.0.1:${port}" >&2
else
    redis-server \
        --bind 127.0.0.1 \
        --port "$port" \
        --save '' \
        --appendonly no \
        --daemonize yes \
        --dir "$workdir" \
        --pidfile "$workdir/redis.pid" \
        --logfile "$workdir/redis.log" >&2
    for _ in $(seq 1 100); do
        if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
            break
        fi
        sleep 0.05
    done
    if ! redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
        echo "redis-server did not answer on 127.0.0.1:${port}; log:" >&2
        tail -n 20 "$workdir/redis.log" >&2 || true
        exit 1
    fi
fi

echo "REDIS_URL=redis://127.0.0.1:${port}/0"
