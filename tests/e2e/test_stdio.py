"""The real server process over stdio (as Claude Desktop runs it), and the CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from gemini_failover.emulator import Emulator, EmulatorServer, expected_text
from tests.e2e.conftest import (
    CANARY,
    FALLBACK,
    PRIMARY,
    Progress,
    assert_clear_error,
    fast_env,
    held,
)

SCRIPT = Path(sys.executable).with_name("gemini-failover")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "gemini_failover.cli"]


def params(*args: str, env: dict[str, str] | None = None) -> StdioServerParameters:
    return StdioServerParameters(command=COMMAND[0], args=[*COMMAND[1:], *args], env=env or {})


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args], env=env or {}, capture_output=True, text=True, timeout=30, check=False
    )


async def test_stdio_server_against_the_emulator_never_leaks_the_key(
    emulator_server: EmulatorServer, emulator: Emulator, tmp_path: Path
) -> None:
    """Every tool and the resource over a real stdio subprocess, with a failover, a
    progress stream and failing calls; the canary API key appears nowhere: not in
    results, errors, health, metrics, nor in any line the server logged."""
    stderr_path = tmp_path / "server.stderr"
    env = fast_env(emulator_server.base_url)
    seen: list[str] = []
    with stderr_path.open("w") as errlog:
        transport = stdio_client(params("serve", "--metrics-port", "0", env=env), errlog=errlog)
        async with held(Client(transport)) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert len(tools) == 7

            progress = Progress()
            result = await client.call_tool(
                "gemini_generate", {"prompt": "over stdio"}, progress_callback=progress
            )
            assert not result.is_error
            assert progress.text == result.structured_content["text"]
            assert progress.text == expected_text("over stdio")
            seen.append(result.model_dump_json())

            emulator.configure(PRIMARY, faults=[{"kind": "status", "code": 503}])
            result = await client.call_tool("gemini_generate", {"prompt": "fail over"})
            out = result.structured_content
            assert out is not None and out["served_by"] == FALLBACK
            assert out["failovers"] == [{"from": PRIMARY, "to": FALLBACK, "reason": "transient"}]
            seen.append(result.model_dump_json())

            calls: list[tuple[str, dict[str, Any]]] = [
                ("gemini_chat", {"turns": [{"role": "user", "text": "hello"}]}),
                ("gemini_generate_json", {"prompt": "p", "schema": {"type": "object"}}),
                ("gemini_count_tokens", {"text": "count"}),
                ("gemini_embed", {"texts": ["a", "b"]}),
                ("gemini_list_models", {}),
                ("gemini_health", {}),
            ]
            for tool, arguments in calls:
                result = await client.call_tool(tool, arguments)
                assert not result.is_error, (tool, result.content)
                seen.append(result.model_dump_json())
            resource = await client.read_resource("health://status")
            seen.append(resource.model_dump_json())

            # Failing calls: upstream auth failure, bad request, all models down.
            emulator.configure(FALLBACK, faults=[{"kind": "auth", "code": 403}])
            result = await client.call_tool("gemini_generate", {"prompt": "auth"})
            assert "GEMINI_API_KEY" in assert_clear_error(result, "gemini_generate")
            seen.append(result.model_dump_json())
            emulator.configure(FALLBACK, faults=[{"kind": "status", "code": 400}])
            result = await client.call_tool("gemini_generate", {"prompt": "bad"})
            seen.append(assert_clear_error(result, "gemini_generate"))
            emulator.configure(FALLBACK, faults=[{"kind": "status", "code": 500}])
            result = await client.call_tool("gemini_generate", {"prompt": "down"})
            seen.append(assert_clear_error(result, "gemini_generate"))
            result = await client.call_tool("gemini_generate", {"prompt": "  "})
            seen.append(assert_clear_error(result, "gemini_generate"))

            logged = stderr_path.read_text()
            port = re.search(r"metrics at http://127\.0\.0\.1:(\d+)/metrics", logged)
            assert port, logged
            async with httpx2.AsyncClient() as http:
                metrics = await http.get(f"http://127.0.0.1:{port.group(1)}/metrics")
                healthz = await http.get(f"http://127.0.0.1:{port.group(1)}/healthz")
            assert metrics.status_code == 200 and healthz.status_code == 200
            assert "dualmodelmanager_failover_events_total" in metrics.text
            seen.append(metrics.text)

    logged = stderr_path.read_text()
    lines = [line for line in logged.splitlines() if line.strip()]
    assert any('"failover"' in line or "failover" in line for line in lines)
    # stdout is the protocol: every log line is JSON on stderr.
    assert all(line.startswith("{") for line in lines), lines[:5]
    for text in [*seen, logged]:
        assert CANARY not in text
    # The requests reached the emulator with the key (it was used, just never shown).
    assert emulator.count(model=PRIMARY, action="stream") == 1


async def test_stdio_emulator_mode_says_so(tmp_path: Path) -> None:
    stderr_path = tmp_path / "server.stderr"
    with stderr_path.open("w") as errlog:
        transport = stdio_client(params("serve", "--emulator"), errlog=errlog)
        async with held(Client(transport)) as client:
            result = await client.call_tool("gemini_generate", {"prompt": "offline"})
            assert not result.is_error
            assert result.structured_content["text"] == expected_text("offline")
            health = (await client.call_tool("gemini_health", {})).structured_content
    assert health is not None
    assert health["emulator_mode"] is True
    assert "EMULATOR MODE" in health["notice"]
    assert "emulator mode" in health["reasons"][0]
    assert "EMULATOR MODE" in stderr_path.read_text()


# -- the CLI --------------------------------------------------------------------------------


def test_serve_without_an_api_key_is_a_clear_startup_error() -> None:
    done = cli("serve")
    assert done.returncode == 2  # a configuration error
    assert "GEMINI_API_KEY is not set" in done.stderr
    assert "--emulator" in done.stderr
    assert done.stdout == ""


def test_serve_refuses_an_open_non_loopback_bind() -> None:
    done = cli("serve", "--transport", "http", "--host", "0.0.0.0", env={"GEMINI_API_KEY": CANARY})
    assert done.returncode == 2  # a configuration error
    assert "GEMINI_FAILOVER_AUTH_TOKEN" in done.stderr
    assert CANARY not in done.stderr


def test_check_prints_the_effective_settings_with_secrets_masked(tmp_path: Path) -> None:
    env = {"GEMINI_API_KEY": CANARY, "GEMINI_FAILOVER_AUTH_TOKEN": "t" * 24}
    done = cli("check", env=env)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["api_key"] == "**********"
    assert data["auth_token"] == "**********"
    assert data["models"] == ["gemini-pro-latest", "gemini-flash-latest"]
    assert CANARY not in done.stdout + done.stderr

    bad = tmp_path / "bad.toml"
    bad.write_text("total_timeout = -1\n")
    done = cli("check", "--config", str(bad), env=env)
    assert done.returncode == 2  # a configuration error
    assert "total_timeout" in done.stderr

    done = cli("check", env={"GEMINI_FAILOVER_MODELS": ""})
    assert done.returncode == 2  # a configuration error
    assert "models" in done.stderr


def test_demo_slot_without_the_demo_module() -> None:
    code = (
        "import sys; sys.modules['gemini_failover.demo'] = None; "
        "from gemini_failover.cli import main; sys.exit(main(['demo', '--fast']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 2
    assert "gemini_failover.demo is missing" in done.stderr


def test_importing_the_cli_does_not_import_the_sdk_or_mcp() -> None:
    code = (
        "import sys, gemini_failover.cli, gemini_failover.server.serve; "
        "heavy = [m for m in ('google.genai', 'mcp', 'structlog', 'gemini_failover.resilience"
        ".manager') if m in sys.modules]; print(heavy)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert done.stdout.strip() == "[]"
