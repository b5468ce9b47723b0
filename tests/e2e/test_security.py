"""Hostile clients against the real server: HTTP limits (header and idle timeouts,
connection and session caps), non-HTTP scopes, tokens on public binds, the body cap,
a hostile JSON Schema while /healthz is asked, a stdio start-up failure, and the
Redis URL in the health document."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.sse import sse_client
from starlette.types import Message, Scope

from gemini_failover import jsonschema_worker
from gemini_failover.config import Settings
from gemini_failover.emulator import Emulator, EmulatorServer
from gemini_failover.server.http import (
    MAX_BODY_BYTES,
    Security,
    build_http_app,
    uvicorn_limits,
)
from gemini_failover.server.runtime import Runtime, StartupError, register_secrets
from gemini_failover.tools.validation import MAX_INPUT_BYTES
from tests.e2e.conftest import (
    FAST,
    _Uvicorn,
    assert_clear_error,
    fast_env,
    fast_settings,
    free_socket,
    held,
)
from tests.e2e.test_stdio import COMMAND
from tests.processes import free_port
from tests.unit.test_jsonschema_guard import Listener, allof_bomb

#: A bound on waiting for something that must happen by itself (not a timing assertion:
#: without the fix it never happens, and the test fails here instead of hanging).
NEVER = 20.0


@asynccontextmanager
async def served(
    runtime: Runtime,
    transport: Any = "http",
    security: Security | None = None,
    parser: Literal["h11", "httptools"] = "h11",
) -> AsyncIterator[int]:
    """The app on a free loopback port, with the uvicorn limits of run_uvicorn
    (``parser``: the MCP server's h11, or the gateway's httptools)."""
    app = build_http_app(
        runtime, runtime.build_server(), transport, security or Security.for_bind("127.0.0.1", None)
    )
    sock = free_socket()
    config = uvicorn.Config(
        app, **uvicorn_limits(runtime.settings.http, parser), log_config=None, access_log=False
    )
    config.timeout_graceful_shutdown = 1
    uv = _Uvicorn(config)
    task = asyncio.create_task(uv.serve(sockets=[sock]))
    listening = asyncio.create_task(uv.listening.wait())
    try:
        await asyncio.wait({task, listening}, return_when=asyncio.FIRST_COMPLETED)
        assert not task.done(), "uvicorn exited during startup"
        yield sock.getsockname()[1]
    finally:
        listening.cancel()
        uv.should_exit = True
        await asyncio.wait_for(task, NEVER)
        sock.close()


@asynccontextmanager
async def limited(emulator_server: EmulatorServer, **http: Any) -> AsyncIterator[Runtime]:
    settings = fast_settings(emulator_server.base_url, http=http)
    async with Runtime(settings) as runtime:
        yield runtime


@asynccontextmanager
async def guarded(
    emulator_server: EmulatorServer, parser: Literal["h11", "httptools"], **http: Any
) -> AsyncIterator[int]:
    """A runtime with these HTTP limits, served on a free port (``served``)."""
    async with limited(emulator_server, **http) as runtime, served(runtime, parser=parser) as port:
        yield port


async def raw(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), NEVER)


def healthz(port: int) -> int:
    return httpx2.get(f"http://127.0.0.1:{port}/healthz").status_code


# -- connection limits --------------------------------------------------------------------


PARSERS = pytest.mark.parametrize("parser", ["h11", "httptools"])


@PARSERS
async def test_half_sent_headers_are_cut_off(
    emulator_server: EmulatorServer, parser: Literal["h11", "httptools"]
) -> None:
    async with guarded(emulator_server, parser, header_timeout=0.2) as port:
        reader, writer = await raw(port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        await writer.drain()
        assert await closed_by_server(reader) == b""
        silent, _ = await raw(port)  # connects, sends nothing
        assert await closed_by_server(silent) == b""
        writer.close()


@PARSERS
async def test_a_kept_alive_connections_next_head_has_its_own_deadline(
    emulator_server: EmulatorServer, parser: Literal["h11", "httptools"]
) -> None:
    """The second request's head, begun after the first answer, is cut off too (the
    httptools guard keeps one timer per connection and moves it to the later deadline)."""
    async with guarded(emulator_server, parser, header_timeout=0.3) as port:
        reader, writer = await raw(port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), NEVER)
        assert head.startswith(b"HTTP/1.1 200")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        assert b"alive" in await reader.readexactly(length)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        await writer.drain()
        assert await closed_by_server(reader) == b""
        writer.close()


@PARSERS
async def test_a_client_that_half_closes_still_reads_its_answer(
    emulator_server: EmulatorServer, parser: Literal["h11", "httptools"]
) -> None:
    """``nc -N`` and some health checkers send the request, then shut their side: an
    answer made at once (held a moment by the httptools guard's corked writes) must still
    leave. (One that waits on upstream is not sent: end-of-stream means the client left.)"""
    async with guarded(emulator_server, parser) as port:
        for _ in range(5):
            reader, writer = await raw(port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            writer.write_eof()
            answer = await closed_by_server(reader)
            assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b'{"status":"alive"}')
            writer.close()


@PARSERS
async def test_an_endless_request_head_is_refused_not_buffered(
    emulator_server: EmulatorServer, parser: Literal["h11", "httptools"]
) -> None:
    async with guarded(emulator_server, parser, header_timeout=30) as port:
        reader, writer = await raw(port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        with contextlib.suppress(ConnectionError):
            for _ in range(64):  # 512 KiB of headers, far past the 16 KiB limit
                writer.write(b"X-A: " + b"a" * 8000 + b"\r\n")
                await writer.drain()
        try:  # closed long before the header timeout (30 s)
            answer = await closed_by_server(reader)
        except ConnectionResetError:  # closed with our headers unread: a reset
            answer = b""
        assert answer == b"" or answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 431"))
        assert reader.at_eof() or answer == b""
        writer.close()


@PARSERS
async def test_idle_keep_alive_connections_are_closed(
    emulator_server: EmulatorServer, parser: Literal["h11", "httptools"]
) -> None:
    async with (
        limited(emulator_server, idle_timeout=1) as runtime,
        served(runtime, parser=parser) as port,
    ):
        reader, writer = await raw(port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        answer = await closed_by_server(reader)
        assert answer.startswith(b"HTTP/1.1 200") and b'"alive"' in answer
        writer.close()


@PARSERS
async def test_connections_beyond_the_cap_are_closed_at_once(
    emulator_server: EmulatorServer, parser: Literal["h11", "httptools"]
) -> None:
    async with (
        limited(emulator_server, max_connections=3) as runtime,
        served(runtime, parser=parser) as port,
    ):
        held_open = [await raw(port) for _ in range(3)]
        for reader, writer in held_open:  # each answered: they are really open
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            await writer.drain()
            assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 200")
        extra, _ = await raw(port)
        assert await closed_by_server(extra) == b""
        for _, writer in held_open:
            writer.close()
            await writer.wait_closed()
        assert await asyncio.to_thread(healthz, port) == 200


async def test_sse_sessions_are_capped(emulator_server: EmulatorServer) -> None:
    async with (
        limited(emulator_server, max_sessions=1) as runtime,
        served(runtime, "sse") as port,
    ):
        url = f"http://127.0.0.1:{port}"
        async with held(Client(sse_client(f"{url}/sse"))) as client:
            assert len((await client.list_tools()).tools) == 7
            async with httpx2.AsyncClient() as http:
                refused = await http.get(f"{url}/sse")
            assert refused.status_code == 503
            assert refused.json()["error"] == "too_many_sessions"
        async with held(Client(sse_client(f"{url}/sse"))) as client:  # the slot was given back
            assert len((await client.list_tools()).tools) == 7


# -- only HTTP reaches the app -------------------------------------------------------------


async def test_websocket_scopes_are_refused_before_the_app(runtime: Runtime) -> None:
    app = build_http_app(
        runtime, runtime.build_server(), "sse", Security.for_bind("127.0.0.1", "t" * 20)
    )
    sent: list[dict[str, Any]] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(dict(message))

    for path in ("/messages/", "/sse", "/mcp", "/healthz"):
        sent.clear()
        scope: Scope = {"type": "websocket", "path": path, "headers": [], "query_string": b""}
        await app(scope, receive, send)
        assert sent == [{"type": "websocket.close", "code": 1008, "reason": "HTTP only"}]


async def test_a_websocket_upgrade_over_the_wire_is_plain_http(runtime: Runtime) -> None:
    async with served(runtime, "sse", Security.for_bind("127.0.0.1", "t" * 20)) as port:
        reader, writer = await raw(port)
        writer.write(
            b"GET /messages/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        await writer.drain()
        status = await asyncio.wait_for(reader.readuntil(b"\r\n"), NEVER)
        assert status.startswith(b"HTTP/1.1 401")  # the token check ran; no 101, no 500
        writer.close()


# -- tokens ------------------------------------------------------------------------------------


def test_blank_and_short_tokens_are_refused_on_a_public_bind() -> None:
    for token in (None, "", "   ", "\t\n"):
        with pytest.raises(StartupError, match="unset or blank"):
            Security.for_bind("0.0.0.0", token)
    with pytest.raises(StartupError, match="15 characters: use at least 16"):
        Security.for_bind("0.0.0.0", "x" * 15)
    assert Security.for_bind("0.0.0.0", " " + "x" * 16 + " ").token == "x" * 16
    assert Security.for_bind("127.0.0.1", "short").token == "short"  # loopback: allowed


# -- the body cap admits every prompt the tool limits admit -----------------------------------


async def test_a_large_escaped_non_ascii_prompt_is_not_413(runtime: Runtime) -> None:
    prompt = "é" * ((3 * 1024 * 1024) // 2)  # 3 MiB of UTF-8, every character escaped
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "gemini_count_tokens", "arguments": {"text": prompt}},
    }
    body = json.dumps(call).encode()  # ensure_ascii: \u00e9, 6 bytes per character
    assert len(body) > 9 * 1024 * 1024
    worst = json.dumps({"text": "a" * MAX_INPUT_BYTES}).replace("a", "\\u0061").encode()
    assert len(worst) < MAX_BODY_BYTES
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    async with served(runtime) as port, httpx2.AsyncClient(timeout=NEVER) as http:
        url = f"http://127.0.0.1:{port}/mcp"
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"},
            },
        }
        first = await http.post(url, json=init, headers=headers)
        session = {"mcp-session-id": first.headers["mcp-session-id"], **headers}
        response = await http.post(url, content=body, headers=session)
    assert response.status_code == 200, response.status_code
    assert f'"total_tokens":{len(prompt) // 4}' in response.text  # the emulator's count


# -- a hostile schema does not hold up other requests -----------------------------------------


async def test_healthz_answers_while_a_hostile_schema_is_validated(
    emulator_server: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The emulator's answer for this schema makes the pattern backtrack for ever. While
    the worker is on it, /healthz and another tool call are answered; then the job is
    stopped at its deadline and the call fails cleanly."""
    monkeypatch.setattr(jsonschema_worker, "ANSWER_CHECK_SECONDS", 1.0)
    started, finished = threading.Event(), threading.Event()
    run = jsonschema_worker._run

    def observed(job: tuple[Any, ...], timeout: float) -> tuple[str, Any]:
        if job[0] == "answer":
            started.set()
        try:
            return run(job, timeout)
        finally:
            if job[0] == "answer":
                finished.set()

    monkeypatch.setattr(jsonschema_worker, "_run", observed)
    schema = {
        "type": "object",
        "properties": {"s": {"type": "string", "minLength": 40, "pattern": "^(.+)+!$"}},
        "required": ["s"],
    }
    retry = {**FAST["retry"], "semantic_retries": 0}
    settings = fast_settings(emulator_server.base_url, retry=retry)
    async with (
        Runtime(settings) as runtime,
        served(runtime) as port,
        held(Client(f"http://127.0.0.1:{port}/mcp")) as client,
    ):
        call = asyncio.create_task(
            client.call_tool("gemini_generate_json", {"prompt": "p", "schema": schema})
        )
        assert await asyncio.to_thread(started.wait, NEVER)
        assert await asyncio.to_thread(healthz, port) == 200
        other = await client.call_tool("gemini_count_tokens", {"text": "still served"})
        assert not other.is_error
        assert not finished.is_set()  # all of that happened while the worker was busy
        result = await call
        breakers = {m.name: m.breaker.failure_rate()[0] for m in runtime.manager.chain}
    assert result.is_error
    # The answer check was stopped at its deadline: the caller's schema is at fault, not
    # the model, so the request ends at once (no failover) and no breaker is charged.
    text = str(result.content[0])
    assert "could not be checked against the schema" in text
    assert "flash" not in text
    assert breakers == {"pro": 0.0, "flash": 0.0}


# -- stdio: a start-up failure exits at once ----------------------------------------------------


async def test_stdio_start_up_failure_exits_without_waiting_for_stdin(
    emulator_server: EmulatorServer,
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    env = fast_env(emulator_server.base_url)
    proc = await asyncio.create_subprocess_exec(
        *COMMAND,
        "serve",
        "--metrics-port",
        str(port),
        env=env,
        stdin=subprocess.PIPE,  # open, and nothing is ever written to it
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        code = await asyncio.wait_for(proc.wait(), NEVER)
        assert proc.stderr is not None
        stderr = (await proc.stderr.read()).decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        taken.close()
    assert code == 2  # a start-up error, as the CLI reports every one
    assert f"gemini-failover: error: cannot listen on 127.0.0.1:{port}" in stderr.splitlines()[-1]


# -- health detail: only the Redis password is masked --------------------------------------------


def test_only_the_password_of_the_redis_url_is_a_secret() -> None:
    from gemini_failover.observability.logging import redact_text

    port = free_port()
    url = f"redis://127.0.0.1:{port}/3"
    register_secrets(Settings(api_key="k" * 20, redis_url=url))
    assert redact_text(f"{url}: unreachable") == f"{url}: unreachable"
    with_password = f"redis://user:s3cr%40t-pass@127.0.0.1:{port}/0"
    register_secrets(Settings(api_key="k" * 20, redis_url=with_password))
    assert redact_text("auth with s3cr@t-pass failed") == "auth with [REDACTED] failed"
    assert redact_text("auth with s3cr%40t-pass failed") == "auth with [REDACTED] failed"


async def test_the_health_detail_names_a_passwordless_redis(
    emulator_server: EmulatorServer,
) -> None:
    port = free_port()  # nothing listens there: the store reports it unreachable
    url = f"redis://127.0.0.1:{port}/0"
    settings = fast_settings(emulator_server.base_url, redis_url=url)
    async with Runtime(settings) as runtime:
        detail = runtime.health_now()["state_backend"]["detail"]
    assert detail.startswith(f"{url}: "), detail
    assert "[REDACTED]" not in detail


# -- the schemas through the real tool: clear errors, no connection, no upstream call --


async def test_hostile_schemas_through_the_tool(client: Client, emulator: Emulator) -> None:
    with Listener() as listener:
        cases = [
            ({"$dynamicRef": f"{listener.base}/s.json#node"}, "$dynamicRef"),
            ({"$id": f"{listener.base}/r.json", "items": {"$ref": "other.json"}}, "other.json"),
            ({"items": {"$dynamicRef": "#missing"}}, "'#missing' at #/items"),
            (allof_bomb(20), "subschema checks"),
            ({"$ref": "https://json-schema.org/draft/2020-12/schema"}, "points nowhere"),
        ]
        for schema, expected in cases:
            result = await client.call_tool(
                "gemini_generate_json", {"prompt": "p", "schema": schema}
            )
            text = assert_clear_error(result, "gemini_generate_json")
            assert text.startswith("schema "), text  # names the argument
            assert expected in text, text
        assert listener.connections == []
    assert [r for r in emulator.requests if r.action != "get"] == []  # models.get: start-up


# -- files over HTTP: a remote client's roots name folders on its machine, not ours ----------


@pytest.mark.filterwarnings("ignore:The roots capability is deprecated")
async def test_a_remote_client_cannot_widen_what_the_server_reads(
    emulator_server: EmulatorServer, tmp_path: Any
) -> None:
    from mcp import types
    from mcp.client.streamable_http import streamable_http_client

    secret = tmp_path / "server-only.txt"
    secret.write_text("a file on the server that nobody allowed")

    async def list_roots(context: Any) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri="file:///", name="everything")])

    settings = fast_settings(emulator_server.base_url)  # no GEMINI_FAILOVER_ALLOWED_DIRS
    async with Runtime(settings) as runtime, served(runtime) as port:
        url = f"http://127.0.0.1:{port}/mcp"
        transport = streamable_http_client(url)
        async with held(Client(transport, list_roots_callback=list_roots)) as client:
            result = await client.call_tool(
                "gemini_generate", {"prompt": "x", "files": [str(secret)]}
            )
    assert result.is_error
    assert "files[0]" in str(result.content[0])
    assert not any(secret.name in json.dumps(r.parts) for r in emulator_server.emulator.requests)
