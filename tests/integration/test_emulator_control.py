"""Control API over HTTP, scenario files, and the ways of running the emulator."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
from google import genai
from google.genai import errors, types
from pydantic import ValidationError

from gemini_failover.emulator import (
    Emulator,
    EmulatorServer,
    EmulatorThread,
    Scenario,
    expected_text,
    load_scenario,
)

SCENARIO = {
    "models": {
        "flaky": {
            "profile": {"input_token_limit": 100, "display_name": "Flaky"},
            "faults": [{"kind": "status", "code": 503, "count": 1, "actions": ["generate"]}],
        },
        "steady": {},
    }
}


def _client(base_url: str) -> genai.Client:
    return genai.Client(
        api_key="k",
        http_options=types.HttpOptions(
            base_url=base_url,
            api_version="v1beta",
            retry_options=types.HttpRetryOptions(attempts=1),
        ),
    )


async def test_put_model_settings_over_http(
    emulator_server: EmulatorServer, genai_client: genai.Client
) -> None:
    settings = {
        "profile": {"output_token_limit": 5, "stream_chunks": 2},
        "faults": [{"kind": "status", "code": 500, "count": 1}],
    }
    async with httpx2.AsyncClient(base_url=emulator_server.base_url) as http:
        put = await http.put("/_emulator/models/models/m", json=settings)
        assert put.status_code == 200
        assert put.json()["model"] == "m"
        assert put.json()["faults"] == [{"kind": "status", "code": 500, "count": 1}]

        with pytest.raises(errors.ServerError):
            await genai_client.aio.models.generate_content(model="m", contents="q")
        response = await genai_client.aio.models.generate_content(model="m", contents="q")
        assert response.candidates is not None
        assert response.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS

        listed = (await http.get("/_emulator/models")).json()
        assert listed["models"]["m"]["profile"]["output_token_limit"] == 5
        assert listed["models"]["m"]["faults"] == []

        log = (await http.get("/_emulator/requests", params={"model": "m"})).json()
        assert [(r["action"], r["status"], r["outcome"]) for r in log["requests"]] == [
            ("generate", 500, "fault:status"),
            ("generate", 200, "ok"),
        ]
        assert (await http.delete("/_emulator/models/m")).json() == {"deleted": True}
        assert (await http.get("/_emulator/models/m")).status_code == 404


async def test_put_rejects_unknown_fault_kinds_and_bad_profiles(
    emulator_server: EmulatorServer,
) -> None:
    async with httpx2.AsyncClient(base_url=emulator_server.base_url) as http:
        unknown = await http.put("/_emulator/models/m", json={"faults": [{"kind": "explode"}]})
        bad_profile = await http.put("/_emulator/models/m", json={"profile": {"stream_chunks": 0}})
        extra = await http.put(
            "/_emulator/models/m",
            json={"faults": [{"kind": "status", "code": 503, "colour": "red"}]},
        )
        not_json = await http.put("/_emulator/models/m", content=b"{")
    assert unknown.status_code == 422
    message = unknown.json()["error"]["message"]
    assert "'explode'" in message
    assert "'status'" in message  # lists the kinds that exist
    assert bad_profile.status_code == 422
    assert "stream_chunks" in bad_profile.json()["error"]["message"]
    assert extra.status_code == 422
    assert not_json.status_code == 400
    assert "m" not in emulator_server.emulator.settings()["models"]


def test_configure_validates_faults() -> None:
    emulator = Emulator()
    with pytest.raises(ValidationError):
        emulator.configure("m", faults=[{"kind": "explode"}])
    with pytest.raises(ValidationError):
        emulator.configure("m", faults=[{"kind": "stream_cut", "after": -1}])


async def test_scenario_file_and_reset(tmp_path: Path) -> None:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(SCENARIO), encoding="utf-8")
    scenario = load_scenario(path)
    assert isinstance(scenario, Scenario)
    emulator = Emulator(scenario)

    async with EmulatorServer(emulator) as server:
        client = _client(server.base_url)
        models = client.aio.models
        assert (await models.get(model="flaky")).display_name == "Flaky"
        with pytest.raises(errors.ServerError):
            await models.generate_content(model="flaky", contents="q")
        assert (await models.generate_content(model="flaky", contents="q")).text
        with pytest.raises(errors.ClientError) as too_long:
            await models.generate_content(model="flaky", contents="x" * 404)
        assert too_long.value.code == 400
        assert emulator.count(model="flaky") == 4

        async with httpx2.AsyncClient(base_url=server.base_url) as http:
            assert (await http.post("/_emulator/reset")).json() == {"reset": True}
        assert emulator.requests == []
        with pytest.raises(errors.ServerError):  # the scenario's count is back
            await models.generate_content(model="flaky", contents="q")
        await client.aio.aclose()


def test_invalid_scenario_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"models": {"m": {"faults": [{"kind": "nope"}]}}}))
    with pytest.raises(ValidationError):
        load_scenario(path)


async def test_emulator_thread_serves_sync_callers_and_wakes_async_waiters() -> None:
    emulator = Emulator()
    with EmulatorThread(emulator) as server:
        client = _client(server.base_url)
        response = client.models.generate_content(model="m", contents="sync")
        assert response.text == expected_text("sync")
        # wait_for in this loop is woken by a record appended in the server's thread
        records = await emulator.wait_for(lambda log: len(log) == 1, timeout=2)
        assert records[0].outcome == "ok"
        client.close()
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(f"{server.base_url}/v1beta/models")


def test_run_emulator_serves_until_sigint(tmp_path: Path) -> None:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(SCENARIO), encoding="utf-8")
    code = (
        "import sys; from gemini_failover.emulator import run_emulator; "
        "run_emulator('127.0.0.1', 0, sys.argv[1])"
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        url = None
        for line in proc.stderr:
            match = re.search(r"Gemini emulator on (http://\S+)", line)
            if match:
                url = match.group(1)
                break
        assert url is not None
        headers = {"x-goog-api-key": "k"}
        models = httpx2.get(f"{url}/v1beta/models", headers=headers).json()["models"]
        assert [m["name"] for m in models] == ["models/flaky", "models/steady"]
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=10)
        assert proc.returncode == 0, rest
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
