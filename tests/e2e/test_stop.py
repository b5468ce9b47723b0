"""``gemini-failover serve --transport http`` stopped as Docker, Kubernetes and systemd
stop it (SIGTERM): the signal takes effect once the runtime has closed."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

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
