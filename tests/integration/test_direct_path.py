"""The backend's direct path (gemini/wire.py, gemini/http1.py) against the SDK path:
the same request on the wire, the same result, the same errors. A loopback HTTP server
records what each path sends and answers both alike."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
from google.api_core import exceptions as gexc

from gemini_failover.gemini.backend import GeminiBackend
from gemini_failover.gemini.wire import is_plain
from gemini_failover.protocol import GenerationRequest, Thinking, Turn
from gemini_failover.resilience.errors import Category, classify, upstream_of

ANSWER: dict[str, Any] = {
    "candidates": [
        {
            "content": {"role": "model", "parts": [{"text": "An "}, {"text": "answer."}]},
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 3, "totalTokenCount": 10},
    "modelVersion": "m-001",
    "responseId": "r1",
}
RATE_LIMITED: dict[str, Any] = {
    "error": {
        "code": 429,
        "message": "Resource has been exhausted (e.g. check quota).",
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"},
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel"}],
            },
        ],
    }
}

REQUESTS = [
    GenerationRequest.from_prompt("hello"),
    GenerationRequest(
        contents=(Turn("user", "hi"), Turn("model", "yo"), Turn("user", "more ✓")),
        system_instruction="be brief",
        temperature=0.5,
        top_p=0.9,
        max_output_tokens=100,
        stop_sequences=("END", "STOP"),
        # keys out of alphabetical order: Gemini follows a schema's property order
        response_schema={"type": "object", "properties": {"z": {"type": "string"}, "a": {}}},
    ),
]


class Recorder:
    """A loopback HTTP/1.1 server: records each request, answers ``status``/``body``."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        self.status, self.extra = 200, b""
        self.body: dict[str, Any] = ANSWER
        self.url = ""
        self.piece = 0  # > 0: the answer is written in pieces of this size
        #: whole answers (head and body, as sent) for the next requests, first first;
        #: an answer without a content-length closes the connection after it
        self.raw: list[bytes] = []
        self.delays: list[float] = []  # seconds before answering the next requests
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *fields = head.decode("latin-1").split("\r\n")
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (f.partition(":") for f in fields if f)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append((line, headers, json.loads(body)))
                payload = json.dumps(self.body).encode()
                answer = (
                    b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\n" % self.status
                    + self.extra
                    + b"content-length: %d\r\n\r\n" % len(payload)
                    + payload
                )
                if self.raw:
                    answer = self.raw.pop(0)
                if self.delays:
                    await asyncio.sleep(self.delays.pop(0))  # a slow upstream
                step = self.piece or len(answer)
                for at in range(0, len(answer), step):  # as TLS records arrive
                    writer.write(answer[at : at + step])
                    await writer.drain()
                if b"content-length" not in answer.partition(b"\r\n\r\n")[0].lower():
                    writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


@asynccontextmanager
async def recorder() -> AsyncIterator[Recorder]:
    rec = Recorder()
    server = await asyncio.start_server(rec.handle, "127.0.0.1", 0)
    rec.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        yield rec


@pytest.mark.parametrize("request_", REQUESTS)
async def test_the_direct_path_sends_what_the_sdk_sends_and_reads_the_same(
    request_: GenerationRequest,
) -> None:
    assert is_plain(request_)
    async with recorder() as rec:
        results = []
        for direct in (False, True):
            backend = GeminiBackend(api_key="k-123", base_url=rec.url, direct=direct)
            results.append(await backend.generate("m", request_, timeout=10))
            await backend.aclose()
    assert results[0] == results[1]
    assert results[1].text == "An answer." and results[1].usage.total_tokens == 10
    (sdk_line, sdk_headers, sdk_body), (line, headers, body) = rec.requests
    assert line == sdk_line == "POST /v1beta/models/m:generateContent HTTP/1.1"
    assert json.dumps(body) == json.dumps(sdk_body)  # the same JSON, in the same order
    for name in ("x-goog-api-key", "content-type", "user-agent", "x-goog-api-client"):
        assert headers[name] == sdk_headers[name], name


async def test_an_error_answer_is_the_same_exception_on_both_paths() -> None:
    async with recorder() as rec:
        rec.status, rec.body, rec.extra = 429, RATE_LIMITED, b"retry-after: 9\r\n"
        raised: list[gexc.GoogleAPICallError] = []
        for direct in (False, True):
            backend = GeminiBackend(api_key="k", base_url=rec.url, direct=direct)
            with pytest.raises(gexc.GoogleAPICallError) as info:
                await backend.generate("m", REQUESTS[0], timeout=10)
            raised.append(info.value)
            await backend.aclose()
    sdk, direct_ = raised
    assert type(direct_) is type(sdk) is gexc.TooManyRequests
    assert direct_.message == sdk.message
    assert upstream_of(direct_) == upstream_of(sdk)
    got = upstream_of(direct_)
    assert got is not None and got.retry_after == 9.0 and got.quota_scope == "minute"


async def test_requests_with_files_tools_or_thinking_keep_the_sdk_path() -> None:
    assert not is_plain(GenerationRequest.from_prompt("x", google_search=True))
    assert not is_plain(GenerationRequest.from_prompt("x", urls=("https://example.com",)))
    assert not is_plain(GenerationRequest.from_prompt("x", thinking=Thinking("low")))


class _Answer(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the connection outlives the first loop

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        payload = json.dumps(ANSWER).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_one_backend_serves_successive_event_loops() -> None:
    """A connection kept alive by a closed event loop is not reused by the next one."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        backend = GeminiBackend(api_key="k", base_url=url)
        for _ in range(2):
            result = asyncio.run(backend.generate("m", REQUESTS[0], timeout=10))
            assert result.text == "An answer."
        asyncio.run(backend.aclose())
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("model", ["models/m", "tunedModels/my-tune"])
async def test_resource_names_keep_their_collection_as_the_sdk_keeps_them(model: str) -> None:
    async with recorder() as rec:
        for direct in (False, True):
            backend = GeminiBackend(api_key="k", base_url=rec.url, direct=direct)
            await backend.generate(model, REQUESTS[0], timeout=10)
            await backend.aclose()
    (sdk_line, _, _), (line, _, _) = rec.requests
    assert line == sdk_line == f"POST /v1beta/{model}:generateContent HTTP/1.1"


async def test_an_answer_larger_than_the_read_buffer_is_read_whole() -> None:
    text = "Grüße, " * 60_000  # ~480 KB of UTF-8, past the connection's high-water mark
    async with recorder() as rec:
        rec.body = {**ANSWER, "candidates": [{**ANSWER["candidates"][0]}]}
        rec.body["candidates"][0]["content"] = {"role": "model", "parts": [{"text": text}]}
        rec.piece = 16 * 1024
        backend = GeminiBackend(api_key="k", base_url=rec.url, direct=True)
        result = await backend.generate("m", REQUESTS[0], timeout=10)
        again = await backend.generate("m", REQUESTS[0], timeout=10)  # the connection, reused
        await backend.aclose()
    assert result.text == again.text == text


def _framed_by_close(body: bytes, content_type: bytes = b"application/json") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: " + content_type + b"\r\n\r\n" + body


async def test_an_answer_ended_by_the_connection_closing_is_read_whole() -> None:
    texts = []
    async with recorder() as rec:
        for direct in (False, True):
            rec.raw = [_framed_by_close(json.dumps(ANSWER).encode())]
            rec.piece = 5
            backend = GeminiBackend(api_key="k", base_url=rec.url, direct=direct)
            texts.append((await backend.generate("m", REQUESTS[0], timeout=10)).text)
            await backend.aclose()
    assert texts == ["An answer.", "An answer."]


async def test_stream_lines_ended_by_cr_alone_are_split_as_the_sdk_splits_them() -> None:
    def event(text: str, finish: str | None = None) -> bytes:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}}
        if finish:
            candidate["finishReason"] = finish
        # a JSON string may hold U+2028: not a line break in SSE
        return b"data: " + json.dumps({"candidates": [candidate]}, ensure_ascii=False).encode()

    body = event("one\u2028") + b"\r\r" + event("two\n") + b"\r\n\r\n" + event(" end", "STOP")
    streamed = []
    async with recorder() as rec:
        for direct in (False, True):
            rec.raw = [_framed_by_close(body, b"text/event-stream")]
            rec.piece = 3  # CR and LF of one CRLF in different pieces
            backend = GeminiBackend(api_key="k", base_url=rec.url, direct=direct)
            chunks = [c.text async for c in backend.stream("m", REQUESTS[0], timeout=10)]
            streamed.append(chunks)
            await backend.aclose()
    assert streamed[0] == streamed[1] == ["one\u2028", "two\n", " end"]


async def test_a_redirect_is_followed_as_the_sdk_follows_it() -> None:
    async with recorder() as rec:
        moved = (
            b"HTTP/1.1 307 Temporary Redirect\r\nlocation: %s/v1beta/models/moved:generateContent"
            b"\r\ncontent-length: 0\r\n\r\n" % rec.url.encode()
        )
        rec.raw = [moved, moved]
        backend = GeminiBackend(api_key="k", base_url=rec.url, direct=True)
        first = await backend.generate("m", REQUESTS[0], timeout=10)
        second = await backend.generate("m", REQUESTS[0], timeout=10)
        await backend.aclose()
    lines = [line for line, _, _ in rec.requests]
    original = "POST /v1beta/models/m:generateContent HTTP/1.1"
    # the direct path's request, the SDK's, the SDK's after the redirect, then the SDK
    assert lines == [original, original, original.replace("/m:", "/moved:"), original]
    assert first.text == second.text == "An answer."


async def test_a_model_name_cannot_add_a_header_to_the_request() -> None:
    async with recorder() as rec:
        for direct in (False, True):
            backend = GeminiBackend(api_key="k", base_url=rec.url, direct=direct)
            with pytest.raises((ValueError, httpx2.InvalidURL), match="URL"):
                await backend.generate("m\r\nx-injected: 1", REQUESTS[0], timeout=10)
            await backend.aclose()
    assert rec.requests == []


@pytest.mark.parametrize(
    "model", ["my model é", 'a"b', "a{b}<c>`", "a|b^c[1] é", "a\\b é", "x%zz é", "x%41"]
)
async def test_a_model_name_is_percent_encoded_as_the_sdk_encodes_it(model: str) -> None:
    async with recorder() as rec:
        for direct in (False, True):
            backend = GeminiBackend(api_key="k", base_url=rec.url, direct=direct)
            await backend.generate(model, REQUESTS[0], timeout=10)
            await backend.aclose()
    (sdk_line, _, _), (line, _, _) = rec.requests
    assert line == sdk_line


async def test_a_refused_model_name_costs_no_connection() -> None:
    async with recorder() as rec:
        backend = GeminiBackend(api_key="k", base_url=rec.url, direct=True)
        await backend.generate("m", REQUESTS[0], timeout=10)
        for _ in range(3):
            with pytest.raises(ValueError, match="URL"):
                await backend.generate("m\n", REQUESTS[0], timeout=10)
        await backend.generate("m", REQUESTS[0], timeout=10)
        await backend.aclose()
    assert rec.connections == 1 and len(rec.requests) == 2


async def test_a_redirected_call_gets_what_is_left_of_its_time() -> None:
    async with recorder() as rec:
        moved = (
            b"HTTP/1.1 307 Temporary Redirect\r\nlocation: %s/v1beta/models/m:generateContent"
            b"\r\ncontent-length: 0\r\n\r\n" % rec.url.encode()
        )
        # the 307 takes 0.6 s, the SDK path's call another 0.6 s: 1.2 s in all
        rec.raw, rec.delays = [moved], [0.6, 0.6]
        backend = GeminiBackend(api_key="k", base_url=rec.url, direct=True)
        with pytest.raises(gexc.GatewayTimeout) as caught:
            await backend.generate("m", REQUESTS[0], timeout=1.0)
        await backend.aclose()
    assert classify(caught.value).category is Category.TIMEOUT


def test_the_direct_path_runs_on_uvloop() -> None:
    # uvloop's transports are not asyncio.Transport subclasses; applications run on it
    # (uvicorn picks it when installed)
    uvloop = pytest.importorskip("uvloop")

    async def both_calls() -> tuple[str, list[str]]:
        async with recorder() as rec:
            backend = GeminiBackend(api_key="k", base_url=rec.url, direct=True)
            result = await backend.generate("m", REQUESTS[0], timeout=10)
            rec.raw = [_framed_by_close(b"data: " + json.dumps(ANSWER).encode() + b"\r\n\r\n")]
            streamed = [c.text async for c in backend.stream("m", REQUESTS[0], timeout=10)]
            await backend.aclose()
        return result.text, streamed

    text, streamed = uvloop.run(both_calls())
    assert text == "An answer." and streamed == ["An answer."]
