"""`gemini-failover gateway` refuses what would be unsafe or wrong before it serves, and
starts as ``serve`` does (the collector paused while it is built)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gemini_failover.cli import main
from gemini_failover.gateway.auth import gateway_security
from gemini_failover.server.runtime import StartupError


def test_a_public_bind_needs_gateway_keys() -> None:
    with pytest.raises(StartupError, match="GEMINI_FAILOVER_GATEWAY_KEYS"):
        gateway_security("0.0.0.0", [])
    with pytest.raises(StartupError, match="gateway key of 5 characters"):
        gateway_security("0.0.0.0", ["a-key"])
    open_policy = gateway_security("0.0.0.0", ["a-key-of-24-characters!!"])
    assert open_policy.token is None and open_policy.allowed_hosts == ()
    loopback = gateway_security("127.0.0.1", [])
    assert "localhost:*" in loopback.allowed_hosts


def test_the_cli_refuses_a_public_bind_without_keys(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "upstream")
    monkeypatch.delenv("GEMINI_FAILOVER_GATEWAY_KEYS", raising=False)
    assert main(["gateway", "--host", "0.0.0.0", "--port", "0"]) == 1
    assert "without GEMINI_FAILOVER_GATEWAY_KEYS" in capsys.readouterr().err


def test_the_cli_refuses_an_alias_that_names_a_chain_model(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "upstream")
    monkeypatch.setenv("GEMINI_FAILOVER_MODELS", "pro,flash")
    monkeypatch.setenv("GEMINI_FAILOVER_GATEWAY_ALIASES", "auto,flash")
    assert main(["gateway", "--port", "0"]) == 1
    assert "also name chain models" in capsys.readouterr().err


def test_the_cli_needs_an_upstream_key_or_the_emulator(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert main(["gateway", "--port", "0"]) == 1
    assert "GEMINI_API_KEY is not set" in capsys.readouterr().err
    assert main(["gateway", "--scenario", "x.json"]) == 1


def test_the_gateway_resumes_the_collector_frozen_before_it_serves() -> None:
    """As ``serve`` does: the collector is paused while the gateway and its runtime are
    built, then resumes (start-up's objects frozen) before the first request."""
    code = """
import gc, json, signal, sys
from gemini_failover.server import gc_pause

calls = []
real = gc_pause.resume
def resume():
    was_paused = not gc.isenabled()
    real()
    frozen = gc.get_freeze_count() > 0
    calls.append([sys._getframe(1).f_code.co_name, was_paused, gc.isenabled(), frozen])
    if len(calls) == 1:
        signal.raise_signal(signal.SIGINT)  # stop before serving
gc_pause.resume = resume
signal.signal(signal.SIGINT, signal.default_int_handler)  # even if inherited as ignored
from gemini_failover.cli import main
code = main(["gateway", "--emulator", "--port", "0"])
print(json.dumps({"code": code, "calls": calls}))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEMINI_FAILOVER_")}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["code"] == 0
    assert result["calls"][0] == ["serve_gateway", True, True, True]
