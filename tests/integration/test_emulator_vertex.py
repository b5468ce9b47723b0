"""Vertex AI paths through the real google-genai SDK with ``vertexai=True`` (project mode
with an OAuth token, express mode with an API key), named endpoints, and faults
addressed to one endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator

import google.oauth2.credentials
import pytest
from google import genai
from google.genai import errors, types

from gemini_failover.emulator import Emulator, EmulatorServer, expected_text

PROMPT = "Which quota pool serves this?"
TOKEN = "vertex-test-token"


@pytest.fixture
def emulator() -> Emulator:
    return Emulator(
        {
            "vertex_token": TOKEN,
            "serve_unknown_models": False,
            "models": {"gemini-2.5-pro": {}, "text-embedding-005": {}},
            "endpoints": [
                {"name": "studio", "kind": "gemini_api", "api_key": "studio-key"},
                {"name": "backup", "kind": "gemini_api", "api_key": "backup-key"},
                {
                    "name": "vertex-us",
                    "kind": "vertex",
                    "project": "proj",
                    "location": "us-central1",
                },
            ],
        }
    )


def _options(server: EmulatorServer) -> types.HttpOptions:
    return types.HttpOptions(
        base_url=server.base_url, retry_options=types.HttpRetryOptions(attempts=1)
    )


@pytest.fixture
async def clients(emulator_server: EmulatorServer) -> AsyncIterator[dict[str, genai.Client]]:
    made = {
        # Project mode: the SDK sends "Authorization: Bearer <token>"; a Credentials
        # object with a token and no expiry is used as it is, never refreshed.
        "vertex": genai.Client(
            vertexai=True,
            project="proj",
            location="us-central1",
            credentials=google.oauth2.credentials.Credentials(token=TOKEN),  # type: ignore[no-untyped-call]
            http_options=_options(emulator_server),
        ),
        "express": genai.Client(
            vertexai=True, api_key="express-key", http_options=_options(emulator_server)
        ),
        "studio": genai.Client(
            api_key="studio-key",
            http_options=types.HttpOptions(
                base_url=emulator_server.base_url,
                api_version="v1beta",
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        ),
        "backup": genai.Client(
            api_key="backup-key",
            http_options=types.HttpOptions(
                base_url=emulator_server.base_url,
                api_version="v1beta",
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        ),
    }
    yield made
    for client in made.values():
        await client.aio.aclose()


async def test_vertex_project_mode_serves_every_call(
    clients: dict[str, genai.Client], emulator: Emulator
) -> None:
    models = clients["vertex"].aio.models
    response = await models.generate_content(model="gemini-2.5-pro", contents=PROMPT)
    assert response.text == expected_text(PROMPT)
    streamed = [
        c.text
        async for c in await models.generate_content_stream(model="gemini-2.5-pro", contents=PROMPT)
    ]
    assert "".join(t or "" for t in streamed) == expected_text(PROMPT)
    assert (await models.count_tokens(model="gemini-2.5-pro", contents="abcd")).total_tokens == 1
    model = await models.get(model="gemini-2.5-pro")
    assert model.name == "publishers/google/models/gemini-2.5-pro"
    embedded = await models.embed_content(model="text-embedding-005", contents="hi")
    assert embedded.embeddings is not None and len(embedded.embeddings[0].values or []) == 768

    assert [(r.endpoint, r.action, r.status) for r in emulator.requests] == [
        ("vertex-us", "generate", 200),
        ("vertex-us", "stream", 200),
        ("vertex-us", "count_tokens", 200),
        ("vertex", "get", 200),  # models.get has no project in its path
        ("vertex-us", "embed", 200),
    ]


async def test_vertex_express_mode_and_a_wrong_token(
    clients: dict[str, genai.Client], emulator: Emulator, emulator_server: EmulatorServer
) -> None:
    response = await clients["express"].aio.models.generate_content(
        model="gemini-2.5-pro", contents=PROMPT
    )
    assert response.text == expected_text(PROMPT)
    assert emulator.requests[-1].endpoint == "vertex"

    wrong = genai.Client(
        vertexai=True,
        project="proj",
        location="us-central1",
        credentials=google.oauth2.credentials.Credentials(token="stolen"),  # type: ignore[no-untyped-call]
        http_options=_options(emulator_server),
    )
    with pytest.raises(errors.ClientError) as caught:
        await wrong.aio.models.generate_content(model="gemini-2.5-pro", contents=PROMPT)
    assert caught.value.code == 401
    assert caught.value.status == "UNAUTHENTICATED"
    await wrong.aio.aclose()


async def test_vertex_unknown_model_is_a_publisher_model_404(
    clients: dict[str, genai.Client],
) -> None:
    with pytest.raises(errors.ClientError) as caught:
        await clients["vertex"].aio.models.generate_content(model="gemini-9", contents=PROMPT)
    assert caught.value.code == 404
    assert (
        "Publisher Model `projects/proj/locations/us-central1/publishers/google/models/gemini-9`"
        in (caught.value.message or "")
    )


async def test_faults_are_addressed_per_endpoint(
    clients: dict[str, genai.Client], emulator: Emulator
) -> None:
    emulator.configure(
        "gemini-2.5-pro",
        faults=[
            {"kind": "rate_limit", "rpm": 0, "quota": "day", "endpoint": "studio"},
            {"kind": "auth", "code": 400, "endpoint": "backup"},
            {"kind": "rate_limit", "rpm": 0, "endpoint": "vertex"},
        ],
    )

    with pytest.raises(errors.ClientError) as studio:
        await clients["studio"].aio.models.generate_content(model="gemini-2.5-pro", contents=PROMPT)
    assert studio.value.code == 429
    assert "PerDay" in str(studio.value.details)
    with pytest.raises(errors.ClientError) as backup:
        await clients["backup"].aio.models.generate_content(model="gemini-2.5-pro", contents=PROMPT)
    assert backup.value.code == 400 and "API key not valid" in (backup.value.message or "")
    with pytest.raises(errors.ClientError) as vertex:
        await clients["vertex"].aio.models.generate_content(model="gemini-2.5-pro", contents=PROMPT)
    assert vertex.value.code == 429
    assert "Resource exhausted" in (vertex.value.message or "")
    assert "details" not in vertex.value.details["error"]  # Vertex AI's 429 has none

    emulator.configure(
        "gemini-2.5-pro", faults=[{"kind": "status", "code": 503, "endpoint": "studio"}]
    )
    response = await clients["vertex"].aio.models.generate_content(
        model="gemini-2.5-pro", contents=PROMPT
    )
    assert response.text == expected_text(PROMPT)
    assert [r.endpoint for r in emulator.requests] == ["studio", "backup", "vertex-us", "vertex-us"]
    assert emulator.count(model="gemini-2.5-pro", endpoint="vertex-us", status=200) == 1


async def test_vertex_lists_publisher_models(clients: dict[str, genai.Client]) -> None:
    pager = await clients["vertex"].aio.models.list(config={"query_base": True})
    names = [m.name async for m in pager]
    assert names == [
        "publishers/google/models/gemini-2.5-pro",
        "publishers/google/models/text-embedding-005",
    ]
