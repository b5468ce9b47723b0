"""What the stdio server imports before it answers ``initialize`` and ``tools/list``.

Each test runs a fresh interpreter: ``sys.modules`` there says what start-up loaded.
No timings: whether a module is loaded is a fact, its cost is measured by
bench/startup.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

#: serve.run()'s steps for stdio up to the first tools/list (the runtime, which starts
#: after it, is not started): settings, Runtime, the early log handler, the server.
_STDIO_START = """
import asyncio, json, sys
from gemini_failover.server.serve import ServeOptions, early_logging, load
from gemini_failover.server.runtime import Runtime

runtime = Runtime(load(ServeOptions()), trust_client_roots=True)
early_logging()
server = runtime.build_server()
tools = asyncio.run(server.list_tools())
print(json.dumps({"tools": len(tools), "modules": sorted(sys.modules)}))
"""

#: Loaded after tools/list (by the first tool call, the runtime's start or its warm-up).
DEFERRED = (
    "google.genai",  # the Gemini SDK
    "gemini_failover.resilience.manager",  # the failover manager
    "gemini_failover.tools.calls",  # the request path
    "gemini_failover.protocol",  # its dataclasses (the settings use gemini_failover.kinds)
    "gemini_failover.state",  # the conversation store (conversation:// reads it)
    "structlog",  # the full logging stack
    "prometheus_client",  # metrics
    "redis",  # shared state, only when configured
    "rich",  # the MCP SDK's log handler, not installed over the server's own
    "tomllib",  # only with --config
    "difflib",  # only for a GEMINI_FAILOVER_* variable that is not a setting
)


def _run(code: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEMINI_FAILOVER_")}
    env["GEMINI_API_KEY"] = "test-key"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_listing_the_tools_loads_none_of_the_request_path() -> None:
    result = _run(_STDIO_START)
    assert result["tools"] == 7
    modules = result["modules"]
    assert isinstance(modules, list)
    loaded = [name for name in DEFERRED if name in modules]
    assert loaded == [], f"imported before tools/list: {loaded}"


def test_without_a_log_handler_the_sdk_still_sets_up_logging() -> None:
    """A library caller that has not set up logging gets the MCP SDK's handler, as
    before: the server skips it only when a root handler is already installed."""
    code = """
import json, logging
from gemini_failover.server.app import assemble_server

async def nothing():
    raise AssertionError("not called")

assemble_server(nothing, nothing)
print(json.dumps({"handlers": [type(h).__name__ for h in logging.getLogger().handlers]}))
"""
    assert _run(code)["handlers"] == ["RichHandler"]
