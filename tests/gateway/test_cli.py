"""`gemini-failover gateway` refuses what would be unsafe or wrong before it serves."""

from __future__ import annotations

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
