"""The official JavaScript SDK (@google/genai) against the gateway: unary, a stream cut
mid-way seen as one unbroken stream, count, embed, a 404.

Runs only where Node >= 18 and an installed @google/genai are available: set
GEMINI_FAILOVER_JS_SDK_DIR to a directory whose node_modules holds it (e.g. after
``npm install @google/genai`` there). Skipped otherwise: CI never depends on the npm
registry at test time.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest

from gemini_failover.emulator import EmulatorServer
from gemini_failover.emulator.text import expected_text
from tests.gateway.conftest import FALLBACK, KEY, PRIMARY, Gateway

SCRIPT = Path(__file__).with_name("js") / "sdk_check.mjs"
PROMPT = "What does a gateway do for a JavaScript client?"


def _sdk_dir() -> Path | None:
    configured = os.environ.get("GEMINI_FAILOVER_JS_SDK_DIR")
    if not configured:
        return None
    modules = Path(configured) / "node_modules"
    return modules if (modules / "@google" / "genai").is_dir() else None


async def _node_major(node: str) -> int:
    proc = await asyncio.create_subprocess_exec(node, "--version", stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    return int(out.decode().strip().lstrip("v").split(".")[0])


async def test_the_javascript_sdk_works_unmodified(
    gateway: Gateway, emulator: EmulatorServer, tmp_path: Path
) -> None:
    node, modules = shutil.which("node"), _sdk_dir()
    if node is None or modules is None:
        pytest.skip("needs node and GEMINI_FAILOVER_JS_SDK_DIR with @google/genai installed")
    if await _node_major(node) < 18:
        pytest.skip("needs Node >= 18")
    (tmp_path / "node_modules").symlink_to(modules, target_is_directory=True)
    script = tmp_path / SCRIPT.name
    shutil.copy(SCRIPT, script)
    emulator.emulator.configure(PRIMARY, faults=[{"kind": "stream_cut", "after": 3}])
    env = {**os.environ, "GATEWAY_URL": gateway.base_url, "GATEWAY_KEY": KEY, "PROMPT": PROMPT}
    proc = await asyncio.create_subprocess_exec(
        node, str(script), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    seen = json.loads(out.decode().strip().splitlines()[-1])
    expected = expected_text(PROMPT)
    assert seen["unary"] == expected and seen["unaryModel"] == PRIMARY
    assert seen["streamed"] == expected
    assert (seen["firstVersion"], seen["lastVersion"]) == (PRIMARY, FALLBACK)
    assert seen["tokens"] > 0 and seen["embeddings"] == 2
    assert seen["notFound"] == 404
