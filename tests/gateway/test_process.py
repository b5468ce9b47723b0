"""``gemini-failover gateway`` as an operator runs it: a separate process on the event
loop it chose, served to the real google-genai SDK (an answer, a stream continued across
a cut), stopped with SIGTERM or SIGINT only once it has closed its runtime."""

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
    ("loop", "expected", "stop", "returncode"),
    [
        ("auto", "uvloop" if UVLOOP else "asyncio", signal.SIGTERM, -signal.SIGTERM),
        ("asyncio", "asyncio", signal.SIGINT, 0),
    ],
)
async def test_the_gateway_process_serves_the_sdk_on_its_event_loop(
    emulator: EmulatorServer, loop: str, expected: str, stop: signal.Signals, returncode: int
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
        proc.send_signal(stop)
        ended = await asyncio.wait_for(proc.wait(), 15)
    assert proc.stderr is not None
    log = (await proc.stderr.read()).decode()
    assert f"event loop: {expected})" in log
    # the signal took effect only after the runtime closed (SIGTERM killed it before)
    assert "gateway stopped" in log
    assert ended == returncode, log


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    """Everything the gateway sends until it closes the connection (a reset: nothing)."""
    try:
        return await asyncio.wait_for(reader.read(), 20)
    except ConnectionResetError:
        return b""


async def test_the_connection_guards_hold_on_the_gateway_process_loop(
    emulator: EmulatorServer,
) -> None:
    """The guards the in-process tests check on asyncio, on the loop the gateway runs in
    production (uvloop where installed): a half-closing client still reads its answer, a
    head never finished is cut off, connections past the cap are closed at once."""
    port = free_port()
    env = {
        **os.environ,
        "GEMINI_API_KEY": UPSTREAM_KEY,
        "GEMINI_FAILOVER_BASE_URL": emulator.base_url,
        "GEMINI_FAILOVER_MODELS": f"{PRIMARY},{FALLBACK}",
        "GEMINI_FAILOVER_HTTP__HEADER_TIMEOUT": "0.5",
        "GEMINI_FAILOVER_HTTP__MAX_CONNECTIONS": "2",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gemini_failover.cli", "gateway", "--port", str(port),
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await listening(port, proc)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        assert await _read_all(reader) == b""  # the only connection: cut off, not capped
        writer.close()

        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        writer.write_eof()  # half-closed, as nc -N does
        answer = await _read_all(reader)
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b'{"status":"alive"}')
        writer.close()

        held = []
        for _ in range(2):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 200")
            held.append(writer)
        extra, extra_writer = await asyncio.open_connection("127.0.0.1", port)
        assert await _read_all(extra) == b""  # past the cap: closed at once
        extra_writer.close()
        for writer in held:
            writer.close()
            await writer.wait_closed()
    finally:
        proc.terminate()
        await proc.wait()
