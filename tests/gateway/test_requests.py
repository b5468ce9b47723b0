"""What the gateway refuses before anything reaches upstream: clients without a valid
gateway key, foreign Host/Origin headers, bad JSON, unknown or unsupported fields,
unsupported methods, oversized bodies, unrouted models. Each answer is the status and
Gemini error shape the real API uses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from google.genai import errors

from gemini_failover.emulator import EmulatorServer
from gemini_failover.emulator.text import expected_text
from tests.gateway.conftest import (
    FALLBACK,
    KEY,
    PRIMARY,
    UPSTREAM_KEY,
    Gateway,
    gateway_settings,
    run_gateway,
)

GENERATE = "/v1beta/models/auto:generateContent"
BODY = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}


@pytest.fixture
async def http(gateway: Gateway) -> AsyncIterator[httpx2.AsyncClient]:
    async with gateway.http() as client:
        client.headers["x-goog-api-key"] = KEY
        yield client


def _upstream_calls(emulator: EmulatorServer) -> int:
    """Gemini calls that reached the emulator (models.get profile fetches aside)."""
    return sum(1 for r in emulator.emulator.requests if r.action != "get")


async def test_a_missing_key_is_401_and_a_wrong_key_403_in_the_sdk(
    gateway: Gateway, emulator: EmulatorServer
) -> None:
    async with gateway.http() as http:
        missing = await http.post(GENERATE, json=BODY)
    assert missing.status_code == 401
    assert missing.json()["error"]["status"] == "UNAUTHENTICATED"
    assert missing.json()["error"]["details"][0]["reason"] == "CREDENTIALS_MISSING"
    with pytest.raises(errors.ClientError) as caught:
        await gateway.client("not-the-key").aio.models.generate_content(model="auto", contents="x")
    assert caught.value.code == 403
    assert caught.value.status == "PERMISSION_DENIED"
    assert caught.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    assert _upstream_calls(emulator) == 0


async def test_the_key_is_accepted_as_a_query_parameter_and_never_forwarded(
    gateway: Gateway, emulator: EmulatorServer
) -> None:
    async with gateway.http() as http:
        response = await http.post(f"{GENERATE}?key={KEY}", json=BODY)
    assert response.status_code == 200
    assert response.json()["modelVersion"] == PRIMARY
    assert KEY not in response.text and UPSTREAM_KEY not in response.text


async def test_probes_are_open_and_metrics_need_a_key(gateway: Gateway) -> None:
    async with gateway.http() as http:
        assert (await http.get("/healthz")).status_code == 200
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["ready"] is True
        assert (await http.get("/metrics")).status_code == 401
        metrics = await http.get("/metrics", headers={"authorization": f"Bearer {KEY}"})
    assert metrics.status_code == 200
    assert "dualmodelmanager_" in metrics.text
    assert KEY not in metrics.text and UPSTREAM_KEY not in metrics.text


async def test_gateway_calls_are_counted_in_the_managers_metrics(
    gateway: Gateway, http: httpx2.AsyncClient
) -> None:
    assert (await http.post(GENERATE, json=BODY)).status_code == 200
    text = (await http.get("/metrics")).text
    served = [
        line
        for line in text.splitlines()
        if line.startswith("dualmodelmanager_requests_total") and 'status_code="ok"' in line
    ]
    assert served and float(served[0].rsplit(" ", 1)[1]) >= 1


async def test_a_foreign_host_or_origin_is_refused(http: httpx2.AsyncClient) -> None:
    host = await http.post(GENERATE, json=BODY, headers={"host": "evil.example"})
    assert host.status_code == 421
    origin = await http.post(GENERATE, json=BODY, headers={"origin": "https://evil.example"})
    assert origin.status_code == 403


BAD_BODIES: list[tuple[str, Any, int, str]] = [
    ("not JSON", b"{nope", 400, "Invalid JSON payload received."),
    ("a JSON array", b"[1, 2]", 400, "Invalid JSON payload received."),
    # nesting deep enough to exhaust the standard library's recursion (it was a 500)
    ("JSON nested 100,000 deep", b"[" * 100_000 + b"]" * 100_000, 400, "Invalid JSON payload"),
    ("a NaN, which is not JSON", b'{"contents": NaN}', 400, "Invalid JSON payload received."),
    ("an unknown top-level field", {**BODY, "frobnicate": 1}, 400, 'Unknown name "frobnicate"'),
    (
        "an unknown config field",
        {**BODY, "generationConfig": {"warmth": 1}},
        400,
        "Unknown name \"warmth\" at 'generation_config'",
    ),
    (
        "function calling",
        {**BODY, "tools": [{"functionDeclarations": [{"name": "f"}]}]},
        400,
        "functionDeclarations (function calling) is not supported",
    ),
    (
        "safety settings",
        {**BODY, "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT"}]},
        400,
        "safetySettings is not supported",
    ),
    (
        "a thinking budget of the wrong type",
        {**BODY, "generationConfig": {"thinkingConfig": {"thinkingBudget": "lots"}}},
        400,
        "Invalid value at 'generation_config.thinking_config.thinking_budget'",
    ),
    (
        "top_k in snake case",
        {**BODY, "generation_config": {"top_k": 3}},
        400,
        "generationConfig.topK is not supported",
    ),
    (
        "file data",
        {"contents": [{"parts": [{"fileData": {"fileUri": "files/abc"}}]}]},
        400,
        "fileData is a file in one API key's Files API storage",
    ),
    ("no contents", {}, 400, "contents is not specified"),
    ("empty parts", {"contents": [{"parts": []}]}, 400, "must not be empty"),
    (
        "a foreign role",
        {"contents": [{"role": "system", "parts": [{"text": "x"}]}]},
        400,
        "Please use a valid role",
    ),
    (
        "a temperature of the wrong type",
        {**BODY, "generationConfig": {"temperature": "hot"}},
        400,
        "Invalid value at 'generation_config.temperature'",
    ),
    (
        "two candidates",
        {**BODY, "generationConfig": {"candidateCount": 2}},
        400,
        "candidateCount",
    ),
]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [case[1:] for case in BAD_BODIES],
    ids=[case[0] for case in BAD_BODIES],
)
async def test_bad_bodies_get_gemini_errors_and_reach_nothing_upstream(
    http: httpx2.AsyncClient, emulator: EmulatorServer, body: Any, status: int, message: str
) -> None:
    if isinstance(body, bytes):
        response = await http.post(GENERATE, content=body)
    else:
        response = await http.post(GENERATE, json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == status and error["status"] == "INVALID_ARGUMENT"
    assert message in error["message"]
    assert _upstream_calls(emulator) == 0


async def test_an_oversized_body_is_refused_unread(emulator: EmulatorServer) -> None:
    async with run_gateway(gateway_settings(emulator.base_url), max_body_bytes=64 * 1024) as gw:
        big = b'{"contents": [{"parts": [{"text": "' + b"x" * (200 * 1024) + b'"}]}]}'
        async with gw.http() as http:
            response = await http.post(GENERATE, content=big, headers={"x-goog-api-key": KEY})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert message == "Request payload size exceeds the limit: 65536 bytes."
    assert _upstream_calls(emulator) == 0


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/v1beta/models/auto:frobnicate", 404),
        ("GET", "/v1beta/models/auto:generateContent", 404),
        ("PUT", "/v1beta/models/auto:generateContent", 404),
        ("DELETE", "/v1beta/models/auto", 404),
        ("POST", "/v9/models/auto:generateContent", 404),
        ("GET", "/v1beta/tunedModels", 404),
    ],
)
async def test_unsupported_methods_and_paths_are_404(
    http: httpx2.AsyncClient, emulator: EmulatorServer, method: str, path: str, status: int
) -> None:
    response = await http.request(method, path, json=BODY)
    assert response.status_code == status
    assert response.json()["error"]["status"] == "NOT_FOUND"
    assert _upstream_calls(emulator) == 0


async def test_an_unrouted_model_is_gemini_404(gateway: Gateway, emulator: EmulatorServer) -> None:
    client = gateway.client()
    with pytest.raises(errors.ClientError) as caught:
        await client.aio.models.generate_content(model="gemini-1.0-ultra", contents="x")
    assert caught.value.code == 404 and caught.value.status == "NOT_FOUND"
    assert "models/gemini-1.0-ultra is not found" in (caught.value.message or "")
    with pytest.raises(errors.ClientError) as embed_on_chat:
        await client.aio.models.embed_content(model=PRIMARY, contents="x")
    assert embed_on_chat.value.code == 404
    assert _upstream_calls(emulator) == 0


async def test_a_model_later_in_the_chain_starts_there(
    http: httpx2.AsyncClient, emulator: EmulatorServer
) -> None:
    response = await http.post(f"/v1beta/models/{FALLBACK}:generateContent", json=BODY)
    assert response.status_code == 200, response.text
    assert response.headers["x-gemini-failover-served-by"] == FALLBACK
    assert response.json()["modelVersion"] == FALLBACK
    assert _upstream_calls(emulator) == 1  # the primary, before it in the chain, is not asked


async def test_models_list_pages(http: httpx2.AsyncClient) -> None:
    first = (await http.get("/v1beta/models", params={"pageSize": 2})).json()
    assert [m["name"] for m in first["models"]] == ["models/auto", f"models/{PRIMARY}"]
    assert first["nextPageToken"] == "2"
    rest = (await http.get("/v1beta/models", params={"pageToken": "2"})).json()
    assert len(rest["models"]) == 2 and "nextPageToken" not in rest


async def test_a_stream_without_alt_sse_is_a_json_array(http: httpx2.AsyncClient) -> None:
    response = await http.post("/v1beta/models/auto:streamGenerateContent", json=BODY)
    assert response.status_code == 200
    chunks = response.json()
    assert isinstance(chunks, list) and len(chunks) >= 2
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    text = "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks)
    assert text == expected_text("hello")


async def test_the_gemini_paths_are_found_under_a_mount_point(gateway: Gateway) -> None:
    """Mounted under a prefix (a Starlette Mount, or uvicorn's --root-path), the gateway
    routes by the path under it, as Starlette's router does."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from gemini_failover.gateway import build_gateway_app, gateway_security

    app = build_gateway_app(gateway.runtime, gateway_security("127.0.0.1", [KEY]), keys=[KEY])
    outer = Starlette(routes=[Mount("/gw", app=app)])
    transport = httpx2.ASGITransport(app=outer)
    async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        client.headers["x-goog-api-key"] = KEY
        listed = await client.get("/gw/v1beta/models")
        assert listed.status_code == 200, listed.text
        assert f"models/{PRIMARY}" in [m["name"] for m in listed.json()["models"]]
        got = await client.get(f"/gw/v1beta/models/{PRIMARY}")
        assert got.status_code == 200 and got.json()["name"] == f"models/{PRIMARY}"
        outside = await client.get("/v1beta/models")  # not under the mount: not ours
        assert outside.status_code == 404
