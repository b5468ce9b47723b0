"""What the stdio server imports before it answers ``initialize`` and ``tools/list``.

Each test runs a fresh interpreter: ``sys.modules`` there says what start-up loaded.
No timings: whether a module is loaded is a fact, its cost is measured by
bench/startup.py.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys

import pytest

from gemini_failover.server import gc_pause

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
    "gemini_failover.inputs.sandbox",  # the files argument's sandbox
    "structlog",  # the full logging stack
    "prometheus_client",  # metrics
    "redis",  # shared state, only when configured
    "rich",  # the MCP SDK's log handler, not installed over the server's own
    "tomllib",  # only with --config
    "difflib",  # only for a GEMINI_FAILOVER_* variable that is not a setting
)


def _run(code: str, stdin: int | None = None) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEMINI_FAILOVER_")}
    env["GEMINI_API_KEY"] = "test-key"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=60,
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


def test_the_collector_paused_for_start_up_is_resumed_frozen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frozen: list[bool] = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(gc.isenabled()))
    assert gc.isenabled()
    try:
        gc_pause.pause()
        assert not gc.isenabled()
        gc_pause.resume()
        assert gc.isenabled()
        assert frozen == [False]  # frozen before the collector runs again
        gc_pause.resume()  # idempotent
        assert frozen == [False]
    finally:
        gc.enable()


def test_a_collector_that_was_off_is_left_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gc, "freeze", lambda: None)
    gc.disable()
    try:
        gc_pause.pause()
        gc_pause.resume()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_serve_resumes_the_collector_before_it_serves() -> None:
    """The CLI pauses the collector; the stdio transport turns it back on once the
    server is built, before it reads a message (not when the CLI returns). What the real
    CLI has loaded by then is what tools/list is answered with: none of DEFERRED."""
    code = """
import gc, json, sys
from gemini_failover.server import gc_pause

calls = []
modules = []
real = gc_pause.resume
def resume():
    real()
    calls.append([sys._getframe(1).f_code.co_name, gc.isenabled()])
    modules.append(sorted(sys.modules))
gc_pause.resume = resume
from gemini_failover.cli import main
code = main(["serve"])
print(json.dumps({"code": code, "calls": calls, "modules": modules[0]}))
"""
    result = _run(code, stdin=subprocess.DEVNULL)
    assert result["code"] == 0
    calls = result["calls"]
    assert isinstance(calls, list)
    assert calls[0] == ["serve_stdio", True]
    modules = result["modules"]
    assert isinstance(modules, list)
    loaded = [name for name in DEFERRED if name in modules]
    assert loaded == [], f"imported by the CLI before the first message: {loaded}"
