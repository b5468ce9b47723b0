"""The Files API through the real google-genai SDK: resumable upload, get, list, delete,
file data in prompts, expiry, per-endpoint ownership, caps and faults."""

from __future__ import annotations

import base64
import hashlib
import io
from datetime import timedelta
from pathlib import Path

import httpx2
import pytest
from google import genai
from google.genai import errors, types

from gemini_failover.emulator import Emulator, EmulatorServer, expected_text

DATA = b"%PDF-1.4\n<< /Type /Page >>\n" + b"x" * 1000


@pytest.fixture
def emulator() -> Emulator:
    return Emulator(
        {
            "endpoints": [
                {"name": "studio", "kind": "gemini_api", "api_key": "test-key"},
                {"name": "backup", "kind": "gemini_api", "api_key": "backup-key"},
            ],
            "files": {"max_file_bytes": 10 * 1024 * 1024},
        }
    )


async def _upload(
    client: genai.Client, data: bytes = DATA, mime: str = "application/pdf"
) -> types.File:
    return await client.aio.files.upload(
        file=io.BytesIO(data), config=types.UploadFileConfig(mime_type=mime, display_name="doc")
    )


async def test_upload_get_list_delete(genai_client: genai.Client, emulator: Emulator) -> None:
    uploaded = await _upload(genai_client)

    assert uploaded.name is not None and uploaded.name.startswith("files/")
    assert uploaded.mime_type == "application/pdf"
    assert uploaded.size_bytes == len(DATA)
    assert uploaded.display_name == "doc"
    assert uploaded.state == types.FileState.ACTIVE
    digest = hashlib.sha256(DATA).hexdigest()
    assert uploaded.sha256_hash == base64.b64encode(digest.encode()).decode()
    assert uploaded.create_time is not None and uploaded.expiration_time is not None
    assert uploaded.expiration_time - uploaded.create_time == timedelta(hours=48)
    assert uploaded.uri is not None and uploaded.uri.endswith(f"/v1beta/{uploaded.name}")

    got = await genai_client.aio.files.get(name=uploaded.name)
    assert (got.name, got.uri, got.size_bytes) == (uploaded.name, uploaded.uri, len(DATA))
    listed = [f.name async for f in await genai_client.aio.files.list()]
    assert listed == [uploaded.name]

    await genai_client.aio.files.delete(name=uploaded.name)
    with pytest.raises(errors.ClientError) as caught:
        await genai_client.aio.files.get(name=uploaded.name)
    assert caught.value.code == 403
    assert [(r.action, r.status) for r in emulator.requests] == [
        ("upload", 200),
        ("upload_data", 200),
        ("file_get", 200),
        ("file_list", 200),
        ("file_delete", 200),
        ("file_get", 403),
    ]
    assert emulator.requests[1].file == uploaded.name
    assert {r.endpoint for r in emulator.requests} == {"studio"}


async def test_a_multi_chunk_upload_from_a_path(
    genai_client: genai.Client, emulator: Emulator, tmp_path: Path
) -> None:
    data = bytes(range(256)) * (9 * 4096)  # 9 MiB: two chunks of the SDK's 8 MiB
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)
    uploaded = await genai_client.aio.files.upload(file=path)
    assert (uploaded.mime_type, uploaded.size_bytes) == ("video/mp4", len(data))
    assert emulator.count(action="upload_data", status=200) == 2
    [stored] = emulator.files
    assert (
        stored["sha256Hash"] == base64.b64encode(hashlib.sha256(data).hexdigest().encode()).decode()
    )


async def test_file_data_is_answered_and_recorded(
    genai_client: genai.Client, emulator: Emulator
) -> None:
    uploaded = await _upload(genai_client)
    prompt = "Summarise the document."
    response = await genai_client.aio.models.generate_content(
        model="gemini-2.5-flash", contents=[uploaded, prompt]
    )
    assert response.text == (
        f"Received application/pdf, {len(DATA)} bytes, {uploaded.name}. " + expected_text(prompt)
    )
    record = emulator.requests[-1]
    assert record.parts[0] == {
        "role": "user",
        "turn": 0,
        "kind": "file_data",
        "mimeType": "application/pdf",
        "bytes": len(DATA),
        "fileUri": uploaded.uri,
    }
    usage = response.usage_metadata
    assert usage is not None and usage.prompt_token_count == 6 + 258  # one page


async def test_file_uris_must_name_a_live_file_of_this_endpoint(
    genai_client: genai.Client,
    emulator: Emulator,
    emulator_server: EmulatorServer,
) -> None:
    uploaded = await _upload(genai_client)
    other = _client(emulator_server, "backup-key")  # a second project's key
    part = types.Part.from_uri(file_uri=uploaded.uri or "", mime_type="application/pdf")

    with pytest.raises(errors.ClientError) as caught:
        await other.aio.models.generate_content(model="m", contents=[part, "x"])
    assert caught.value.code == 403
    assert caught.value.status == "PERMISSION_DENIED"
    assert emulator.requests[-1].endpoint == "backup"

    bad = types.Part.from_uri(file_uri="gs://bucket/doc.pdf", mime_type="application/pdf")
    with pytest.raises(errors.ClientError) as invalid:
        await genai_client.aio.models.generate_content(model="m", contents=[bad, "x"])
    assert invalid.value.code == 400

    async with httpx2.AsyncClient(base_url=emulator_server.base_url) as http:
        expired = await http.post(f"/_emulator/{uploaded.name}:expire")
        assert expired.json() == {"expired": True}
    with pytest.raises(errors.ClientError) as gone:
        await genai_client.aio.models.generate_content(model="m", contents=[part, "x"])
    assert gone.value.code == 403
    assert emulator.files == []
    await other.aio.aclose()


def _client(server: EmulatorServer, key: str) -> genai.Client:
    return genai.Client(
        api_key=key,
        http_options=types.HttpOptions(
            base_url=server.base_url,
            api_version="v1beta",
            retry_options=types.HttpRetryOptions(attempts=1),
        ),
    )


async def test_expiry_follows_the_emulator_clock() -> None:
    from gemini_failover.emulator import ManualClock

    clock = ManualClock(1_800_000_000)
    emulator = Emulator(clock=clock)
    async with EmulatorServer(emulator) as server:
        client = _client(server, "k")
        uploaded = await _upload(client)
        clock.advance(48 * 3600 - 1)
        assert (await client.aio.files.get(name=uploaded.name or "")).name == uploaded.name
        clock.advance(1)
        with pytest.raises(errors.ClientError, match="may not exist"):
            await client.aio.files.get(name=uploaded.name or "")
        await client.aio.aclose()


async def test_upload_caps_and_faults(genai_client: genai.Client, emulator: Emulator) -> None:
    with pytest.raises(errors.ClientError) as too_big:
        await _upload(genai_client, b"x" * (10 * 1024 * 1024 + 1))
    assert too_big.value.code == 400

    emulator.configure(
        "*",
        faults=[
            {"kind": "status", "code": 503, "actions": ["upload"], "count": 1},
            {"kind": "status", "code": 500, "actions": ["upload_data"], "count": 1},
        ],
    )
    with pytest.raises(errors.ServerError) as start_failed:
        await _upload(genai_client)
    assert start_failed.value.code == 503
    with pytest.raises(errors.ServerError) as data_failed:
        await _upload(genai_client)
    assert data_failed.value.code == 500
    assert emulator.count(action="upload_data") == 1  # the SDK did not retry the chunk
    assert (await _upload(genai_client)).state == types.FileState.ACTIVE
    assert len(emulator.files) == 1
