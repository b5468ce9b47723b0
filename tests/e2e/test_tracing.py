"""OpenTelemetry traces through the real server (Runtime, MCP SDK, failover manager,
google-genai SDK) against the emulator, collected by the SDK's in-memory exporter: the
span tree of a failover, a traceparent header honoured over streamable HTTP, nothing
sensitive recorded, and log lines that carry the trace."""

from __future__ import annotations

import io
import json
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import stdio_client
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gemini_failover.config import Settings
from gemini_failover.emulator import Emulator, EmulatorServer, expected_text
from gemini_failover.observability.log_config import configure_logging
from gemini_failover.server.http import Security
from gemini_failover.server.runtime import Runtime
from tests import otel_support
from tests.e2e.conftest import (
    CANARY,
    FALLBACK,
    PRIMARY,
    Progress,
    fast_env,
    fast_settings,
    held,
    serve_http,
)

TOKEN = f"token-{uuid.uuid4().hex}"
TRACE_ID = uuid.uuid4().hex
PARENT_ID = uuid.uuid4().hex[:16]
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """Tracing configured the standard way; the server finds the test's provider."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    return otel_support.install()


@pytest.fixture
async def traced(spans: InMemorySpanExporter, settings: Settings) -> AsyncIterator[Runtime]:
    async with Runtime(settings) as runtime:
        yield runtime


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def tool_span(spans: InMemorySpanExporter, tool: str) -> ReadableSpan:
    """The MCP SDK's span of the (only) call of *tool*."""
    (span,) = otel_support.named(spans.get_finished_spans(), f"tools/call {tool}")
    return span


async def test_a_failover_request_yields_the_span_tree(
    traced: Runtime, emulator: Emulator, spans: InMemorySpanExporter
) -> None:
    emulator.configure(PRIMARY, faults=[{"kind": "status", "code": 503}])
    async with held(Client(traced.build_server())) as client:
        result = await client.call_tool("gemini_generate", {"prompt": "trace me"})
    assert not result.is_error and result.structured_content is not None
    out = result.structured_content

    finished = spans.get_finished_spans()
    tool = tool_span(spans, "gemini_generate")
    assert tool.kind is SpanKind.SERVER
    assert attrs(tool)["gen_ai.operation.name"] == "execute_tool"
    assert attrs(tool)["gen_ai.tool.name"] == "gemini_generate"

    (request,) = otel_support.children(finished, tool)
    assert request.name == f"generate_content {PRIMARY}"
    assert request.kind is SpanKind.INTERNAL
    got = attrs(request)
    assert got["gen_ai.operation.name"] == "generate_content"
    assert got["gen_ai.provider.name"] == "gcp.gemini"
    assert got["gen_ai.request.model"] == PRIMARY
    assert got["gen_ai.response.model"] == FALLBACK
    assert got["gen_ai.usage.input_tokens"] == out["usage"]["prompt_tokens"] > 0
    assert got["gen_ai.usage.output_tokens"] == out["usage"]["output_tokens"] > 0
    assert got["gen_ai.response.finish_reasons"] == ("STOP",)
    assert got["gemini_failover.failovers"] == 1
    assert got["gemini_failover.request_id"] == out["request_id"]
    assert got["gemini_failover.chain"] == (PRIMARY, FALLBACK)
    assert "error.type" not in got
    failovers = [e for e in request.events if e.name == "failover"]
    assert [dict(e.attributes or {}) for e in failovers] == [
        {"from_model": PRIMARY, "to_model": FALLBACK, "reason": "transient"}
    ]
    assert [e.name for e in request.events].count("retry_scheduled") == 1

    attempts = otel_support.children(finished, request)
    assert [(a.name, attrs(a).get("error.type")) for a in attempts] == [
        (f"generate_content {PRIMARY}", "transient"),
        (f"generate_content {PRIMARY}", "transient"),
        (f"generate_content {FALLBACK}", None),
    ]
    assert [a["outcome"] for a in out["attempts"]] == ["503", "503", "ok"]
    assert all(a.kind is SpanKind.CLIENT for a in attempts)
    assert [attrs(a).get("http.response.status_code") for a in attempts] == [503, 503, None]
    assert [a.status.status_code for a in attempts] == [
        StatusCode.ERROR,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]
    assert attrs(attempts[-1])["gen_ai.response.model"] == FALLBACK
    for attempt in attempts:  # inside the request span, in time
        assert request.start_time is not None and request.end_time is not None
        assert attempt.start_time is not None and attempt.end_time is not None
        assert request.start_time <= attempt.start_time <= attempt.end_time <= request.end_time


async def test_a_failed_call_and_other_operations(
    traced: Runtime, emulator: Emulator, spans: InMemorySpanExporter
) -> None:
    emulator.configure(PRIMARY, faults=[{"kind": "status", "code": 400}])
    async with held(Client(traced.build_server())) as client:
        failed = await client.call_tool("gemini_generate", {"prompt": "bad"})
        embedded = await client.call_tool("gemini_embed", {"texts": ["a", "b"]})
        chat = await client.call_tool("gemini_chat", {"turns": [{"role": "user", "text": "x"}]})
    assert failed.is_error and not embedded.is_error and chat.is_error  # 400 again: no failover
    finished = spans.get_finished_spans()
    (request,) = otel_support.children(finished, tool_span(spans, "gemini_generate"))
    assert attrs(request)["error.type"] == "bad_request"
    assert request.status.status_code is StatusCode.ERROR
    (embed,) = otel_support.children(finished, tool_span(spans, "gemini_embed"))
    assert embed.name == "embeddings embedder"
    assert attrs(embed)["gen_ai.response.model"] == "embedder"
    (chatted,) = otel_support.children(finished, tool_span(spans, "gemini_chat"))
    assert chatted.name == f"chat {PRIMARY}"
    (attempt,) = otel_support.children(finished, chatted)
    assert attempt.name == f"chat {PRIMARY}"


async def test_a_traceparent_header_is_the_parent_over_streamable_http(
    traced: Runtime, spans: InMemorySpanExporter
) -> None:
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "gemini_generate", "arguments": {"prompt": "parented"}},
    }
    async with serve_http(traced, "http") as base, httpx2.AsyncClient(timeout=30) as http:
        first = await http.post(f"{base}/mcp", json=_initialize(), headers=MCP_HEADERS)
        session = {**MCP_HEADERS, "mcp-session-id": first.headers["mcp-session-id"]}
        answer = await http.post(
            f"{base}/mcp", json=call, headers={**session, "traceparent": traceparent}
        )
    assert answer.status_code == 200 and expected_text("parented") in answer.text
    tool = tool_span(spans, "gemini_generate")
    assert tool.parent is not None and tool.parent.is_remote
    assert format(tool.parent.span_id, "016x") == PARENT_ID
    finished = spans.get_finished_spans()
    (request,) = otel_support.children(finished, tool)
    (attempt,) = otel_support.children(finished, request)
    for span in (tool, request, attempt):
        assert span.context is not None
        assert format(span.context.trace_id, "032x") == TRACE_ID


def _initialize() -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"},
        },
    }


async def _traced_calls(runtime: Runtime, emulator: Emulator, prompt: str, system: str) -> None:
    """Four tool calls that fail over, over streamable HTTP with a bearer token."""
    security = Security.for_bind("127.0.0.1", TOKEN)
    emulator.configure(PRIMARY, faults=[{"kind": "status", "code": 503}])
    calls = [
        ("gemini_generate", {"prompt": prompt, "system_instruction": system}),
        ("gemini_chat", {"turns": [{"role": "user", "text": prompt}]}),
        ("gemini_generate_json", {"prompt": prompt, "schema": {"type": "object"}}),
        ("gemini_count_tokens", {"text": prompt}),
    ]
    async with (
        serve_http(runtime, "http", security) as base,
        httpx2.AsyncClient(timeout=30) as http,
    ):
        headers = {**MCP_HEADERS, "authorization": f"Bearer {TOKEN}"}
        first = await http.post(f"{base}/mcp", json=_initialize(), headers=headers)
        headers["mcp-session-id"] = first.headers["mcp-session-id"]
        for number, (tool, arguments) in enumerate(calls, start=2):
            call = {
                "jsonrpc": "2.0",
                "id": number,
                "method": "tools/call",
                "params": {"name": tool, "arguments": arguments},
            }
            answer = await http.post(f"{base}/mcp", json=call, headers=headers)
            assert answer.status_code == 200


def _everything(spans: InMemorySpanExporter) -> str:
    """Every span, with its attributes, events, links and resource, as text."""
    return "\n".join(span.to_json(indent=None) for span in spans.get_finished_spans())


async def test_nothing_sensitive_is_recorded(
    traced: Runtime, emulator: Emulator, spans: InMemorySpanExporter
) -> None:
    prompt, system = f"prompt-{uuid.uuid4().hex}", f"system-{uuid.uuid4().hex}"
    await _traced_calls(traced, emulator, prompt, system)
    recorded = _everything(spans)
    assert '"gen_ai.request.model"' in recorded and '"failover"' in recorded  # it traced
    for secret in (CANARY, TOKEN, prompt, system, expected_text(prompt)):
        assert secret not in recorded
    assert "gen_ai.input.messages" not in recorded
    assert "gen_ai.output.messages" not in recorded


async def test_content_is_recorded_when_enabled_and_secrets_still_are_not(
    spans: InMemorySpanExporter, emulator_server: EmulatorServer, emulator: Emulator
) -> None:
    settings = fast_settings(emulator_server.base_url, trace_content=True)
    prompt, system = f"prompt-{uuid.uuid4().hex}", f"system-{uuid.uuid4().hex}"
    async with Runtime(settings) as runtime:
        await _traced_calls(runtime, emulator, prompt, system)
    recorded = _everything(spans)
    # the scan finds what is there: the prompt, the system instruction, the answer
    assert prompt in recorded and system in recorded
    assert json.dumps(expected_text(prompt))[1:-1] in recorded
    for secret in (CANARY, TOKEN):
        assert secret not in recorded


async def test_log_lines_of_a_request_carry_its_trace(
    traced: Runtime, emulator: Emulator, spans: InMemorySpanExporter
) -> None:
    out = io.StringIO()
    configure_logging("debug", "json", stream=out)  # tracing is configured: ids on
    try:
        emulator.configure(PRIMARY, faults=[{"kind": "status", "code": 503}])
        async with held(Client(traced.build_server())) as client:
            result = await client.call_tool("gemini_generate", {"prompt": "log me"})
    finally:
        configure_logging("info", "json", stream=sys.stderr, trace_ids=False)
    assert result.structured_content is not None
    request_id = result.structured_content["request_id"]
    finished = spans.get_finished_spans()
    (request,) = otel_support.children(finished, tool_span(spans, "gemini_generate"))
    assert request.context is not None
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    mine = [line for line in lines if line.get("request_id") == request_id]
    assert {line["event"] for line in mine} >= {"attempt_finished", "failover"}
    for line in mine:
        assert line["trace_id"] == format(request.context.trace_id, "032x")
        assert line["span_id"] == format(request.context.span_id, "016x")


async def test_a_stdio_server_exports_spans_with_the_standard_variables(
    emulator_server: EmulatorServer, emulator: Emulator, tmp_path: Path
) -> None:
    """The real process, configured only by OTEL_TRACES_EXPORTER=console: one JSON line
    per span on stderr next to the log lines (stdout stays the protocol), the span tree
    of a stream continued on the fallback, log lines with the trace ids, no canary."""
    from tests.e2e.test_stdio import params

    env = {**fast_env(emulator_server.base_url), "OTEL_TRACES_EXPORTER": "console"}
    stderr_path = tmp_path / "server.stderr"
    emulator.configure(PRIMARY, faults=[{"kind": "stream_cut", "after": 3}])
    with stderr_path.open("w") as errlog:
        transport = stdio_client(params("serve", env=env), errlog=errlog)
        async with held(Client(transport)) as client:
            progress = Progress()
            result = await client.call_tool(
                "gemini_generate", {"prompt": "a long story"}, progress_callback=progress
            )
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["served_by"] == FALLBACK
    logged = stderr_path.read_text()
    assert CANARY not in logged
    lines = [json.loads(line) for line in logged.splitlines() if line.strip()]  # all JSON
    exported = [line for line in lines if "context" in line and "kind" in line]
    logs = [line for line in lines if "event" in line]
    (tool,) = [s for s in exported if s["name"] == "tools/call gemini_generate"]
    (request,) = [s for s in exported if s["parent_id"] == tool["context"]["span_id"]]
    assert request["name"] == f"generate_content {PRIMARY}"
    assert request["attributes"]["gen_ai.response.model"] == FALLBACK
    assert request["resource"]["attributes"]["service.name"] == "gemini-failover"
    assert "stream_continued" in [e["name"] for e in request["events"]]
    attempts = [s for s in exported if s["parent_id"] == request["context"]["span_id"]]
    assert sorted(a["name"] for a in attempts) == [
        f"generate_content {FALLBACK}",
        f"generate_content {PRIMARY}",
    ]
    assert all(a["attributes"]["gemini_failover.stream"] for a in attempts)
    request_id = result.structured_content["request_id"]
    continued = [line for line in logs if line.get("request_id") == request_id]
    assert continued and {line["event"] for line in continued} >= {"stream_continued"}
    for line in continued:
        assert f"0x{line['trace_id']}" == request["context"]["trace_id"]
        assert f"0x{line['span_id']}" == request["context"]["span_id"]


async def test_a_traceparent_header_is_the_parent_over_sse(
    traced: Runtime, spans: InMemorySpanExporter
) -> None:
    """Raw SSE (an MCP client would also send its own span in ``_meta``, which wins):
    the header on the POST that carries the tool call is honoured, although the SSE
    answer travels on another request (the GET)."""
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "gemini_generate", "arguments": {"prompt": "over sse"}},
    }
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    async with (
        serve_http(traced, "sse") as base,
        httpx2.AsyncClient(timeout=30) as http,
        http.stream("GET", f"{base}/sse") as stream,
    ):
        lines = stream.aiter_lines()
        endpoint = await _sse_data(lines)
        for message in (_initialize(), initialized):
            posted = await http.post(f"{base}{endpoint}", json=message)
            assert posted.status_code == 202
        assert json.loads(await _sse_data(lines))["id"] == 1
        posted = await http.post(
            f"{base}{endpoint}", json=call, headers={"traceparent": traceparent}
        )
        assert posted.status_code == 202
        answer = json.loads(await _sse_data(lines))
    assert answer["id"] == 2 and not answer["result"]["isError"]
    tool = tool_span(spans, "gemini_generate")
    assert tool.parent is not None
    assert format(tool.parent.span_id, "016x") == PARENT_ID
    finished = spans.get_finished_spans()
    (request,) = otel_support.children(finished, tool)
    for span in (tool, request):
        assert span.context is not None
        assert format(span.context.trace_id, "032x") == TRACE_ID


async def _sse_data(lines: AsyncIterator[str]) -> str:
    """The data of the next SSE event."""
    async for line in lines:
        if line.startswith("data:"):
            return line.removeprefix("data:").strip()
    raise AssertionError("the SSE stream ended")
