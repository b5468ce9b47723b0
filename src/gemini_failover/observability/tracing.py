"""OpenTelemetry traces, following the GenAI semantic conventions.

Imported only when tracing is configured (see
:mod:`~gemini_failover.tracing_switch`); nothing here runs otherwise.
The span tree of a tool call that failed over::

    tools/call gemini_generate          SERVER   the MCP SDK's span (execute_tool)
    └─ generate_content pro             INTERNAL the request: gen_ai.*, events
       ├─ generate_content pro          CLIENT   attempt 1: error.type=transient
       ├─ generate_content pro          CLIENT   attempt 2: error.type=transient
       └─ generate_content flash        CLIENT   attempt 3: ok
       events: retry_scheduled, failover, circuit_breaker_transition, ...

The request span is opened around the tool call (:mod:`.tracing_mcp`) or by a gateway
(:func:`request_span`). Attempts and events come from the failover manager's EventBus:
the manager publishes them synchronously in the request's own task, so the request
span is current when :meth:`Tracing.handle` runs. An attempt span is created when its
``AttemptFinished`` arrives, with explicit times (end: now; start: now - latency).

Prompts, answers and tool arguments are never recorded, unless the ``trace_content``
setting is on; no header, key or token ever is.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, StatusCode

from gemini_failover import __version__, pairs
from gemini_failover.resilience import events as ev
from gemini_failover.resilience.event_spec import reader

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger("gemini_failover.tracing")

TRACER_NAME: Final = "gemini_failover"
DEFAULT_SERVICE_NAME: Final = "gemini-failover"
#: ``gen_ai.provider.name`` (the Gemini API; Vertex AI would be ``gcp.vertex_ai``).
PROVIDER: Final = "gcp.gemini"
VERTEX_PROVIDER: Final = "gcp.vertex_ai"

# GenAI semantic convention attribute names (checked against the
# opentelemetry-semantic-conventions package in the tests; its GenAI names live in an
# ``_incubating`` module, which is not imported at run time).
OPERATION: Final = "gen_ai.operation.name"
PROVIDER_NAME: Final = "gen_ai.provider.name"
REQUEST_MODEL: Final = "gen_ai.request.model"
RESPONSE_MODEL: Final = "gen_ai.response.model"
INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
INPUT_MESSAGES: Final = "gen_ai.input.messages"
OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
ERROR_TYPE: Final = "error.type"
HTTP_STATUS: Final = "http.response.status_code"

#: The manager's operation (AttemptFinished.operation) -> gen_ai.operation.name.
#: ``count_tokens`` has no well-known value; the conventions allow custom ones.
OPERATIONS: Final[Mapping[str, str]] = {
    "generate": "generate_content",
    "stream": "generate_content",
    "count_tokens": "count_tokens",
    "embed": "embeddings",
}

#: Events recorded as span events on the request span, under their log event name,
#: with their log fields (the ``spec`` each declares) minus the request id.
SPAN_EVENTS: Final = (
    ev.RetryScheduled,
    ev.RetryBudgetExhausted,
    ev.BreakerTransition,
    ev.FailoverEvent,
    ev.ModelSkipped,
    ev.RateLimitWait,
    ev.RequestShed,
    ev.SemanticFailure,
    ev.ContinuationEvent,
)

AttrValue = str | bool | int | float | list[str]


@dataclass(slots=True)
class RequestSpan:
    """The span of one request (a tool call or a gateway request) and what its
    attempts need to know."""

    span: trace.Span
    operation: str  # gen_ai.operation.name
    record_content: bool = False
    error_type: str | None = None

    def set_usage(self, input_tokens: int | None, output_tokens: int | None) -> None:
        if isinstance(input_tokens, int):
            self.span.set_attribute(INPUT_TOKENS, input_tokens)
        if isinstance(output_tokens, int):
            self.span.set_attribute(OUTPUT_TOKENS, output_tokens)

    def set_finish_reason(self, reason: str | None) -> None:
        if isinstance(reason, str) and reason:
            self.span.set_attribute(FINISH_REASONS, [reason])

    def set_error(self, error_type: str, description: str | None = None) -> None:
        """Mark the request failed (``error.type``: a category such as ``transient``,
        or ``tool_error``). *description* must hold nothing sensitive."""
        self.error_type = error_type
        self.span.set_attribute(ERROR_TYPE, error_type)
        self.span.set_status(StatusCode.ERROR, description)

    def record_input(self, messages: list[dict[str, Any]], system: str | None = None) -> None:
        """The prompt, as GenAI input messages; only when content recording is on."""
        if not self.record_content:
            return
        self.span.set_attribute(INPUT_MESSAGES, json.dumps(messages, ensure_ascii=False))
        if system:
            parts = [{"type": "text", "content": system}]
            self.span.set_attribute(SYSTEM_INSTRUCTIONS, json.dumps(parts, ensure_ascii=False))

    def record_output(self, text: str, finish_reason: str | None = None) -> None:
        """The answer, as a GenAI output message; only when content recording is on."""
        if not self.record_content:
            return
        message = {
            "role": "assistant",
            "parts": [{"type": "text", "content": text}],
            "finish_reason": (finish_reason or "stop").lower(),
        }
        self.span.set_attribute(OUTPUT_MESSAGES, json.dumps([message], ensure_ascii=False))


_current: ContextVar[RequestSpan | None] = ContextVar("gemini_failover_request_span", default=None)


def current_request() -> RequestSpan | None:
    """The request span of the running request, if any."""
    return _current.get()


def _tracer(provider: trace.TracerProvider | None = None) -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME, __version__, tracer_provider=provider)


@contextlib.contextmanager
def request_span(
    operation: str,
    request_model: str,
    *,
    chain: tuple[str, ...] = (),
    record_content: bool = False,
    attributes: Mapping[str, AttrValue] | None = None,
    provider: trace.TracerProvider | None = None,
) -> Iterator[RequestSpan]:
    """Open the request span (current for the block): ``{operation} {request_model}``.

    *operation* is a ``gen_ai.operation.name`` (``chat``, ``generate_content``,
    ``embeddings``, ``count_tokens``); *request_model* the model asked for (the first
    of *chain*). The gateway uses it around each request::

        with use_incoming_context(request.headers):
            with request_span("chat", chain[0], chain=chain) as rs:
                result = await manager.generate(...)
                rs.set_usage(result.usage.prompt_tokens, result.usage.output_tokens)

    Attempts, failovers, retries, breaker transitions and continuations published by
    the manager inside the block land on this span (when :meth:`Tracing.handle` is
    subscribed to the manager's events).
    """
    attrs: dict[str, AttrValue] = {
        OPERATION: operation,
        PROVIDER_NAME: PROVIDER,
        REQUEST_MODEL: request_model,
    }
    if chain:
        attrs["gemini_failover.chain"] = list(chain)
    if attributes:
        attrs.update(attributes)
    tracer = _tracer(provider)
    with tracer.start_as_current_span(
        f"{operation} {request_model}",
        kind=SpanKind.INTERNAL,
        attributes=attrs,
        record_exception=False,  # an exception's text may quote the prompt
        set_status_on_exception=False,
    ) as span:
        rs = RequestSpan(span, operation, record_content)
        token = _current.set(rs)
        try:
            yield rs
        except BaseException as exc:
            if rs.error_type is None:
                rs.set_error(type(exc).__qualname__)
            raise
        finally:
            _current.reset(token)


# -- incoming trace context (HTTP transports, the gateway) --------------------------------


def extract_context(headers: Mapping[str, str]) -> otel_context.Context | None:
    """The trace context of an incoming request (W3C ``traceparent``/``tracestate``,
    or whatever ``OTEL_PROPAGATORS`` configures), or None when it carries none."""
    try:
        ctx = propagate.extract(headers)
    except (ValueError, TypeError):
        return None
    if not trace.get_current_span(ctx).get_span_context().is_valid:
        return None
    return ctx


@contextlib.contextmanager
def use_incoming_context(headers: Mapping[str, str]) -> Iterator[None]:
    """Make an incoming request's trace context current for the block (nothing
    happens when it carries none): spans opened inside become its children. For the
    gateway, around each request; the MCP transports do it themselves."""
    ctx = extract_context(headers)
    if ctx is None:
        yield
        return
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


class TraceContextASGI:
    """ASGI middleware: every HTTP request runs in the trace context its headers carry.

    The MCP SDK runs each message of streamable HTTP and SSE in the contextvars of the
    HTTP request that carried it, so the tool's spans are children of the caller's
    ``traceparent``. (An ASGI app of the gateway can be wrapped the same way.)"""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())
        }
        with use_incoming_context(headers):
            await self.app(scope, receive, send)


# -- the EventBus subscriber ----------------------------------------------------------------


def _otel_value(value: object) -> AttrValue | None:
    if isinstance(value, str | bool | int | float):
        return value
    return None if value is None else str(value)


def _event_recorder(kind: type[ev.Event]) -> tuple[str, Callable[[Any], dict[str, AttrValue]]]:
    """The span event name and attribute reader of an event type, from its log spec."""
    spec = kind.spec.log
    assert spec is not None, kind
    readers = [(k, reader(s)) for k, s in spec.fields.items() if k != "request_id"]

    def attributes(e: Any) -> dict[str, AttrValue]:
        out: dict[str, AttrValue] = {}
        for key, get in readers:
            value = _otel_value(get(e))
            if value is not None:
                out[key] = value
        return out

    return spec.event, attributes


class Tracing:
    """The EventBus subscriber that turns the manager's events into spans."""

    def __init__(
        self, provider: trace.TracerProvider | None = None, *, owned: bool = False
    ) -> None:
        self._provider = provider
        self.owned = owned  # installed by start_tracing: shut down with the server
        self._tracer = _tracer(provider)
        self._span_events: dict[type[ev.Event], tuple[str, Callable[[Any], dict[str, AttrValue]]]]
        self._span_events = {kind: _event_recorder(kind) for kind in SPAN_EVENTS}
        self._vertex: frozenset[str] = frozenset()  # endpoints that are Vertex AI
        self._default_endpoint = pairs.IMPLICIT_ENDPOINT

    def set_endpoints(self, kinds: Mapping[str, str], default: str) -> None:
        """The kind of each endpoint (``gemini_api``, ``vertex``) and the one bare chain
        keys mean: attempt spans name the provider and the endpoint they went to."""
        self._vertex = frozenset(name for name, kind in kinds.items() if kind == "vertex")
        self._default_endpoint = default

    @property
    def provider(self) -> trace.TracerProvider | None:
        return self._provider

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.AttemptFinished):
            self._attempt(event)
        elif isinstance(event, ev.RequestFinished):
            self._finished(event)
        else:
            recorder = self._span_events.get(type(event))
            if recorder is not None:
                span = self._target()
                if span is not None:
                    name, attributes = recorder
                    span.add_event(name, attributes(event))

    def _target(self) -> trace.Span | None:
        rs = _current.get()
        if rs is not None:
            return rs.span
        span = trace.get_current_span()
        return span if span.is_recording() else None

    def _attempt(self, e: ev.AttemptFinished) -> None:
        rs = _current.get()
        operation = rs.operation if rs is not None else OPERATIONS.get(e.operation, e.operation)
        end = time.time_ns()
        start = end - int(max(e.latency, 0.0) * 1e9)
        endpoint = pairs.endpoint_of(e.model, self._default_endpoint)
        attrs: dict[str, AttrValue] = {
            OPERATION: operation,
            PROVIDER_NAME: VERTEX_PROVIDER if endpoint in self._vertex else PROVIDER,
            REQUEST_MODEL: pairs.model_of(e.model),
            "gemini_failover.endpoint": endpoint,
            "gemini_failover.attempt.status": e.status,
            "gemini_failover.stream": e.operation == "stream",
        }
        if e.status.isdigit():
            attrs[HTTP_STATUS] = int(e.status)
        failed = e.category is not None
        if failed:
            attrs[ERROR_TYPE] = str(e.category)
        else:
            attrs[RESPONSE_MODEL] = pairs.model_of(e.model)
        span = self._tracer.start_span(
            f"{operation} {e.model}", kind=SpanKind.CLIENT, attributes=attrs, start_time=start
        )
        if failed:
            span.set_status(StatusCode.ERROR)
        span.end(end_time=end)

    def _finished(self, e: ev.RequestFinished) -> None:
        rs = _current.get()
        if rs is None:
            return
        span = rs.span
        span.set_attribute("gemini_failover.request_id", e.request_id)
        span.set_attribute("gemini_failover.failovers", e.failovers)
        if e.served_by is not None:
            span.set_attribute(RESPONSE_MODEL, e.served_by)
        if e.outcome != "ok":
            rs.set_error(e.outcome)


# -- set-up -----------------------------------------------------------------------------------


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        # stderr: stdout carries the MCP stdio transport. One JSON line per span.
        return ConsoleSpanExporter(
            out=sys.stderr, formatter=lambda span: span.to_json(indent=None) + "\n"
        )
    if name != "otlp":
        log.warning(
            "OTEL_TRACES_EXPORTER=%s is not supported here: exporting with otlp "
            "(OTLP over HTTP/protobuf) instead; use otlp, console or none",
            name,
        )
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    )
    if protocol and protocol != "http/protobuf":
        log.warning("OTEL_EXPORTER_OTLP_PROTOCOL=%s: only http/protobuf is supported", protocol)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout: from the OTEL_* variables


def _register_exporter_secrets() -> None:
    """Collector credentials in ``OTEL_EXPORTER_OTLP_*HEADERS`` never reach a log."""
    from gemini_failover.observability.redaction import register_secret

    for name in ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"):
        for pair in os.environ.get(name, "").split(","):
            _, _, value = pair.partition("=")
            if value.strip():
                register_secret(value.strip())


def start_tracing(exporter: str) -> Tracing:
    """Install a tracer provider exporting with *exporter* (unless the process already
    has an SDK tracer provider, e.g. from ``opentelemetry-instrument``: then that one
    is used) and return the subscriber. Imports the SDK: call it off the event loop."""
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    existing = trace.get_tracer_provider()
    if isinstance(existing, TracerProvider):
        return Tracing(existing)
    _register_exporter_secrets()
    # Reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME; our name when neither names it.
    resource = Resource.create({SERVICE_VERSION: __version__})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)  # the sampler: OTEL_TRACES_SAMPLER
    provider.add_span_processor(BatchSpanProcessor(_exporter(exporter)))
    trace.set_tracer_provider(provider)
    log.info("OpenTelemetry tracing on (exporter: %s)", exporter)
    return Tracing(provider, owned=True)


def shutdown(tracing: Tracing) -> None:
    """Flush and stop the provider, if :func:`start_tracing` installed it (blocking:
    call it in a thread)."""
    if tracing.owned:
        shut = getattr(tracing.provider, "shutdown", None)
        if callable(shut):
            shut()


__all__ = [
    "OPERATIONS",
    "RequestSpan",
    "TraceContextASGI",
    "Tracing",
    "current_request",
    "extract_context",
    "request_span",
    "shutdown",
    "start_tracing",
    "use_incoming_context",
]
