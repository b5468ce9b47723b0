"""Endpoints end to end: the server's runtime with two endpoints (the Gemini API and
Vertex AI in project mode) pointed at its in-process emulator, a per-day quota on one
served by the same model on the other through the MCP tools, and the endpoints'
credentials kept out of every output; bad endpoint settings stop `check` and `serve`
with one line."""

from __future__ import annotations

import json

from mcp import Client

from gemini_failover.config import load_settings
from gemini_failover.server.runtime import Runtime
from tests.e2e.conftest import CANARY, held
from tests.e2e.test_config_errors import INITIALIZE, KEY, assert_one_line_config_error, run

PRO = "gemini-2.5-pro"
STUDIO_PRO, VERTEX_PRO, STUDIO_FLASH = f"studio:{PRO}", f"vertex:{PRO}", "studio:gemini-2.5-flash"


async def test_a_day_quota_on_one_endpoint_is_served_by_the_same_model_on_the_other() -> None:
    settings = load_settings(
        models=[STUDIO_PRO, VERTEX_PRO, STUDIO_FLASH],
        embedding_models=["studio:gemini-embedding-001"],
        endpoints={
            "studio": {"api_key": CANARY},
            "vertex": {"kind": "vertex", "project": "proj", "location": "us-central1"},
        },
        retry={"max_attempts_per_model": 1},
    )
    async with (
        Runtime(settings, emulator=True) as runtime,
        held(Client(runtime.build_server())) as client,
    ):
        assert runtime.emulator is not None
        runtime.emulator.configure(
            PRO, faults=[{"kind": "rate_limit", "rpm": 0, "quota": "day", "endpoint": "gemini_api"}]
        )
        result = await client.call_tool("gemini_generate", {"prompt": "which pool?"})
        pinned = await client.call_tool("gemini_generate", {"prompt": "pro", "model": PRO})
        health = (await client.call_tool("gemini_health", {})).structured_content
        metrics = runtime.metrics.render()[0].decode()
        requests = [(r.endpoint, r.model, r.status) for r in runtime.emulator.requests]
    assert result.structured_content is not None and pinned.structured_content is not None
    assert result.structured_content["served_by"] == VERTEX_PRO
    # a bare name is the first entry serving the model: studio's, skipped for its quota
    assert pinned.structured_content["served_by"] == VERTEX_PRO
    assert ("gemini_api", PRO, 429) in requests and ("vertex", PRO, 200) in requests
    assert health is not None
    rows = {m["model"]: m for m in health["models"]}
    assert rows[STUDIO_PRO]["endpoint"] == "studio" and rows[VERTEX_PRO]["endpoint"] == "vertex"
    assert rows[STUDIO_PRO]["quota_exhausted_for_s"] > 0
    assert 'dualmodelmanager_requests_total{endpoint="vertex",model="gemini-2.5-pro"' in metrics
    for output in (json.dumps(health), metrics, result.model_dump_json()):
        assert CANARY not in output


async def test_bad_endpoint_settings_stop_check_and_serve_with_one_line() -> None:
    cases = [
        ({"GEMINI_FAILOVER_MODELS": "vertx:gemini-2.5-pro"}, "GEMINI_FAILOVER_MODELS", "vertx"),
        (
            {"GEMINI_FAILOVER_ENDPOINTS": '{"v": {"kind": "vertex", "api_key": "secret-pw"}}'}
            | {"GEMINI_FAILOVER_ENDPOINTS__V__PROJECT": "p"},
            "GEMINI_FAILOVER_ENDPOINTS__V",
            "either api_key",
        ),
        (
            {"GEMINI_FAILOVER_ENDPOINTS__S__KIND": "openai"},
            "GEMINI_FAILOVER_ENDPOINTS__S__KIND",
            "",
        ),
        ({"GEMINI_FAILOVER_DEFAULT_ENDPOINT": "nowhere"}, "GEMINI_FAILOVER_DEFAULT_ENDPOINT", ""),
    ]
    for extra, variable, needle in cases:
        for args in (("check",), ("serve",)):
            done = await run(*args, env={**KEY, **extra}, stdin=INITIALIZE)
            assert_one_line_config_error(done, variable, needle)


async def test_an_endpoint_without_a_key_stops_serve() -> None:
    env = {
        **KEY,
        "GEMINI_FAILOVER_ENDPOINTS": '{"studio": {}}',
        "GEMINI_FAILOVER_MODELS": "gemini-2.5-pro,studio:gemini-2.5-pro",
    }
    code, out, err = await run("serve", env=env, stdin=INITIALIZE)
    assert code != 0 and out == ""
    assert "the endpoint 'studio' has no api_key" in err
    assert "GEMINI_FAILOVER_ENDPOINTS__STUDIO__API_KEY" in err
    code, out, err = await run("check", env=env)
    assert code == 0
    assert "studio" in err and "api_key" in err  # check warns, as for GEMINI_API_KEY
