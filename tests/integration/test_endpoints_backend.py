"""EndpointsBackend through the real google-genai SDK against the emulator: each chain
key reaches its endpoint (the Gemini API with its key, Vertex AI in project mode with a
fixed OAuth token, or in express mode), each endpoint keeps its own uploads, and Vertex
AI, which has no Files API, is skipped with the reason for files too large to inline."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from gemini_failover.config import Settings, load_settings
from gemini_failover.emulator import Emulator, EmulatorServer, expected_text
from gemini_failover.gemini.endpoints import EndpointsBackend, build_backend
from gemini_failover.protocol import GenerationRequest, Media, Turn
from gemini_failover.resilience.errors import Category
from gemini_failover.resilience.manager import FailoverManager
from gemini_failover.resilience.results import RequestFailed

PRO = "gemini-2.5-pro"
TOKEN = "vertex-test-token"
PDF = b"%PDF-1.4\n<< /Type /Page >>\n" + b"x" * 3000


@pytest.fixture
def emulator() -> Emulator:
    return Emulator(
        {
            "vertex_token": TOKEN,
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


def settings_for(server: EmulatorServer, models: list[str], **extra: Any) -> Settings:
    url = server.base_url
    return load_settings(
        models=models,
        embedding_models=["vertex:text-embedding-005"],
        default_endpoint="studio",
        endpoints={
            "studio": {"api_key": "studio-key", "base_url": url},
            "backup": {"api_key": "backup-key", "base_url": url},
            "vertex": {
                "kind": "vertex",
                "project": "proj",
                "location": "us-central1",
                "access_token": TOKEN,
                "base_url": url,
            },
            "express": {"kind": "vertex", "api_key": "express-key", "base_url": url},
        },
        retry={"max_attempts_per_model": 1},
        **extra,
    )


class Opener:
    def __init__(self) -> None:
        self.opened = 0

    async def __call__(self, item: Media) -> AsyncIterator[bytes]:
        self.opened += 1
        yield PDF


def pdf(inline: bool) -> Media:
    return Media(
        label="/docs/report.pdf",
        mime_type="application/pdf",
        size=len(PDF),
        sha256=hashlib.sha256(PDF).hexdigest(),
        data=PDF if inline else None,
        path=None if inline else "/docs/report.pdf",
    )


def ask(prompt: str, *files: Media) -> GenerationRequest:
    return GenerationRequest(contents=(Turn("user", prompt, files),))


async def test_each_key_reaches_its_endpoint_for_every_operation(
    emulator: Emulator, emulator_server: EmulatorServer
) -> None:
    settings = settings_for(emulator_server, [PRO, f"vertex:{PRO}", f"express:{PRO}"])
    assert settings.models == [PRO, f"vertex:{PRO}", f"express:{PRO}"]  # studio: bare
    backend = build_backend(settings)
    assert isinstance(backend, EndpointsBackend)
    assert "key" not in repr(backend) and "token" not in repr(backend.backends["vertex"])
    request = GenerationRequest.from_prompt("hello")
    try:
        for key in settings.models:
            assert (await backend.generate(key, request, timeout=10)).text == expected_text("hello")
        chunks = [c.text async for c in backend.stream(f"vertex:{PRO}", request, timeout=10)]
        assert "".join(chunks) == expected_text("hello")
        turns = (Turn("user", "abcd"),)
        assert await backend.count_tokens(f"vertex:{PRO}", turns, timeout=10) == 1
        vectors = await backend.embed("vertex:text-embedding-005", ("hi",), timeout=10)
        assert len(vectors[0]) == 768
        info = await backend.model_info(f"vertex:{PRO}", timeout=10)
        assert info.name == PRO
    finally:
        await backend.aclose()
    assert [(r.endpoint, r.action, r.model) for r in emulator.requests] == [
        ("studio", "generate", PRO),
        ("vertex-us", "generate", PRO),
        ("vertex", "generate", PRO),  # express mode: no project in the path
        ("vertex-us", "stream", PRO),
        ("vertex-us", "count_tokens", PRO),
        ("vertex-us", "embed", "text-embedding-005"),
        ("vertex", "get", PRO),
    ]


async def test_a_file_uploaded_to_one_endpoint_is_uploaded_again_for_another(
    emulator: Emulator, emulator_server: EmulatorServer
) -> None:
    emulator.configure(
        PRO, faults=[{"kind": "status", "code": 503, "endpoint": "studio", "actions": ["generate"]}]
    )
    settings = settings_for(emulator_server, [PRO, f"backup:{PRO}"])
    opener = Opener()
    manager = FailoverManager(settings, build_backend(settings, opener=opener))
    await manager.start()
    try:
        result = await manager.generate(ask("read it", pdf(inline=False)))
    finally:
        await manager.aclose()
    assert result.provenance.served_by == f"backup:{PRO}"
    owners = {f["uri"]: f["endpoint"] for f in emulator.files}
    assert sorted(owners.values()) == ["backup", "studio"]  # one copy per endpoint
    generates = [r for r in emulator.requests if r.action == "generate"]
    assert [(r.endpoint, r.status) for r in generates] == [("studio", 503), ("backup", 200)]
    for record in generates:
        [uri] = [p["fileUri"] for p in record.parts if p["kind"] == "file_data"]
        assert owners[uri] == record.endpoint  # never a reference to another's file


async def test_vertex_has_no_files_api_so_large_files_skip_it_with_the_reason(
    emulator: Emulator, emulator_server: EmulatorServer
) -> None:
    settings = settings_for(emulator_server, [f"vertex:{PRO}", PRO])
    manager = FailoverManager(settings, build_backend(settings, opener=Opener()))
    await manager.start()
    try:
        large = await manager.generate(ask("read it", pdf(inline=False)))
        small = await manager.generate(ask("read it", pdf(inline=True)))
        with pytest.raises(RequestFailed) as caught:
            await manager.generate(ask("read it", pdf(inline=False)), failover=False)
    finally:
        await manager.aclose()
    assert large.provenance.served_by == PRO
    [(skipped, reason)] = large.provenance.skipped
    assert skipped == f"vertex:{PRO}" and "no Files API" in reason
    assert small.provenance.served_by == f"vertex:{PRO}"  # inline data: Vertex AI takes it
    assert caught.value.category is Category.NO_CAPABLE_MODEL
    assert "no Files API" in caught.value.message
    assert [f["endpoint"] for f in emulator.files] == ["studio"]


async def test_the_vertex_backend_refuses_a_file_it_cannot_send(
    emulator_server: EmulatorServer,
) -> None:
    backend = build_backend(settings_for(emulator_server, [f"vertex:{PRO}"]), opener=Opener())
    try:
        with pytest.raises(gexc.BadRequest, match="no Files API"):
            await backend.generate(f"vertex:{PRO}", ask("read", pdf(inline=False)), timeout=10)
    finally:
        await backend.aclose()
