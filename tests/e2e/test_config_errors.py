"""Every malformed setting, through the real command: `gemini-failover check` and
`gemini-failover serve` (stdio, as Claude Desktop starts it, with an initialize request
waiting on stdin; and streamable HTTP) each print one line naming the setting and its
environment variable, exit 2, print no traceback, and serve nothing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.e2e.test_stdio import COMMAND

KEY = {"GEMINI_API_KEY": "not-a-real-key"}

#: (variable, value, what the message must contain besides the variable's name)
MALFORMED: list[tuple[str, str, str]] = [
    ("GEMINI_FAILOVER_REDIS_URL", "localhost:6379", "redis://"),
    ("GEMINI_FAILOVER_REDIS_URL", "redis://:secret-pw@host:notaport/0", "port"),
    # urllib's own message would quote the password (read as the port) back
    ("GEMINI_FAILOVER_REDIS_URL", "redis://default:secret-pw#a@host:6379/0", "not a valid URL"),
    ("GEMINI_FAILOVER_REDIS_URL", "redis://localhost:6379/0?socket_timeout=abc", "query options"),
    ("GEMINI_FAILOVER_REDIS_URL", "redis:///0", "no host"),
    ("GEMINI_FAILOVER_MODEL_OVERRIDES", "{not json", "not valid JSON"),
    ("GEMINI_FAILOVER_MODEL_OVERRIDES", '{"m": {"input_token_limit": "big"}}', "integer"),
    ("GEMINI_FAILOVER_EMBEDDING_MODELS", " , ", "at least one model"),
    ("GEMINI_FAILOVER_MODELS", "a,a", "duplicate"),
    ("GEMINI_FAILOVER_TOTAL_TIMEOUT", "-1", "greater than 0"),
    ("GEMINI_FAILOVER_ATTEMPT_TIMEOUT", "500", "GEMINI_FAILOVER_TOTAL_TIMEOUT"),
    ("GEMINI_FAILOVER_LOG_LEVEL", "loud", "debug"),
    ("GEMINI_FAILOVER_PORT", "70000", "65535"),
    ("GEMINI_FAILOVER_BREAKER", "[1", "not valid JSON"),
    ("GEMINI_FAILOVER_BREAKER__BREAK_SECOND", "3", "not permitted"),
    ("GEMINI_FAILOVER_CONTINUATION", "maybe", "continue"),
]

INITIALIZE = (
    json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "test", "version": "0"},
            },
        }
    )
    + "\n"
)


async def run(*args: str, env: dict[str, str], stdin: str = "") -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *COMMAND,
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def assert_one_line_config_error(
    done: tuple[int, str, str], variable: str, needle: str, secret: str = "secret-pw"
) -> None:
    code, out, err = done
    assert code == 2, err
    assert out == "", "something was served"
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("gemini-failover: error: ")
    assert variable in lines[0]
    assert needle in lines[0]
    assert secret not in lines[0]


async def test_every_malformed_setting_stops_check_and_serve_with_one_line() -> None:
    # All cases at once (each a fresh process; the interpreter's start-up dominates).
    gate = asyncio.Semaphore(6)

    async def case(variable: str, value: str, serve: bool) -> tuple[int, str, str]:
        env = {**KEY, variable: value}
        async with gate:
            if serve:
                return await run("serve", env=env, stdin=INITIALIZE)
            return await run("check", env=env)

    runs = [(v, value, n, serve) for v, value, n in MALFORMED for serve in (False, True)]
    results = await asyncio.gather(*(case(v, value, serve) for v, value, _, serve in runs))
    for (variable, value, needle, serve), done in zip(runs, results, strict=True):
        try:
            assert_one_line_config_error(done, variable, needle)
        except AssertionError as exc:
            command = "serve" if serve else "check"
            raise AssertionError(f"{command} with {variable}={value!r}: {exc}") from exc


async def test_http_serve_stops_before_listening() -> None:
    env = {**KEY, "GEMINI_FAILOVER_MODEL_OVERRIDES": "{not json"}
    done = await run("serve", "--transport", "http", "--port", "0", env=env)
    assert_one_line_config_error(done, "GEMINI_FAILOVER_MODEL_OVERRIDES", "not valid JSON")


async def test_a_bad_config_file_and_a_bad_scenario_are_one_line_too(tmp_path: Path) -> None:
    config = tmp_path / "settings.toml"
    config.write_text('redis_url = "http://example.com"\n')
    done = await run("serve", "--config", str(config), env=KEY, stdin=INITIALIZE)
    assert_one_line_config_error(done, "GEMINI_FAILOVER_REDIS_URL", "redis://")
    scenario = tmp_path / "scenario.json"
    scenario.write_text('{"models": 3}')
    done = await run("serve", "--emulator", "--scenario", str(scenario), env={}, stdin=INITIALIZE)
    assert_one_line_config_error(done, "--scenario", "models")


async def test_unknown_variables_are_warned_about() -> None:
    env = {**KEY, "GEMINI_FAILOVER_MODEL": "gemini-pro-latest"}
    code, out, err = await run("check", env=env)
    assert code == 0
    assert json.loads(out)["models"] == ["gemini-pro-latest", "gemini-flash-latest"]
    assert (
        "gemini-failover: warning: GEMINI_FAILOVER_MODEL is not a setting and is ignored; "
        "did you mean GEMINI_FAILOVER_MODELS?"
    ) in err.splitlines()
    # serve says it too (on stderr), and then serves
    code, out, err = await run("serve", "--emulator", env=env, stdin=INITIALIZE)
    assert code == 0
    assert "GEMINI_FAILOVER_MODEL is not a setting" in err
    assert json.loads(out.splitlines()[0])["id"] == 1


async def test_check_warns_about_an_open_non_loopback_host() -> None:
    code, _, err = await run("check", env={**KEY, "GEMINI_FAILOVER_HOST": "0.0.0.0"})
    assert code == 0
    assert "host 0.0.0.0 is not loopback and GEMINI_FAILOVER_AUTH_TOKEN is not set" in err
