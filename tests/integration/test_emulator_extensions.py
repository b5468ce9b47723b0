"""The control API and wire layer for the emulator's inputs, files, grounding and
endpoints: the request log over HTTP, file control, scenario validation, and the wire
functions a Gemini-compatible server reuses."""

from __future__ import annotations

import io

import httpx2
import pytest
from google import genai
from google.genai import types
from pydantic import ValidationError

from gemini_failover.emulator import Emulator, EmulatorServer, Scenario
from gemini_failover.emulator.wire import (
    GenerateRequest,
    UploadChunk,
    UploadStart,
    grounding_metadata,
    parse_json_object,
    urls_in,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8


async def test_request_log_over_http_shows_parts_tools_thinking_and_endpoint(
    genai_client: genai.Client, emulator_server: EmulatorServer
) -> None:
    await genai_client.aio.models.generate_content(
        model="m",
        contents=[types.Part.from_bytes(data=PNG, mime_type="image/png"), "hi"],
        config=types.GenerateContentConfig(
            tools=[types.Tool(google_search=types.GoogleSearch())],
            thinking_config=types.ThinkingConfig(thinking_budget=64),
        ),
    )
    async with httpx2.AsyncClient(base_url=emulator_server.base_url) as http:
        log = (await http.get("/_emulator/requests", params={"endpoint": "gemini_api"})).json()
        none = (await http.get("/_emulator/requests", params={"endpoint": "vertex"})).json()
    [record] = log["requests"]
    assert record["endpoint"] == "gemini_api"
    assert record["parts"] == [
        {
            "role": "user",
            "turn": 0,
            "kind": "inline_data",
            "mimeType": "image/png",
            "bytes": len(PNG),
        },
        {"role": "user", "turn": 0, "kind": "text", "mimeType": "text/plain", "bytes": 2},
    ]
    assert record["tools"] == ["googleSearch"]
    assert record["thinking"] == {"includeThoughts": False, "thinkingBudget": 64}
    assert none == {"requests": []}


async def test_files_control_api_lists_and_deletes(
    genai_client: genai.Client, emulator: Emulator, emulator_server: EmulatorServer
) -> None:
    uploaded = await genai_client.aio.files.upload(
        file=io.BytesIO(PNG), config=types.UploadFileConfig(mime_type="image/png")
    )
    async with httpx2.AsyncClient(base_url=emulator_server.base_url) as http:
        [listed] = (await http.get("/_emulator/files")).json()["files"]
        assert (listed["name"], listed["endpoint"], listed["sizeBytes"]) == (
            uploaded.name,
            "gemini_api",
            str(len(PNG)),
        )
        deleted = await http.delete(f"/_emulator/{uploaded.name}")
        assert deleted.json() == {"deleted": True}
        assert (await http.get("/_emulator/files")).json() == {"files": []}
        bad = await http.post(f"/_emulator/{uploaded.name}:frobnicate")
        assert bad.status_code == 404
    assert not emulator.delete_file(uploaded.name or "")

    emulator.reset()
    assert emulator.files == []


def test_scenario_validates_the_new_settings() -> None:
    scenario = Scenario.model_validate(
        {
            "vertex_token": "t",
            "files": {"max_file_bytes": 1024, "ttl_seconds": 60},
            "endpoints": [{"name": "vertex-eu", "kind": "vertex", "location": "europe-west4"}],
            "models": {
                "m": {
                    "profile": {"input_modalities": ["text", "image"], "thinking": "level"},
                    "faults": [{"kind": "status", "code": 503, "endpoint": "vertex-eu"}],
                }
            },
        }
    )
    assert scenario.endpoints[0].location == "europe-west4"
    with pytest.raises(ValidationError):
        Scenario.model_validate({"models": {"m": {"profile": {"input_modalities": ["smell"]}}}})
    with pytest.raises(ValidationError):
        Scenario.model_validate({"endpoints": [{"name": "x", "kind": "openai"}]})


def test_wire_reads_snake_and_camel_case_parts_and_configs() -> None:
    body = parse_json_object(
        b'{"contents": [{"role": "user", "parts": ['
        b'{"inlineData": {"mime_type": "image/png", "data": "YWJj"}},'
        b'{"file_data": {"fileUri": "https://h/v1beta/files/abc", "mimeType": "video/mp4"}},'
        b'{"text": "see https://a.example/x."}]}],'
        b'"tools": [{"google_search": {}}, {"urlContext": {}}],'
        b'"generationConfig": {"thinkingConfig": {"include_thoughts": true,'
        b' "thinkingLevel": "high"}}}'
    )
    assert body is not None
    request = GenerateRequest.parse(body)
    kinds = [(p.kind, p.mime_type, p.size, p.file_uri) for p in request.parts]
    assert kinds == [
        ("inline_data", "image/png", 3, None),
        ("file_data", "video/mp4", None, "https://h/v1beta/files/abc"),
        ("text", "text/plain", 24, None),
    ]
    assert request.first_user_parts == request.parts
    assert request.tools == ("googleSearch", "urlContext")
    assert request.thinking is not None
    assert (request.thinking.level, request.thinking.include_thoughts) == ("HIGH", True)
    assert urls_in(request.first_user_text) == ("https://a.example/x",)


def test_wire_upload_protocol_and_grounding_shapes() -> None:
    start = UploadStart.parse(
        [
            (b"x-goog-upload-protocol", b"resumable"),
            (b"x-goog-upload-command", b"start"),
            (b"x-goog-upload-header-content-length", b"12"),
            (b"x-goog-upload-header-content-type", b"application/pdf"),
        ],
        {"file": {"display_name": "d"}},
    )
    assert (start.size, start.mime_type, start.display_name, start.problem) == (
        12,
        "application/pdf",
        "d",
        None,
    )
    assert UploadStart.parse([], {}).problem is not None
    chunk = UploadChunk.parse(
        [(b"x-goog-upload-command", b"upload, finalize"), (b"x-goog-upload-offset", b"8")]
    )
    assert (chunk.commands, chunk.offset) == (frozenset({"upload", "finalize"}), 8)

    metadata = grounding_metadata(
        queries=["q"],
        chunks=[("https://u", "t")],
        supports=[(0, 3, "abc", [0]), (4, 7, "def", [0])],
        rendered_content="<div></div>",
    )
    segments = [s["segment"] for s in metadata["groundingSupports"]]
    assert segments == [
        {"endIndex": 3, "text": "abc"},  # no startIndex for 0, as Gemini sends it
        {"startIndex": 4, "endIndex": 7, "text": "def"},
    ]
