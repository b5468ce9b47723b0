"""The gateway's OpenTelemetry spans (only imported when the ``OTEL_*`` variables ask
for traces: see :mod:`gemini_failover.tracing_switch`).

The span tree of a request that failed over::

    POST /{version}/models/{model}:generateContent   SERVER   http.*; parent: traceparent
    └─ generate_content pro                          INTERNAL the request: gen_ai.*
       ├─ generate_content pro                       CLIENT   attempt 1: error.type
       └─ generate_content flash                     CLIENT   attempt 2: ok

The SERVER span (:class:`GatewaySpans`, ASGI middleware) covers every HTTP request,
refused ones included, in the trace context of its ``traceparent`` header. It records
the method, the route template, the path and the status; never a header, the query
string (``?key=`` carries gateway keys) or a body. The GenAI request span
(:class:`RequestTracer`) is the MCP path's (:func:`~gemini_failover.observability.
tracing.request_span`): ``gen_ai.request.model`` is the model the request starts at,
``gen_ai.response.model`` the one that served, with usage and finish reason; the
manager's attempts and events land on it. Prompts and answers only with
``trace_content``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gemini_failover.observability.tracing import (
    HTTP_STATUS,
    TRACER_NAME,
    AttrValue,
    current_request,
    request_span,
    use_incoming_context,
)
from gemini_failover.protocol import GenerationRequest, Usage

__all__ = ["OPERATIONS", "GatewaySpans", "RequestTracer", "http_route"]

#: The gateway's action -> gen_ai.operation.name.
OPERATIONS: Final[Mapping[str, str]] = {
    "generate": "generate_content",
    "stream": "generate_content",
    "count_tokens": "count_tokens",
    "embed": "embeddings",
}
_METHODS: Final = frozenset(
    {
        "generateContent",
        "streamGenerateContent",
        "countTokens",
        "embedContent",
        "batchEmbedContents",
    }
)


def http_route(path: str) -> str | None:
    """The route template of a gateway path (low cardinality: no model name), or None
    for a path the gateway does not serve."""
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "" or parts[2] != "models":
        return None
    if len(parts) == 3:
        return "/{version}/models"
    if len(parts) != 4:
        return None
    _, _, verb = parts[3].rpartition(":")
    if ":" in parts[3]:
        return f"/{{version}}/models/{{model}}:{verb}" if verb in _METHODS else None
    return "/{version}/models/{model}"


class GatewaySpans:
    """ASGI middleware: one SERVER span per HTTP request, in its incoming trace
    context. The probes (/healthz, /readyz, /metrics) are not traced."""

    def __init__(self, app: ASGIApp, *, skip: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.skip = skip
        self._tracer = trace.get_tracer(TRACER_NAME)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.skip:
            await self.app(scope, receive, send)
            return
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1")
            for k, v in scope.get("headers", ())
            if k in (b"traceparent", b"tracestate")  # nothing else is read: no keys
        }
        method = str(scope["method"])
        route = http_route(scope["path"])
        attrs: dict[str, AttrValue] = {
            "http.request.method": method,
            "url.path": scope["path"],
            "url.scheme": str(scope.get("scheme", "http")),
        }
        if route is not None:
            attrs["http.route"] = route
        with (
            use_incoming_context(headers),
            self._tracer.start_as_current_span(
                f"{method} {route}" if route else method,
                kind=SpanKind.SERVER,
                attributes=attrs,
                record_exception=False,  # an exception's text may quote the request
                set_status_on_exception=False,
            ) as span,
        ):

            async def sending(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    span.set_attribute(HTTP_STATUS, status)
                    if status >= 500:  # a server span's error: 5xx only
                        span.set_attribute("error.type", str(status))
                        span.set_status(StatusCode.ERROR)
                await send(message)

            try:
                await self.app(scope, receive, sending)
            except BaseException as exc:
                span.set_attribute("error.type", type(exc).__qualname__)
                span.set_status(StatusCode.ERROR)
                raise


class RequestTracer:
    """The GenAI request span around one gateway call, and what the call reports."""

    def __init__(self, *, record_content: bool = False) -> None:
        self.record_content = record_content

    async def traced(
        self,
        work: Awaitable[None],
        action: str,
        model: str,
        chain: tuple[str, ...],
        request: GenerationRequest | None = None,
        texts: tuple[str, ...] = (),
    ) -> None:
        """Run ``work`` inside the request span (``model``: where the chain starts)."""
        operation = OPERATIONS.get(action, action)
        with request_span(
            operation,
            model,
            chain=chain,
            record_content=self.record_content,
            attributes=_options(request) if request is not None else None,
        ) as rs:
            if self.record_content:
                if request is not None:
                    messages = [
                        _message("assistant" if t.role == "model" else "user", t.text)
                        for t in request.contents
                    ]
                    rs.record_input(messages, request.system_instruction)
                elif texts:
                    rs.record_input([_message("user", t) for t in texts])
            await work

    @staticmethod
    def answered(
        usage: Usage | None,
        finish_reason: str | None,
        served_by: str | None,
        text: str | None = None,
    ) -> None:
        """What the upstream answered (the current request span, if any)."""
        rs = current_request()
        if rs is None:
            return
        if usage is not None:
            rs.set_usage(usage.prompt_tokens, usage.output_tokens)
        rs.set_finish_reason(finish_reason)
        if served_by:
            rs.span.set_attribute("gen_ai.response.model", served_by)
        if text is not None:
            rs.record_output(text, finish_reason)

    @staticmethod
    def failed(error_type: str) -> None:
        rs = current_request()
        if rs is not None and rs.error_type is None:
            rs.set_error(error_type)


def _options(request: GenerationRequest) -> dict[str, AttrValue]:
    out: dict[str, AttrValue] = {}
    if request.temperature is not None:
        out["gen_ai.request.temperature"] = request.temperature
    if request.top_p is not None:
        out["gen_ai.request.top_p"] = request.top_p
    if request.max_output_tokens is not None:
        out["gen_ai.request.max_tokens"] = request.max_output_tokens
    return out


def _message(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "parts": [{"type": "text", "content": text}]}
