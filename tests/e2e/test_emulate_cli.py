"""`gemini-failover emulate` as a user runs it: a separate process with a scenario file,
served to the real google-genai SDK, faults changed at run time over HTTP."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx2
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from gemini_failover.emulator import expected_text
from tests.processes import free_port, listening


async def test_emulate_command_serves_the_sdk_and_takes_faults_at_run_time(
    tmp_path: Path,
) -> None:
    scenario = tmp_path / "scenario.json"
    scenario.write_text(
        json.dumps(
            {"models": {"small": {"profile": {"input_token_limit": 100, "stream_chunks": 3}}}}
        )
    )
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gemini_failover.cli", "emulate",
        "--port", str(port), "--scenario", str(scenario),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    client = genai.Client(
        api_key="k",
        http_options=types.HttpOptions(
            base_url=base, api_version="v1beta", retry_options=types.HttpRetryOptions(attempts=1)
        ),
    )
    try:
        await listening(port, proc)
        answer = await client.aio.models.generate_content(model="small", contents="hi")
        assert answer.text == expected_text("hi")
        chunks = [c.text async for c in await client.aio.models.generate_content_stream(
            model="small", contents="hi")]  # fmt: skip
        assert len(chunks) == 3
        texts = [c for c in chunks if c is not None]
        assert texts == chunks  # every chunk carries text
        assert "".join(texts) == expected_text("hi")
        info = await client.aio.models.get(model="small")
        assert info.input_token_limit == 100
        tokens = await client.aio.models.count_tokens(model="small", contents="hello there")
        assert tokens.total_tokens and tokens.total_tokens > 0
        embedded = await client.aio.models.embed_content(
            model="gemini-embedding-001", contents=["a", "b"]
        )
        assert len(embedded.embeddings or []) == 2

        async with httpx2.AsyncClient(base_url=base) as control:
            put = await control.put(
                "/_emulator/models/small",
                json={"faults": [{"kind": "status", "code": 503, "count": 1}]},
            )
            assert put.status_code == 200
            with pytest.raises(genai_errors.ServerError) as info_503:
                await client.aio.models.generate_content(model="small", contents="hi")
            assert info_503.value.code == 503
            log = (await control.get("/_emulator/requests")).json()["requests"]
            assert [r["status"] for r in log if r["action"] == "generate"] == [200, 503]
    finally:
        await client.aio.aclose()
        proc.terminate()
        assert await proc.wait() in (0, -15)
