"""The real google-genai SDK against the gateway, which calls the emulator through the
failover manager: answers, streams continued across a cut, counts, embeddings, models,
and the errors the SDK raises for the manager's failures."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from google.genai import errors, types

from gemini_failover.emulator import EmulatorServer
from gemini_failover.emulator.text import expected_text
from tests.gateway.conftest import (
    EMBEDDING,
    FALLBACK,
    PRIMARY,
    UPSTREAM_KEY,
    Gateway,
    gateway_settings,
    run_gateway,
)

PROMPT = "Tell me about failover gateways."
EXPECTED = expected_text(PROMPT)


def _headers(response: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in response.sdk_http_response.headers.items()}


async def test_generate_content_is_served_by_the_primary_with_provenance(
    gateway: Gateway, emulator: EmulatorServer
) -> None:
    client = gateway.client()
    response = await client.aio.models.generate_content(model="auto", contents=PROMPT)
    assert response.text == EXPECTED
    assert response.model_version == PRIMARY
    assert response.usage_metadata is not None and response.usage_metadata.prompt_token_count
    headers = _headers(response)
    assert headers["x-gemini-failover-served-by"] == PRIMARY
    assert headers["x-gemini-failover-failovers"] == "0"
    assert headers["x-gemini-failover-attempts"] == "1"
    assert emulator.emulator.count(model=PRIMARY, action="generate") == 1


async def test_a_failed_primary_is_failed_over_and_the_headers_say_so(
    gateway: Gateway, emulator: EmulatorServer
) -> None:
    emulator.emulator.configure(PRIMARY, faults=[{"kind": "status", "code": 503}])
    response = await gateway.client().aio.models.generate_content(model="auto", contents=PROMPT)
    assert response.text == EXPECTED
    assert response.model_version == FALLBACK
    headers = _headers(response)
    assert headers["x-gemini-failover-served-by"] == FALLBACK
    assert headers["x-gemini-failover-failovers"] == "1"
    assert headers["x-gemini-failover-attempts"] == "3"  # two on the primary, one on flash


async def test_chat_turns_system_instruction_and_config_reach_the_model(
    gateway: Gateway, emulator: EmulatorServer
) -> None:
    chat = gateway.client().aio.chats.create(
        model=PRIMARY,
        config=types.GenerateContentConfig(
            system_instruction="Be brief.", temperature=0.2, top_p=0.9, max_output_tokens=500
        ),
    )
    first = await chat.send_message(PROMPT)
    assert first.text == EXPECTED
    turns = [
        types.Content(role="user", parts=[types.Part(text=PROMPT)]),
        types.Content(role="model", parts=[types.Part(text="Gateways relay calls.")]),
        types.Content(role="user", parts=[types.Part(text="Go on.")]),
    ]
    second = await gateway.client().aio.models.generate_content(model=PRIMARY, contents=turns)
    assert second.text  # the emulator continues the conversation
    assert emulator.emulator.count(model=PRIMARY, action="generate") == 2


async def test_a_stream_cut_mid_way_reaches_the_client_as_one_unbroken_stream(
    gateway: Gateway, emulator: EmulatorServer
) -> None:
    emulator.emulator.configure(PRIMARY, faults=[{"kind": "stream_cut", "after": 3}])
    stream = await gateway.client().aio.models.generate_content_stream(
        model="auto", contents=PROMPT
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.text or "" for c in chunks) == EXPECTED
    versions = [c.model_version for c in chunks]
    assert versions[0] == PRIMARY and versions[-1] == FALLBACK
    assert chunks[-1].candidates is not None
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert emulator.emulator.count(model=FALLBACK, action="stream") == 1


async def test_a_stream_without_faults_is_relayed_chunk_by_chunk(gateway: Gateway) -> None:
    stream = await gateway.client().aio.models.generate_content_stream(
        model="auto", contents=PROMPT
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.text or "" for c in chunks) == EXPECTED
    assert len(chunks) >= 8  # the emulator's 8 chunks, plus the finishing event
    headers = _headers(chunks[0])
    assert headers["x-gemini-failover-served-by"] == PRIMARY
    assert (headers["x-gemini-failover-attempts"], headers["x-gemini-failover-failovers"]) == (
        "1",
        "0",
    )


async def test_structured_output_with_a_schema_is_parsed_by_the_sdk(gateway: Gateway) -> None:
    schema = {
        "type": "OBJECT",
        "properties": {"name": {"type": "STRING"}, "n": {"type": "INTEGER"}},
        "required": ["name", "n"],
    }
    response = await gateway.client().aio.models.generate_content(
        model="auto",
        contents=PROMPT,
        config=types.GenerateContentConfig(
            response_mime_type="application/json", response_schema=schema
        ),
    )
    assert isinstance(response.parsed, dict)
    assert set(response.parsed) == {"name", "n"}


async def test_count_tokens_and_embeddings(gateway: Gateway, emulator: EmulatorServer) -> None:
    client = gateway.client()
    counted = await client.aio.models.count_tokens(model="auto", contents=PROMPT)
    assert counted.total_tokens is not None and counted.total_tokens > 0
    embedded = await client.aio.models.embed_content(model="auto", contents=["one", "two"])
    assert embedded.embeddings is not None and len(embedded.embeddings) == 2
    assert embedded.embeddings[0].values and len(embedded.embeddings[0].values) == 768
    by_name = await client.aio.models.embed_content(model=EMBEDDING, contents="three")
    assert by_name.embeddings is not None and len(by_name.embeddings) == 1
    assert emulator.emulator.count(model=EMBEDDING, action="embed") == 2
    assert emulator.emulator.count(model=PRIMARY, action="count_tokens") == 1


async def test_models_list_and_get_show_the_aliases_and_chains(gateway: Gateway) -> None:
    client = gateway.client()
    names = [m.name async for m in await client.aio.models.list()]
    assert names == [f"models/{n}" for n in ("auto", PRIMARY, FALLBACK, EMBEDDING)]
    model = await client.aio.models.get(model=FALLBACK)
    assert model.name == f"models/{FALLBACK}"
    assert model.supported_actions is not None and "generateContent" in model.supported_actions


async def test_a_rate_limit_shed_is_the_sdks_429_with_the_retry_delay(
    gateway: Gateway, emulator: EmulatorServer
) -> None:
    # Every model rate limited for longer than the wait allowed: only then is it shed
    # (a primary alone past the max wait spills to the fallback, see the error table).
    for model in (PRIMARY, FALLBACK):
        emulator.emulator.configure(
            model, faults=[{"kind": "status", "code": 429, "retry_after": 30}]
        )
    with pytest.raises(errors.ClientError) as caught:
        await gateway.client().aio.models.generate_content(model="auto", contents=PROMPT)
    exc = caught.value
    assert exc.code == 429 and exc.status == "RESOURCE_EXHAUSTED"
    details = exc.details["error"]["details"]
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "30s"} in details
    for model in (PRIMARY, FALLBACK):  # each asked once, none hammered
        assert emulator.emulator.count(model=model, action="generate") == 1


async def test_a_shed_is_a_429_for_streams_too(gateway: Gateway, emulator: EmulatorServer) -> None:
    # streams follow the unary policy: a primary alone past the max wait spills
    for model in (PRIMARY, FALLBACK):
        emulator.emulator.configure(
            model, faults=[{"kind": "status", "code": 429, "retry_after": 30}]
        )
    async with gateway.http() as http:
        response = await http.post(
            "/v1beta/models/auto:streamGenerateContent?alt=sse",
            json={"contents": [{"parts": [{"text": PROMPT}]}]},
            headers={"x-goog-api-key": "gateway-client-key"},
        )
    assert response.status_code == 429
    assert response.headers["retry-after"] == "30"
    assert response.json()["error"]["status"] == "RESOURCE_EXHAUSTED"


async def test_upstream_auth_failure_is_a_502_that_never_shows_the_upstream_key(
    gateway: Gateway, emulator: EmulatorServer
) -> None:
    emulator.emulator.configure(
        PRIMARY, faults=[{"kind": "auth", "code": 400, "message": f"bad key {UPSTREAM_KEY}"}]
    )
    with pytest.raises(errors.ServerError) as caught:
        await gateway.client().aio.models.generate_content(model="auto", contents=PROMPT)
    assert caught.value.code == 502
    assert "credentials were rejected" in (caught.value.message or "")
    assert UPSTREAM_KEY not in str(caught.value.details)
    # an auth failure never fails over
    assert emulator.emulator.count(model=FALLBACK, action="generate") == 0


async def test_no_capable_model_is_a_400(emulator: EmulatorServer) -> None:
    small = {"input_token_limit": 10}
    settings = gateway_settings(
        emulator.base_url, model_overrides={PRIMARY: small, FALLBACK: small}
    )
    async with run_gateway(settings) as gateway:
        with pytest.raises(errors.ClientError) as caught:
            await gateway.client().aio.models.generate_content(model="auto", contents=PROMPT * 5)
    assert caught.value.code == 400
    assert "no model in the chain can serve this request" in (caught.value.message or "")
    assert emulator.emulator.count(action="generate") == 0


async def test_a_passed_deadline_is_a_504(emulator: EmulatorServer) -> None:
    emulator.emulator.configure("*", faults=[{"kind": "hang"}])
    settings = gateway_settings(emulator.base_url, attempt_timeout=0.2, total_timeout=0.3)
    async with run_gateway(settings) as gateway:
        with pytest.raises(errors.ServerError) as caught:
            await gateway.client().aio.models.generate_content(model="auto", contents=PROMPT)
    assert caught.value.code == 504
    assert caught.value.status == "DEADLINE_EXCEEDED"
    emulator.emulator.release_hung_requests()


async def test_every_model_down_is_a_503_with_a_retry_delay(
    gateway: Gateway, emulator: EmulatorServer
) -> None:
    emulator.emulator.configure("*", faults=[{"kind": "status", "code": 503}])
    client = gateway.client()
    for _ in range(2):  # trips both breakers (3 consecutive failures each)
        with pytest.raises(errors.ServerError):
            await client.aio.models.generate_content(model="auto", contents=PROMPT)
    with pytest.raises(errors.ServerError) as caught:
        await client.aio.models.generate_content(model="auto", contents=PROMPT)
    assert caught.value.code == 503
    kinds = [d["@type"] for d in caught.value.details["error"].get("details", [])]
    assert "type.googleapis.com/google.rpc.RetryInfo" in kinds


async def test_a_refusal_is_an_answer_with_finish_reason_safety(
    gateway: Gateway, emulator: EmulatorServer
) -> None:
    emulator.emulator.configure(PRIMARY, faults=[{"kind": "blocked"}])
    response = await gateway.client().aio.models.generate_content(model="auto", contents=PROMPT)
    assert response.candidates is not None
    assert response.candidates[0].finish_reason == types.FinishReason.SAFETY
    assert response.text is None
    assert emulator.emulator.count(model=FALLBACK, action="generate") == 0


async def test_a_client_that_goes_away_mid_stream_closes_the_upstream_stream(
    gateway: Gateway, emulator: EmulatorServer
) -> None:
    emulator.emulator.configure(PRIMARY, faults=[{"kind": "latency", "per_chunk_ms": 200}])
    async with gateway.http() as http:
        request = http.build_request(
            "POST",
            "/v1beta/models/auto:streamGenerateContent?alt=sse",
            json={"contents": [{"parts": [{"text": PROMPT}]}]},
            headers={"x-goog-api-key": "gateway-client-key"},
        )
        response = await http.send(request, stream=True)
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                break  # the first chunk arrived: hang up
        await response.aclose()
    records = await emulator.emulator.wait_for(
        lambda log: any(r.action == "stream" and r.outcome == "client_disconnected" for r in log)
    )
    (stream,) = [r for r in records if r.action == "stream"]
    assert stream.chunks_sent < 8  # the emulator stopped sending: nobody was listening


async def test_a_refused_stream_ends_with_the_finish_reason(
    gateway: Gateway, emulator: EmulatorServer
) -> None:
    emulator.emulator.configure(PRIMARY, faults=[{"kind": "blocked", "reason": "RECITATION"}])
    stream = await gateway.client().aio.models.generate_content_stream(
        model="auto", contents=PROMPT
    )
    chunks = [chunk async for chunk in stream]
    last = chunks[-1].candidates
    assert last is not None and last[0].finish_reason == types.FinishReason.RECITATION


async def test_a_break_under_policy_fail_is_an_error_event_the_sdk_raises(
    emulator: EmulatorServer,
) -> None:
    emulator.emulator.configure(PRIMARY, faults=[{"kind": "stream_cut", "after": 3}])
    settings = gateway_settings(emulator.base_url, continuation="fail")
    async with run_gateway(settings) as gateway:
        stream = await gateway.client().aio.models.generate_content_stream(
            model="auto", contents=PROMPT
        )
        received: list[str] = []

        async def read_all() -> None:
            async for chunk in stream:
                received.append(chunk.text or "")

        with pytest.raises(errors.ServerError) as caught:
            await read_all()
    assert caught.value.code == 503
    assert EXPECTED.startswith("".join(received)) and received  # the partial text came first


async def test_endpoints_through_the_gateway_bare_names_and_pair_keys(
    emulator: EmulatorServer,
) -> None:
    """A chain across two endpoints: a bare model name in the URL is the first entry
    serving it, a pair key (``vertex:gemini-2.5-pro``, a colon inside the model) names
    one pair, and a per-day quota on one endpoint is served by the same model on the
    other."""
    url = emulator.base_url
    pro = "gemini-2.5-pro"
    settings = gateway_settings(
        url,
        models=[f"studio:{pro}", f"vertex:{pro}"],
        embedding_models=["studio:embedder"],
        endpoints={
            "studio": {"api_key": UPSTREAM_KEY, "base_url": url},
            "vertex": {
                "kind": "vertex",
                "project": "proj",
                "location": "us-central1",
                "access_token": "emulator-token",
                "base_url": url,
            },
        },
    )
    emulator.emulator.configure(
        pro, faults=[{"kind": "rate_limit", "rpm": 0, "quota": "day", "endpoint": "gemini_api"}]
    )
    async with run_gateway(settings) as gw:
        models = gw.client().aio.models
        bare = await models.generate_content(model=pro, contents=PROMPT)
        pinned = await models.generate_content(model=f"vertex:{pro}", contents=PROMPT)
    assert bare.text == pinned.text == EXPECTED
    assert _headers(bare)["x-gemini-failover-served-by"] == f"vertex:{pro}"
    assert _headers(bare)["x-gemini-failover-failovers"] == "1"
    assert _headers(pinned)["x-gemini-failover-failovers"] == "0"
    calls = [(r.endpoint, r.status) for r in emulator.emulator.requests if r.action == "generate"]
    assert calls == [("gemini_api", 429), ("vertex", 200), ("vertex", 200)]


@pytest.mark.parametrize("plain_uvicorn", [False, True], ids=["gateway-protocol", "plain-uvicorn"])
async def test_a_client_that_hangs_up_cancels_its_upstream_call(
    emulator: EmulatorServer, plain_uvicorn: bool
) -> None:
    """Under the gateway's own protocol the connection's disconnect signal cancels the
    call; under another server a task waiting on ``receive`` does. Either way the
    upstream request is closed, and nothing is retried or failed over."""
    emulator.emulator.configure(PRIMARY, faults=[{"kind": "hang"}])
    settings = gateway_settings(emulator.base_url)
    async with run_gateway(settings, plain_uvicorn=plain_uvicorn) as gateway:
        async with gateway.http() as http:
            call = asyncio.create_task(
                http.post(
                    "/v1beta/models/auto:generateContent",
                    json={"contents": [{"parts": [{"text": PROMPT}]}]},
                    headers={"x-goog-api-key": "gateway-client-key"},
                )
            )
            await emulator.emulator.wait_for(lambda _: emulator.emulator.in_flight == 1)
            call.cancel()  # the client closes its connection
            with contextlib.suppress(asyncio.CancelledError):
                await call
        records = await emulator.emulator.wait_for(
            lambda log: any(r.outcome == "client_disconnected" for r in log)
        )
        calls = [(r.model, r.outcome) for r in records if r.action == "generate"]
        assert calls == [(PRIMARY, "client_disconnected")]
        assert emulator.emulator.count(model=FALLBACK, action="generate") == 0
