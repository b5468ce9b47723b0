"""OpenTelemetry tracing without a server: the switch, the GenAI names, the EventBus
subscriber's spans and events, incoming trace context, log correlation, and that a
server without OTEL_* configuration imports none of it."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import textwrap

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import error_attributes, http_attributes
from opentelemetry.trace import SpanKind, StatusCode

from gemini_failover.observability import tracing
from gemini_failover.observability.log_config import configure_logging
from gemini_failover.resilience import events as ev
from gemini_failover.resilience.errors import Category
from gemini_failover.tracing_switch import exporter_name, tracing_configured
from tests import otel_support

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return otel_support.install()


# -- the switch -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"OTEL_SERVICE_NAME": "x"}, None),  # naming a service alone asks for nothing
        ({"OTEL_TRACES_EXPORTER": "otlp"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "console"}, "console"),
        ({"OTEL_TRACES_EXPORTER": " Console , otlp"}, "console"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "otlp"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, "otlp"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, None),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, None),
    ],
)
def test_tracing_is_off_unless_otel_variables_ask(
    env: dict[str, str], expected: str | None
) -> None:
    assert exporter_name(env) == expected
    assert tracing_configured(env) is (expected is not None)


def test_attribute_names_are_the_semantic_conventions() -> None:
    assert tracing.OPERATION == gen_ai.GEN_AI_OPERATION_NAME
    assert tracing.PROVIDER_NAME == gen_ai.GEN_AI_PROVIDER_NAME
    assert gen_ai.GenAiProviderNameValues.GCP_GEMINI.value == tracing.PROVIDER
    assert tracing.REQUEST_MODEL == gen_ai.GEN_AI_REQUEST_MODEL
    assert tracing.RESPONSE_MODEL == gen_ai.GEN_AI_RESPONSE_MODEL
    assert tracing.INPUT_TOKENS == gen_ai.GEN_AI_USAGE_INPUT_TOKENS
    assert tracing.OUTPUT_TOKENS == gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS
    assert tracing.FINISH_REASONS == gen_ai.GEN_AI_RESPONSE_FINISH_REASONS
    assert tracing.INPUT_MESSAGES == gen_ai.GEN_AI_INPUT_MESSAGES
    assert tracing.OUTPUT_MESSAGES == gen_ai.GEN_AI_OUTPUT_MESSAGES
    assert tracing.SYSTEM_INSTRUCTIONS == gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS
    assert tracing.ERROR_TYPE == error_attributes.ERROR_TYPE
    assert tracing.HTTP_STATUS == http_attributes.HTTP_RESPONSE_STATUS_CODE
    well_known = {v.value for v in gen_ai.GenAiOperationNameValues}
    # count_tokens has no well-known value (custom values are allowed); the rest do.
    assert set(tracing.OPERATIONS.values()) - well_known == {"count_tokens"}


# -- the EventBus subscriber ------------------------------------------------------------------


def test_attempts_become_child_spans_and_events_span_events(spans: InMemorySpanExporter) -> None:
    bus = ev.EventBus()
    bus.subscribe(tracing.Tracing().handle)
    with tracing.request_span("chat", "pro", chain=("pro", "flash")) as rs:
        bus.publish(ev.AttemptFinished("r1", "pro", "503", Category.TRANSIENT, 0.25, "generate"))
        bus.publish(ev.RetryScheduled("r1", "pro", Category.TRANSIENT, 0.01))
        bus.publish(ev.BreakerTransition("pro", "closed", "open", "3 consecutive failures", 1))
        bus.publish(ev.FailoverEvent("r1", "pro", "flash", "transient"))
        bus.publish(ev.AttemptFinished("r1", "flash", "ok", None, 0.5, "stream"))
        bus.publish(ev.ContinuationEvent("r1", "flash", "pro", 40, "network", 3))
        bus.publish(ev.RequestFinished("r1", "stream", "flash", "ok", 0.8, 1))
        rs.set_usage(12, 34)
    finished = spans.get_finished_spans()
    # the request span and the first attempt share the name "{operation} {model}"
    (request,) = otel_support.roots(finished, "chat pro")
    assert request.kind is SpanKind.INTERNAL
    attrs = dict(request.attributes or {})
    assert attrs[tracing.OPERATION] == "chat"
    assert attrs[tracing.PROVIDER_NAME] == "gcp.gemini"
    assert attrs[tracing.REQUEST_MODEL] == "pro"
    assert attrs[tracing.RESPONSE_MODEL] == "flash"
    assert attrs[tracing.INPUT_TOKENS] == 12 and attrs[tracing.OUTPUT_TOKENS] == 34
    assert attrs["gemini_failover.failovers"] == 1
    assert attrs["gemini_failover.request_id"] == "r1"
    assert tracing.ERROR_TYPE not in attrs
    assert request.status.status_code is StatusCode.UNSET

    names = [e.name for e in request.events]
    assert names == [
        "retry_scheduled",
        "circuit_breaker_transition",
        "failover",
        "stream_continued",
    ]
    failover = dict(request.events[2].attributes or {})
    assert failover == {"from_model": "pro", "to_model": "flash", "reason": "transient"}
    breaker = dict(request.events[1].attributes or {})
    assert breaker["to_state"] == "open" and breaker["remote"] is False

    first, second = otel_support.children(finished, request)
    assert (first.name, second.name) == ("chat pro", "chat flash")
    assert first.kind is second.kind is SpanKind.CLIENT
    assert dict(first.attributes or {})[tracing.ERROR_TYPE] == "transient"
    assert dict(first.attributes or {})[tracing.HTTP_STATUS] == 503
    assert first.status.status_code is StatusCode.ERROR
    assert dict(second.attributes or {})[tracing.RESPONSE_MODEL] == "flash"
    assert dict(second.attributes or {})["gemini_failover.stream"] is True
    # explicit times: each attempt lasts its latency and ends when its event arrives
    assert first.end_time is not None and first.start_time is not None
    assert first.end_time - first.start_time == 250_000_000
    assert second.end_time is not None and second.start_time is not None
    assert second.end_time - second.start_time == 500_000_000


def test_a_failed_request_is_marked_with_its_category(spans: InMemorySpanExporter) -> None:
    handler = tracing.Tracing().handle
    with tracing.request_span("embeddings", "embedder"):
        handler(ev.AttemptFinished("r2", "embedder", "429", Category.RATE_LIMITED, 0.1, "embed"))
        handler(ev.RequestFinished("r2", "embed", None, "rate_limited", 0.2, 0))
    (request,) = otel_support.roots(spans.get_finished_spans(), "embeddings embedder")
    assert dict(request.attributes or {})[tracing.ERROR_TYPE] == "rate_limited"
    assert tracing.RESPONSE_MODEL not in dict(request.attributes or {})
    assert request.status.status_code is StatusCode.ERROR


def test_attempts_outside_a_request_span_nest_under_the_current_span(
    spans: InMemorySpanExporter,
) -> None:
    handler = tracing.Tracing().handle
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("gateway request") as outer:
        handler(ev.AttemptFinished("r3", "pro", "ok", None, 0.01, "count_tokens"))
        handler(ev.FailoverEvent("r3", "pro", "flash", "spill"))
    finished = spans.get_finished_spans()
    (attempt,) = otel_support.named(finished, "count_tokens pro")
    assert attempt.parent is not None
    assert attempt.parent.span_id == outer.get_span_context().span_id
    (gateway,) = otel_support.named(finished, "gateway request")
    assert [e.name for e in gateway.events] == ["failover"]


def test_content_is_recorded_only_when_enabled(spans: InMemorySpanExporter) -> None:
    for record in (False, True):
        with tracing.request_span("chat", "pro", record_content=record) as rs:
            rs.record_input([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}], "sys")
            rs.record_output("secret answer", "STOP")
    off, on = spans.get_finished_spans()
    assert tracing.INPUT_MESSAGES not in dict(off.attributes or {})
    assert tracing.OUTPUT_MESSAGES not in dict(off.attributes or {})
    assert tracing.SYSTEM_INSTRUCTIONS not in dict(off.attributes or {})
    attrs = dict(on.attributes or {})
    assert json.loads(str(attrs[tracing.INPUT_MESSAGES]))[0]["parts"][0]["content"] == "hi"
    output = json.loads(str(attrs[tracing.OUTPUT_MESSAGES]))
    assert output[0]["parts"][0]["content"] == "secret answer"
    assert output[0]["finish_reason"] == "stop"


# -- incoming trace context -------------------------------------------------------------------


def test_incoming_traceparent_becomes_the_parent(spans: InMemorySpanExporter) -> None:
    with (
        tracing.use_incoming_context({"traceparent": TRACEPARENT}),
        tracing.request_span("chat", "pro"),
    ):
        pass
    (span,) = spans.get_finished_spans()
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == "b7ad6b7169203331"
    assert span.context is not None
    assert format(span.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"


@pytest.mark.parametrize("headers", [{}, {"traceparent": "garbage"}, {"traceparent": ""}])
def test_a_missing_or_malformed_traceparent_starts_a_new_trace(
    spans: InMemorySpanExporter, headers: dict[str, str]
) -> None:
    assert tracing.extract_context(headers) is None
    with tracing.use_incoming_context(headers), tracing.request_span("chat", "pro"):
        pass
    (span,) = spans.get_finished_spans()
    assert span.parent is None


# -- log correlation --------------------------------------------------------------------------


def test_log_lines_carry_the_current_trace_and_span_ids(spans: InMemorySpanExporter) -> None:
    out = io.StringIO()
    try:
        configure_logging("info", "json", stream=out, trace_ids=True)
        log = structlog.get_logger("gemini_failover.test")
        with tracing.request_span("chat", "pro") as rs:
            log.info("inside")
            logging.getLogger("gemini_failover.stdlib").warning("stdlib inside")
            context = rs.span.get_span_context()
        log.info("outside")
    finally:
        configure_logging("info", "json", stream=sys.stderr, trace_ids=False)
    inside, stdlib_inside, outside = (json.loads(line) for line in out.getvalue().splitlines())
    for line in (inside, stdlib_inside):
        assert line["trace_id"] == format(context.trace_id, "032x")
        assert line["span_id"] == format(context.span_id, "016x")
    assert "trace_id" not in outside and "span_id" not in outside


# -- off: nothing imported ----------------------------------------------------------------------

_PROBE = textwrap.dedent(
    """
    import asyncio, json, os, sys
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        del os.environ[name]
    from mcp import Client
    from gemini_failover.config import load_settings
    from gemini_failover.observability.log_config import configure_logging
    from gemini_failover.server.http import Security, build_http_app
    from gemini_failover.server.runtime import Runtime

    async def main() -> None:
        configure_logging("info", "json")
        settings = load_settings(models=["pro", "flash"], embedding_models=["e"])
        async with Runtime(settings, emulator=True) as runtime:
            server = runtime.build_server()
            build_http_app(runtime, server, "http", Security.for_bind("127.0.0.1", None))
            async with Client(server) as client:
                result = await client.call_tool("gemini_generate", {"prompt": "hi"})
                assert not result.is_error
            middleware = [type(m).__name__ for m in server.middleware]
        loaded = sorted(
            n for n in sys.modules
            if n.startswith(("opentelemetry.sdk", "opentelemetry.exporter"))
            or "tracing" in n
        )
        print(json.dumps({"loaded": loaded, "middleware": middleware}))

    asyncio.run(main())
    """
)


def test_without_otel_variables_nothing_of_tracing_is_imported_or_registered() -> None:
    """The MCP SDK itself imports the OpenTelemetry API (its spans are no-ops without a
    provider); the SDK, the exporter and this project's tracing modules stay out."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["loaded"] == ["gemini_failover.tracing_switch"]
    assert "ToolSpans" not in report["middleware"]


# -- the MCP middleware --------------------------------------------------------------------------


class _Ctx:
    """The part of the MCP SDK's ServerRequestContext the middlewares read."""

    def __init__(self, method: str, params: dict[str, object]) -> None:
        self.method, self.params = method, params


async def test_only_calls_of_model_tools_get_a_request_span(spans: InMemorySpanExporter) -> None:
    from gemini_failover.observability.tracing_mcp import ToolSpans

    async def call_next(ctx: object) -> dict[str, object]:
        return {"structuredContent": {"usage": {"prompt_tokens": 3, "output_tokens": 4}}}

    middleware = ToolSpans(["pro", "flash"], ["embedder"])
    await middleware(_Ctx("tools/call", {"name": "gemini_health", "arguments": {}}), call_next)
    await middleware(_Ctx("tools/list", {}), call_next)
    arguments = {"texts": ["a"], "temperature": 0.5, "max_output_tokens": True}
    await middleware(
        _Ctx("tools/call", {"name": "gemini_embed", "arguments": arguments}), call_next
    )
    (span,) = spans.get_finished_spans()
    assert span.name == "embeddings embedder"
    got = dict(span.attributes or {})
    assert got["gen_ai.request.temperature"] == 0.5
    assert "gen_ai.request.max_tokens" not in got  # a bool is not a number of tokens
    assert got[tracing.INPUT_TOKENS] == 3 and got[tracing.OUTPUT_TOKENS] == 4
    assert tracing.INPUT_MESSAGES not in got


async def test_a_tool_span_names_the_model_asked_for_and_the_model_that_served(
    spans: InMemorySpanExporter,
) -> None:
    """gen_ai.request.model: the call's ``model`` argument (an alias resolved to its
    chain model), the chain's first without one; gen_ai.response.model: served_by."""
    from gemini_failover.observability.tracing_mcp import ToolSpans

    served = iter(["lite", "flash", "pro"])

    async def call_next(ctx: object) -> dict[str, object]:
        return {"structuredContent": {"text": "ok", "served_by": next(served)}}

    middleware = ToolSpans(["pro", "flash", "lite"], [], aliases={"quick": "flash"})
    for model in ("flash", "quick", None):
        arguments: dict[str, object] = {"prompt": "p"}
        if model is not None:
            arguments["model"] = model
        await middleware(
            _Ctx("tools/call", {"name": "gemini_generate", "arguments": arguments}), call_next
        )
    got = [
        (
            s.name,
            (s.attributes or {})[tracing.REQUEST_MODEL],
            (s.attributes or {})[tracing.RESPONSE_MODEL],
        )
        for s in spans.get_finished_spans()
    ]
    assert got == [
        ("generate_content flash", "flash", "lite"),
        ("generate_content flash", "flash", "flash"),
        ("generate_content pro", "pro", "pro"),
    ]
