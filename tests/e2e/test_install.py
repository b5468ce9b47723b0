"""A real install as a tool: the wheel is built, installed into a fresh virtual
environment (as `pipx install` / `uv tool install` would), and its command runs: --help,
check (a good and a bad configuration), and serve over stdio as Claude Desktop starts it.

To stay fast and offline, the fresh environment gets its dependencies from this one
through a .pth file (only the directory: this environment's editable install of the
project is not active there); the project itself comes from the wheel alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path, PurePosixPath

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from gemini_failover import __version__
from tests.e2e.conftest import held

ROOT = Path(__file__).resolve().parents[2]
PIP = (sys.executable, "-m", "pip")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [*PIP, "wheel", "--no-build-isolation", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (built,) = out.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def tool(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed; returns its bin directory."""
    home = tmp_path_factory.mktemp("tool")
    venv.create(home, with_pip=False)
    python = home / "bin" / "python"
    subprocess.run(
        [*PIP, "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return home / "bin"


def test_the_wheel_carries_the_license_the_type_marker_and_the_command(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "gemini_failover/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "gemini-failover = gemini_failover.cli:main" in text
    assert f"-{__version__}-" in wheel.name  # the version has one source: __init__.py


def test_the_installed_command_runs_from_its_own_environment(tool: Path) -> None:
    where = subprocess.run(
        [
            str(tool / "python"),
            "-c",
            "import gemini_failover as g, importlib.metadata as m; "
            "print(g.__file__); print(m.version('gemini-failover-mcp'))",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.split()
    assert where[0].startswith(str(tool.parent)), where  # the wheel's copy, not src/
    assert where[1] == __version__

    done = subprocess.run(
        [str(tool / "gemini-failover"), "--help"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0 and "serve" in done.stdout

    env = {"GEMINI_API_KEY": "not-a-real-key"}
    done = subprocess.run(
        [str(tool / "gemini-failover"), "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert '"api_key": "**********"' in done.stdout

    bad = {**env, "GEMINI_FAILOVER_REDIS_URL": "localhost:6379"}
    done = subprocess.run(
        [str(tool / "gemini-failover"), "check"],
        env=bad,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "GEMINI_FAILOVER_REDIS_URL" in done.stderr


async def test_claude_desktop_can_start_the_installed_command(tool: Path) -> None:
    """The example entry of claude_desktop_config.example.json, with the installed
    command (and offline: --emulator, so the placeholder key is not used)."""
    example = json.loads((ROOT / "claude_desktop_config.example.json").read_text())
    entry = example["mcpServers"]["gemini-failover"]
    command = PurePosixPath(entry["command"])
    assert command.is_absolute() and command.name == "gemini-failover"
    assert ".venv" not in command.parts  # the installed tool, not the repo's venv
    params = StdioServerParameters(
        command=str(tool / command.name), args=[*entry["args"], "--emulator"], env=entry["env"]
    )
    async with held(Client(stdio_client(params))) as client:
        tools = (await client.list_tools()).tools
        assert len(tools) == 7
        result = await client.call_tool("gemini_count_tokens", {"text": "installed"})
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["total_tokens"] > 0
