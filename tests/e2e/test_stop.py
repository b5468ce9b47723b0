"""``gemini-failover serve --transport http`` stopped as Docker, Kubernetes and systemd
stop it (SIGTERM): the signal takes effect once the runtime has closed."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import httpx2

from tests.processes import free_port, listening


async def test_sigterm_ends_the_http_server_after_its_runtime_closed() -> None:
    port = free_port()
    env = {**os.environ, "GEMINI_FAILOVER_LOG_FORMAT": "console"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gemini_failover.cli", "serve",
        "--transport", "http", "--emulator", "--port", str(port),
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await listening(port, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        ended = await asyncio.wait_for(proc.wait(), 15)
    assert proc.stderr is not None
    log = (await proc.stderr.read()).decode()
    assert "server stopped" in log  # uvicorn used to re-raise SIGTERM before the close
    assert ended == -signal.SIGTERM, log


async def test_sigterm_ends_stdio_with_a_metrics_listener_at_once() -> None:
    """Over stdio the process serves stdin: SIGTERM ends it at once, as before, even with
    the --metrics-port listener's uvicorn (which must not hold the process up)."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gemini_failover.cli", "serve", "--emulator",
        "--metrics-port", str(port),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await listening(port, proc)  # bound before uvicorn starts: ask it for an answer
        async with httpx2.AsyncClient(timeout=10) as http:
            metrics = await http.get(f"http://127.0.0.1:{port}/metrics")
        # uvicorn answers (503 until a client starts the runtime): its handlers are in
        assert metrics.status_code in (200, 503)
    finally:
        proc.send_signal(signal.SIGTERM)  # stdin still open
        ended = await asyncio.wait_for(proc.wait(), 10)
    assert ended == -signal.SIGTERM
