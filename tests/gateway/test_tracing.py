"""OpenTelemetry traces of gateway requests: the real google-genai SDK calls the gateway
with a ``traceparent`` header, the gateway calls the emulator through the failover
manager, and the SDK's in-memory exporter collects the spans: the SERVER span is the
caller's child, the GenAI request span its child, the manager's attempts the request
span's children; no key, and no content unless trace_content is on."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from google import genai
from google.genai import errors, types
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gemini_failover.emulator import EmulatorServer
from gemini_failover.emulator.text import expected_text
from tests import otel_support
from tests.gateway.conftest import (
    FALLBACK,
    KEY,
    PRIMARY,
    UPSTREAM_KEY,
    Gateway,
    gateway_settings,
    run_gateway,
)

PROMPT = "Trace this gateway request."
SYSTEM = "Answer briefly."
TRACE_ID = uuid.uuid4().hex
PARENT_ID = uuid.uuid4().hex[:16]
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """Tracing configured the standard way; the gateway finds the test's provider."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    return otel_support.install()


@pytest.fixture
async def traced(spans: InMemorySpanExporter, emulator: EmulatorServer) -> AsyncIterator[Gateway]:
    async with run_gateway(gateway_settings(emulator.base_url)) as gw:
        yield gw


def _client(gateway: Gateway, key: str = KEY) -> genai.Client:
    options = types.HttpOptions(
        base_url=gateway.base_url,
        retry_options=types.HttpRetryOptions(attempts=1),
        headers={"traceparent": TRACEPARENT},
    )
    return genai.Client(api_key=key, http_options=options)


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _server_span(spans: InMemorySpanExporter, route: str) -> ReadableSpan:
    (span,) = otel_support.named(spans.get_finished_spans(), f"POST {route}")
    return span


def _no_secrets(spans: InMemorySpanExporter, *absent: str) -> None:
    """No attribute or event of any span carries one of ``absent``."""
    for span in spans.get_finished_spans():
        values = [str(v) for v in (span.attributes or {}).values()]
        values += [str(v) for e in span.events for v in (e.attributes or {}).values()]
        for value in values:
            for secret in absent:
                assert secret not in value, (span.name, value)


async def test_a_failed_over_request_is_one_trace_under_the_callers_traceparent(
    traced: Gateway, emulator: EmulatorServer, spans: InMemorySpanExporter
) -> None:
    emulator.emulator.configure(PRIMARY, faults=[{"kind": "status", "code": 503}])
    config = types.GenerateContentConfig(
        system_instruction=SYSTEM, temperature=0.25, max_output_tokens=500
    )
    response = await _client(traced).aio.models.generate_content(
        model="auto", contents=PROMPT, config=config
    )
    assert response.text == expected_text(PROMPT)
    finished = spans.get_finished_spans()

    server = _server_span(spans, "/{version}/models/{model}:generateContent")
    assert server.kind is SpanKind.SERVER
    assert server.parent is not None and server.parent.is_remote
    assert format(server.parent.span_id, "016x") == PARENT_ID
    got = attrs(server)
    assert got["http.request.method"] == "POST"
    assert got["http.route"] == "/{version}/models/{model}:generateContent"
    assert got["url.path"].endswith("/models/auto:generateContent")
    assert got["http.response.status_code"] == 200
    assert server.status.status_code is StatusCode.UNSET

    (request,) = otel_support.children(finished, server)
    assert request.name == f"generate_content {PRIMARY}"
    assert request.kind is SpanKind.INTERNAL
    got = attrs(request)
    assert got["gen_ai.operation.name"] == "generate_content"
    assert got["gen_ai.provider.name"] == "gcp.gemini"
    assert got["gen_ai.request.model"] == PRIMARY
    assert got["gen_ai.response.model"] == FALLBACK
    assert got["gen_ai.request.temperature"] == 0.25
    assert got["gen_ai.request.max_tokens"] == 500
    usage = response.usage_metadata
    assert usage is not None
    assert got["gen_ai.usage.input_tokens"] == usage.prompt_token_count
    assert got["gen_ai.usage.output_tokens"] == usage.candidates_token_count
    assert got["gen_ai.response.finish_reasons"] == ("STOP",)
    assert got["gemini_failover.failovers"] == 1
    assert got["gemini_failover.chain"] == (PRIMARY, FALLBACK)
    assert response.sdk_http_response is not None
    headers = response.sdk_http_response.headers or {}
    assert got["gemini_failover.request_id"] == headers["x-gemini-failover-request-id"]
    assert "gen_ai.input.messages" not in got and "gen_ai.output.messages" not in got
    assert [e.name for e in request.events].count("failover") == 1

    attempts = otel_support.children(finished, request)
    assert [(a.name, attrs(a).get("error.type")) for a in attempts] == [
        (f"generate_content {PRIMARY}", "transient"),
        (f"generate_content {PRIMARY}", "transient"),
        (f"generate_content {FALLBACK}", None),
    ]
    assert all(a.kind is SpanKind.CLIENT for a in attempts)
    for span in (server, request, *attempts):
        assert span.context is not None
        assert format(span.context.trace_id, "032x") == TRACE_ID
    _no_secrets(spans, KEY, UPSTREAM_KEY, PROMPT, SYSTEM, expected_text(PROMPT)[:40])


async def test_a_stream_records_content_only_with_trace_content(
    spans: InMemorySpanExporter, emulator: EmulatorServer
) -> None:
    settings = gateway_settings(emulator.base_url, trace_content=True)
    async with run_gateway(settings) as gateway:
        stream = await _client(gateway).aio.models.generate_content_stream(
            model=FALLBACK,
            contents=PROMPT,
            config=types.GenerateContentConfig(system_instruction=SYSTEM),
        )
        text = "".join([chunk.text or "" async for chunk in stream])
    assert text == expected_text(PROMPT)
    finished = spans.get_finished_spans()
    server = _server_span(spans, "/{version}/models/{model}:streamGenerateContent")
    (request,) = otel_support.children(finished, server)
    got = attrs(request)
    assert request.name == f"generate_content {FALLBACK}"  # the URL's model starts the chain
    assert got["gen_ai.request.model"] == got["gen_ai.response.model"] == FALLBACK
    assert PROMPT in got["gen_ai.input.messages"]
    assert SYSTEM in got["gen_ai.system_instructions"]
    assert text in got["gen_ai.output.messages"]
    assert got["gen_ai.usage.output_tokens"] > 0
    _no_secrets(spans, KEY, UPSTREAM_KEY)


async def test_a_refused_key_and_an_upstream_failure_are_traced_without_the_key(
    traced: Gateway, emulator: EmulatorServer, spans: InMemorySpanExporter
) -> None:
    wrong = f"wrong-key-{uuid.uuid4().hex}"
    with pytest.raises(errors.ClientError) as refused:
        await _client(traced, wrong).aio.models.count_tokens(model="auto", contents=PROMPT)
    assert refused.value.code == 403
    (denied,) = otel_support.named(
        spans.get_finished_spans(), "POST /{version}/models/{model}:countTokens"
    )
    assert attrs(denied)["http.response.status_code"] == 403
    assert denied.status.status_code is StatusCode.UNSET  # a client error: not the server's
    assert otel_support.children(spans.get_finished_spans(), denied) == []

    spans.clear()
    for model in (PRIMARY, FALLBACK):
        emulator.emulator.configure(model, faults=[{"kind": "status", "code": 503}] * 9)
    with pytest.raises(errors.ServerError) as failed:
        await _client(traced).aio.models.generate_content(model="auto", contents=PROMPT)
    assert failed.value.code == 503
    server = _server_span(spans, "/{version}/models/{model}:generateContent")
    assert attrs(server)["http.response.status_code"] == 503
    assert server.status.status_code is StatusCode.ERROR
    (request,) = otel_support.children(spans.get_finished_spans(), server)
    assert attrs(request)["error.type"] == "unavailable"
    assert request.status.status_code is StatusCode.ERROR
    _no_secrets(spans, KEY, wrong, UPSTREAM_KEY, PROMPT)
