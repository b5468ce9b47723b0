"""``gemini-failover gateway`` as an operator runs it: a separate process on the event
loop it chose, served to the real google-genai SDK (an answer, a stream continued across
a cut), stopped with SIGINT."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import sys

import pytest
from google import genai
from google.genai import types

from gemini_failover.emulator import EmulatorServer, expected_text
from tests.gateway.conftest import FALLBACK, KEY, PRIMARY, UPSTREAM_KEY
from tests.processes import free_port, listening

PROMPT = "How does a gateway keep a stream going?"
UVLOOP = importlib.util.find_spec("uvloop") is not None


@pytest.mark.parametrize(
    ("loop", "expected"),
    [("auto", "uvloop" if UVLOOP else "asyncio"), ("asyncio", "asyncio")],
)
async def test_the_gateway_process_serves_the_sdk_on_its_event_loop(
    emulator: EmulatorServer, loop: str, expected: str
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "GEMINI_API_KEY": UPSTREAM_KEY,
        "GEMINI_FAILOVER_BASE_URL": emulator.base_url,
        "GEMINI_FAILOVER_MODELS": f"{PRIMARY},{FALLBACK}",
        "GEMINI_FAILOVER_GATEWAY_KEYS": KEY,
        "GEMINI_FAILOVER_LOG_FORMAT": "console",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gemini_failover.cli", "gateway",
        "--port", str(port), "--loop", loop,
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    client = genai.Client(
        api_key=KEY,
        http_options=types.HttpOptions(
            base_url=f"http://127.0.0.1:{port}", retry_options=types.HttpRetryOptions(attempts=1)
        ),
    )
    try:
        await listening(port, proc)
        answer = await client.aio.models.generate_content(model="auto", contents=PROMPT)
        assert answer.text == expected_text(PROMPT)
        assert answer.model_version == PRIMARY
        emulator.emulator.configure(PRIMARY, faults=[{"kind": "stream_cut", "after": 3}])
        stream = await client.aio.models.generate_content_stream(model="auto", contents=PROMPT)
        chunks = [chunk async for chunk in stream]
        assert "".join(c.text or "" for c in chunks) == expected_text(PROMPT)
        assert chunks[-1].model_version == FALLBACK
    finally:
        await client.aio.aclose()
        proc.send_signal(signal.SIGINT)
        returncode = await asyncio.wait_for(proc.wait(), 15)
    assert proc.stderr is not None
    log = (await proc.stderr.read()).decode()
    assert f"event loop: {expected})" in log
    assert returncode == 0, log
