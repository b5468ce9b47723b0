"""The official JavaScript SDK (@google/genai) against the gateway: unary, a stream cut
mid-way seen as one unbroken stream, count, embed, a 404.

Runs where Node >= 20 is installed: `make test` installs the SDK version pinned in
tests/gateway/js/package-lock.json there (.ci/ensure-tools.sh, ``npm ci``);
GEMINI_FAILOVER_JS_SDK_DIR names another directory whose node_modules holds it.
Skipped where there is no Node.
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
    modules = (Path(configured) if configured else SCRIPT.parent).resolve() / "node_modules"
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
        pytest.skip("needs node, and @google/genai installed (make test installs it)")
    if await _node_major(node) < 20:
        pytest.skip("needs Node >= 20")
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
