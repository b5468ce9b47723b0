"""GeminiBackend's attachments through the real google-genai SDK against the emulator:
each kind lands upstream as its part, and the Files API upload cache's guarantees
(one upload per content and endpoint, single-flight, re-upload after expiry, nothing
left behind by a failed or cancelled upload)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
from google.api_core import exceptions as gexc

from gemini_failover.emulator import Emulator, EmulatorServer, expected_text
from gemini_failover.gemini.backend import GeminiBackend
from gemini_failover.gemini.content import text_file_part
from gemini_failover.protocol import GenerationRequest, Media, TextFile, Turn
from gemini_failover.resilience.errors import Category, classify, upstream_of

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 60
PDF = b"%PDF-1.4\n<< /Type /Page >>\n<< /Type /Page >>\n" + b"x" * 3000
MODEL = "gemini-2.5-flash"


def media(data: bytes, mime: str, label: str, *, inline: bool) -> Media:
    return Media(
        label=label,
        mime_type=mime,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        data=data if inline else None,
        path=None if inline else label,
    )


class Opener:
    """Serves path-only media from a dict, in small chunks, counting the opens."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.opened: list[str] = []

    async def __call__(self, item: Media) -> AsyncIterator[bytes]:
        assert item.path is not None
        self.opened.append(item.path)
        data = self.files[item.path]
        for start in range(0, len(data), 1024):
            yield data[start : start + 1024]


def ask(prompt: str, *attachments: TextFile | Media) -> GenerationRequest:
    return GenerationRequest(contents=(Turn("user", prompt, attachments),))


@pytest.fixture
def opener() -> Opener:
    return Opener({"/docs/report.pdf": PDF})


def leftovers(directory: Path) -> list[Path]:
    return list(directory.iterdir())


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    """Where the backend spools uploads: empty again after every upload, however it ended."""
    return tmp_path


@pytest.fixture
async def backend(
    emulator_server: EmulatorServer, opener: Opener, spool: Path
) -> AsyncIterator[GeminiBackend]:
    b = GeminiBackend(
        api_key="test-key", base_url=emulator_server.base_url, opener=opener, spool_dir=str(spool)
    )
    yield b
    await b.aclose()


PDF_PATH = media(PDF, "application/pdf", "/docs/report.pdf", inline=False)


def file_data(emulator: Emulator, action: str = "generate") -> list[str]:
    """The fileUris of the file-data parts of every ``action`` request, in order."""
    return [
        p["fileUri"]
        for r in emulator.requests
        if r.action == action
        for p in r.parts
        if p["kind"] == "file_data"
    ]


async def test_every_attachment_kind_lands_upstream_as_its_part(
    backend: GeminiBackend, emulator_server: EmulatorServer, emulator: Emulator
) -> None:
    source = TextFile("/src/app.py", "print('héllo')\n")
    image = media(PNG, "image/png", "/img/shot.png", inline=True)
    question = "What do these show?"
    request = ask(question, source, image, PDF_PATH)

    result = await backend.generate(MODEL, request, timeout=10)

    async with httpx2.AsyncClient() as http:
        answer = (await http.get(f"{emulator_server.base_url}/_emulator/requests")).json()
    [generate] = [r for r in answer["requests"] if r["action"] == "generate"]
    [uploaded] = emulator.files
    label_part = text_file_part(source)["text"].encode()
    assert label_part.startswith(b'<file path="/src/app.py">\n')
    assert generate["parts"] == [
        {
            "role": "user",
            "turn": 0,
            "kind": "text",
            "mimeType": "text/plain",
            "bytes": len(label_part),
        },
        {
            "role": "user",
            "turn": 0,
            "kind": "inline_data",
            "mimeType": "image/png",
            "bytes": len(PNG),
        },
        {
            "role": "user",
            "turn": 0,
            "kind": "file_data",
            "mimeType": "application/pdf",
            "bytes": len(PDF),
            "fileUri": uploaded["uri"],
        },
        {
            "role": "user",
            "turn": 0,
            "kind": "text",
            "mimeType": "text/plain",
            "bytes": len(question),
        },
    ]
    assert result.text.startswith(
        f"Received image/png, {len(PNG)} bytes. "
        f"Received application/pdf, {len(PDF)} bytes, {uploaded['name']}. "
    )
    assert uploaded["displayName"] == "report.pdf"  # the file name, never the whole path


async def test_path_only_media_without_an_opener_is_refused_before_any_call(
    emulator_server: EmulatorServer, emulator: Emulator
) -> None:
    backend = GeminiBackend(api_key="test-key", base_url=emulator_server.base_url)
    try:
        with pytest.raises(gexc.BadRequest, match=r"report\.pdf.*no file opener") as caught:
            await backend.generate(MODEL, ask("read it", PDF_PATH), timeout=5)
    finally:
        await backend.aclose()
    assert classify(caught.value).category is Category.BAD_REQUEST
    assert emulator.requests == []


async def test_a_file_that_changed_since_it_was_checked_is_refused(
    backend: GeminiBackend, opener: Opener, emulator: Emulator, spool: Path
) -> None:
    opener.files["/docs/report.pdf"] = PDF + b"tampered"
    with pytest.raises(gexc.BadRequest, match="changed since it was checked") as caught:
        await backend.generate(MODEL, ask("read it", PDF_PATH), timeout=5)
    assert classify(caught.value).category is Category.BAD_REQUEST
    assert emulator.requests == [] and emulator.files == []
    assert leftovers(spool) == []


async def test_one_upload_serves_two_calls(
    backend: GeminiBackend, opener: Opener, emulator: Emulator, spool: Path
) -> None:
    for prompt in ("first question", "second question"):
        await backend.generate(MODEL, ask(prompt, PDF_PATH), timeout=10)
    assert emulator.count(action="upload") == 1
    assert opener.opened == ["/docs/report.pdf"]
    first, second = file_data(emulator)
    assert first == second == emulator.files[0]["uri"]
    assert leftovers(spool) == []


async def test_concurrent_requests_share_one_upload(
    backend: GeminiBackend, opener: Opener, emulator: Emulator
) -> None:
    results = await asyncio.gather(
        *(backend.generate(MODEL, ask(f"question {i}", PDF_PATH), timeout=10) for i in range(4))
    )
    assert len(results) == 4
    assert emulator.count(action="upload") == 1 and len(opener.opened) == 1
    assert len(set(file_data(emulator))) == 1 and len(file_data(emulator)) == 4


async def test_a_file_gone_upstream_is_uploaded_again_once(
    backend: GeminiBackend, emulator: Emulator
) -> None:
    await backend.generate(MODEL, ask("first", PDF_PATH), timeout=10)
    [old] = emulator.files
    assert emulator.expire_file(old["name"])

    result = await backend.generate(MODEL, ask("second", PDF_PATH), timeout=10)
    await backend.generate(MODEL, ask("third", PDF_PATH), timeout=10)

    [new] = emulator.files
    assert new["name"] != old["name"] and new["name"] in result.text
    assert emulator.count(action="upload") == 2  # not a third time for the third call
    assert [r.status for r in emulator.requests if r.action == "generate"] == [200, 403, 200, 200]
    assert file_data(emulator) == [old["uri"], old["uri"], new["uri"], new["uri"]]


async def test_a_stream_with_a_file_gone_upstream_uploads_it_again(
    backend: GeminiBackend, emulator: Emulator
) -> None:
    await backend.generate(MODEL, ask("first", PDF_PATH), timeout=10)
    [old] = emulator.files
    assert emulator.expire_file(old["name"])

    chunks = [c async for c in backend.stream(MODEL, ask("second", PDF_PATH), timeout=10)]

    [new] = emulator.files
    assert new["name"] in "".join(c.text for c in chunks) and chunks[-1].finish_reason
    assert [r.status for r in emulator.requests if r.action == "stream"] == [403, 200]
    assert file_data(emulator, "stream") == [old["uri"], new["uri"]]


async def test_a_403_that_is_not_about_the_file_is_not_retried(
    backend: GeminiBackend, emulator: Emulator
) -> None:
    await backend.generate(MODEL, ask("first", PDF_PATH), timeout=10)
    emulator.configure(MODEL, faults=[{"kind": "auth", "code": 403, "actions": ["generate"]}])
    with pytest.raises(gexc.Forbidden) as caught:
        await backend.generate(MODEL, ask("second", PDF_PATH), timeout=10)
    assert classify(caught.value).category is Category.AUTH
    assert emulator.count(action="upload") == 1  # the file was still there: no re-upload
    assert emulator.count(action="file_get") == 1


async def test_files_are_reused_only_until_shortly_before_they_expire(
    emulator_server: EmulatorServer, opener: Opener, emulator: Emulator
) -> None:
    # A margin beyond the files' 48 h lifetime: every cached upload is too close to expiry.
    backend = GeminiBackend(
        api_key="test-key",
        base_url=emulator_server.base_url,
        opener=opener,
        upload_reuse_margin=49 * 3600,
    )
    try:
        for prompt in ("first", "second"):
            await backend.generate(MODEL, ask(prompt, PDF_PATH), timeout=10)
    finally:
        await backend.aclose()
    assert emulator.count(action="upload") == 2
    first, second = file_data(emulator)
    assert first != second


@pytest.mark.parametrize(
    ("action", "fault", "category", "status"),
    [
        ("upload", {"kind": "status", "code": 503}, Category.TRANSIENT, "503"),
        ("upload_data", {"kind": "status", "code": 503}, Category.TRANSIENT, "503"),
        ("upload", {"kind": "rate_limit", "rpm": 0}, Category.RATE_LIMITED, "429"),
        ("upload", {"kind": "malformed"}, Category.TRANSIENT, "malformed"),
        ("upload_data", {"kind": "malformed"}, Category.TRANSIENT, "malformed"),
        ("upload", {"kind": "auth", "code": 400}, Category.AUTH, "400"),
    ],
)
async def test_a_failed_upload_is_classified_and_leaves_nothing(
    backend: GeminiBackend,
    emulator: Emulator,
    action: str,
    fault: dict[str, Any],
    category: Category,
    status: str,
    spool: Path,
) -> None:
    emulator.configure("*", faults=[{**fault, "actions": [action], "count": 1}])
    with pytest.raises(gexc.GoogleAPICallError) as caught:
        await backend.generate(MODEL, ask("read it", PDF_PATH), timeout=10)
    assert classify(caught.value).category is category
    upstream = upstream_of(caught.value)
    assert upstream is not None and upstream.status == status
    assert emulator.files == [] and leftovers(spool) == []
    assert emulator.count(action="generate") == 0
    [delete] = [r for r in emulator.requests if r.action == "file_delete"]
    assert delete.file is not None and delete.file.startswith(f"files/{PDF_PATH.sha256[:24]}-")

    await backend.generate(MODEL, ask("read it", PDF_PATH), timeout=10)  # the fault is spent
    assert len(emulator.files) == 1


async def test_a_cancelled_upload_leaves_no_file(
    backend: GeminiBackend, emulator: Emulator, spool: Path
) -> None:
    emulator.configure("*", faults=[{"kind": "hang", "actions": ["upload_data"], "count": 1}])
    call = asyncio.create_task(backend.generate(MODEL, ask("read it", PDF_PATH), timeout=30))
    await emulator.wait_for(
        lambda log: any(r.action == "upload" for r in log) and emulator.in_flight == 1
    )
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call

    await backend.aclose()  # waits for the cancelled upload's clean-up
    [delete] = [r for r in emulator.requests if r.action == "file_delete"]
    assert delete.file is not None and delete.file.startswith(f"files/{PDF_PATH.sha256[:24]}-")
    assert emulator.files == [] and leftovers(spool) == []
    # nothing cached: the next call uploads
    await backend.generate(MODEL, ask("read it", PDF_PATH), timeout=10)
    assert emulator.count(action="upload", status=200) == 2 and len(emulator.files) == 1


async def test_an_upload_that_outlives_the_attempt_is_a_timeout_and_leaves_nothing(
    backend: GeminiBackend, emulator: Emulator, spool: Path
) -> None:
    emulator.configure("*", faults=[{"kind": "hang", "actions": ["upload_data"], "count": 1}])
    with pytest.raises(gexc.GoogleAPICallError) as caught:
        await backend.generate(MODEL, ask("read it", PDF_PATH), timeout=0.5)
    assert classify(caught.value).category is Category.TIMEOUT
    await backend.aclose()  # waits for the abandoned upload's clean-up
    assert emulator.count(action="file_delete") == 1
    assert emulator.files == [] and leftovers(spool) == []


async def test_a_cancelled_waiter_does_not_cancel_an_upload_others_wait_for(
    emulator_server: EmulatorServer, emulator: Emulator
) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def gated(item: Media) -> AsyncIterator[bytes]:
        entered.set()
        await release.wait()
        yield PDF

    backend = GeminiBackend(api_key="test-key", base_url=emulator_server.base_url, opener=gated)
    try:
        leaving = asyncio.create_task(backend.generate(MODEL, ask("one", PDF_PATH), timeout=30))
        staying = asyncio.create_task(backend.generate(MODEL, ask("two", PDF_PATH), timeout=30))
        await entered.wait()  # both tasks have run up to the shared upload by now
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        release.set()
        result = await staying
    finally:
        await backend.aclose()
    assert emulator.files[0]["name"] in result.text
    assert emulator.count(action="upload") == 1 and emulator.count(action="file_delete") == 0


@pytest.fixture
def two_keys() -> Emulator:
    return Emulator(
        {
            "endpoints": [
                {"name": "studio", "kind": "gemini_api", "api_key": "key-a"},
                {"name": "backup", "kind": "gemini_api", "api_key": "key-b"},
            ]
        }
    )


async def test_each_endpoint_uploads_its_own_copy(two_keys: Emulator, opener: Opener) -> None:
    async with EmulatorServer(two_keys) as server:
        make: Callable[[str], GeminiBackend] = lambda key: GeminiBackend(  # noqa: E731
            api_key=key, base_url=server.base_url, opener=opener
        )
        studio, backup = make("key-a"), make("key-b")
        try:
            await studio.generate(MODEL, ask("read it", PDF_PATH), timeout=10)
            await backup.generate(MODEL, ask("read it", PDF_PATH), timeout=10)
        finally:
            await studio.aclose()
            await backup.aclose()
    owners = {f["uri"]: f["endpoint"] for f in two_keys.files}
    generates = [r for r in two_keys.requests if r.action == "generate"]
    assert [r.status for r in generates] == [200, 200]
    for record in generates:
        [uri] = [p["fileUri"] for p in record.parts if p["kind"] == "file_data"]
        assert owners[uri] == record.endpoint
    assert sorted(owners.values()) == ["backup", "studio"]


async def test_count_tokens_counts_the_media(backend: GeminiBackend, emulator: Emulator) -> None:
    image = media(PNG, "image/png", "/img/shot.png", inline=True)
    prompt = "twelve chars"  # 3 tokens
    turns = (Turn("user", prompt, (image, PDF_PATH)),)
    assert await backend.count_tokens(MODEL, turns, timeout=10) == 3 + 258 + 2 * 258
    [record] = [r for r in emulator.requests if r.action == "count_tokens"]
    assert [p["kind"] for p in record.parts] == ["inline_data", "file_data", "text"]


async def test_text_only_requests_are_unchanged(backend: GeminiBackend, emulator: Emulator) -> None:
    result = await backend.generate(MODEL, GenerationRequest.from_prompt("plain"), timeout=10)
    assert result.text == expected_text("plain")
    [record] = emulator.requests
    assert record.tools == () and record.thinking is None
    assert result.grounding is None and result.thoughts == ""


async def test_the_sandbox_opener_refusing_a_changed_file_is_a_bad_request(
    emulator_server: EmulatorServer, emulator: Emulator, tmp_path: Path
) -> None:
    """The server's real opener (the sandbox, re-checking the file) refuses with its own
    error type: the request gets a bad_request, never a bug."""
    from gemini_failover.inputs import InputSettings, Roots, load_files
    from gemini_failover.tools.files import FileInputs

    folder = tmp_path / "allowed"
    folder.mkdir()
    report = folder / "report.pdf"
    report.write_bytes(PDF)
    loaded = await load_files(
        [str(report)], Roots([folder]), InputSettings(inline_max_bytes=0), argument="files"
    )
    (item,) = loaded.attachments
    assert isinstance(item, Media) and item.data is None  # path only: uploaded
    report.write_bytes(PDF + b"changed after the check")
    inputs = FileInputs(allowed_dirs=[str(folder)])
    backend = GeminiBackend(
        api_key="test-key", base_url=emulator_server.base_url, opener=inputs.opener
    )
    try:
        with pytest.raises(gexc.BadRequest) as caught:
            await backend.generate(MODEL, ask("read it", item), timeout=5)
    finally:
        await backend.aclose()
    assert classify(caught.value).category is Category.BAD_REQUEST
    assert "report.pdf" in str(caught.value)
    assert emulator.requests == [] and emulator.files == []
