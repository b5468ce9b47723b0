"""The MCP server's side of tracing: :class:`ToolSpans`, appended to
``MCPServer.middleware`` (inside the MCP SDK's own OpenTelemetry middleware, whose
``tools/call`` span is the parent): the GenAI request span around each Gemini tool
call, named ``{gen_ai.operation.name} {gen_ai.request.model}``, with the token usage,
finish reason and response model from the tool's structured result.
``gen_ai.request.model`` is the model the call asked for (its ``model`` argument, an
alias resolved to its chain model; the chain's first model without one) and
``gen_ai.response.model`` the model that served it (``served_by``).

The caller's ``traceparent`` header reaches the SDK's span through
``TraceContextASGI`` (server/http.py): the SDK runs each message of both HTTP
transports in the contextvars of the HTTP request that carried it. A ``traceparent``
in the request's ``_meta`` wins: the SDK reads it.

Only imported when tracing is configured (see ``tracing_switch``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from gemini_failover.observability.tracing import (
    RESPONSE_MODEL,
    AttrValue,
    RequestSpan,
    request_span,
)
from gemini_failover.resilience.choice import resolve
from gemini_failover.resilience.results import RequestFailed

#: Tool -> gen_ai.operation.name. gemini_list_models and gemini_health call no model:
#: the SDK's tools/call span is all they get.
TOOL_OPERATIONS: Final[Mapping[str, str]] = {
    "gemini_generate": "generate_content",
    "gemini_generate_json": "generate_content",
    "gemini_chat": "chat",
    "gemini_count_tokens": "count_tokens",
    "gemini_embed": "embeddings",
}

#: Numeric request options -> their GenAI attribute (numbers only: never content).
REQUEST_OPTIONS: Final[Mapping[str, str]] = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "max_output_tokens": "gen_ai.request.max_tokens",
}


class ToolSpans:
    """MCP middleware: the GenAI request span around each Gemini tool call."""

    def __init__(
        self,
        models: Sequence[str],
        embedding_models: Sequence[str],
        *,
        record_content: bool = False,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        self.models = tuple(models)
        self.embedding_models = tuple(embedding_models)
        self.record_content = record_content
        self.aliases = dict(aliases or {})

    def requested(self, operation: str, args: Mapping[str, Any]) -> str:
        """The model a call asks for: its ``model`` argument (a chain model or an
        alias) as the chain model it names; else the chain's first."""
        chain = self.embedding_models if operation == "embeddings" else self.models
        if not chain:
            return "unknown"
        wanted = args.get("model")
        if operation != "embeddings" and isinstance(wanted, str):
            try:
                return chain[resolve(chain, self.aliases, wanted).start]
            except RequestFailed:  # the tool refuses it; the span names the chain's start
                pass
        return chain[0]

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        params = ctx.params if ctx.method == "tools/call" else None
        operation = TOOL_OPERATIONS.get(str(params.get("name"))) if params else None
        if params is None or operation is None:
            return await call_next(ctx)
        arguments = params.get("arguments")
        args: Mapping[str, Any] = arguments if isinstance(arguments, Mapping) else {}
        chain = self.embedding_models if operation == "embeddings" else self.models
        with request_span(
            operation,
            self.requested(operation, args),
            chain=chain,
            record_content=self.record_content,
            attributes=_options(args),
        ) as rs:
            if self.record_content:
                _record_input(rs, args)
            result = await call_next(ctx)
            _record_result(rs, result)
            return result


def _options(args: Mapping[str, Any]) -> dict[str, AttrValue]:
    out: dict[str, AttrValue] = {}
    for name, attribute in REQUEST_OPTIONS.items():
        value = args.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[attribute] = value
    return out


def _text_message(role: str, text: object) -> dict[str, Any]:
    return {"role": role, "parts": [{"type": "text", "content": str(text)}]}


def _record_input(rs: RequestSpan, args: Mapping[str, Any]) -> None:
    messages: list[dict[str, Any]] = []
    if "prompt" in args:
        messages.append(_text_message("user", args["prompt"]))
    turns = args.get("turns")
    if isinstance(turns, list):
        for turn in turns:
            if isinstance(turn, Mapping):
                role = "assistant" if turn.get("role") == "model" else "user"
                messages.append(_text_message(role, turn.get("text", "")))
    for key in ("text", "texts"):
        value = args.get(key)
        for text in value if isinstance(value, list) else [value] if value else []:
            messages.append(_text_message("user", text))
    system = args.get("system_instruction")
    rs.record_input(messages, system if isinstance(system, str) else None)


def _structured(result: Any) -> tuple[Mapping[str, Any], bool]:
    """The tool result's structured content and whether it is an error."""
    if isinstance(result, Mapping):
        content, is_error = result.get("structuredContent"), result.get("isError")
    else:
        content = getattr(result, "structured_content", None)
        is_error = getattr(result, "is_error", False)
    return (content if isinstance(content, Mapping) else {}), is_error is True


def _record_result(rs: RequestSpan, result: Any) -> None:
    out, is_error = _structured(result)
    if is_error:
        if rs.error_type is None:
            rs.set_error("tool_error")
        return
    usage = out.get("usage")
    if isinstance(usage, Mapping):
        rs.set_usage(usage.get("prompt_tokens"), usage.get("output_tokens"))
    finish_reason = out.get("finish_reason")
    rs.set_finish_reason(finish_reason if isinstance(finish_reason, str) else None)
    served = out.get("served_by")
    if isinstance(served, str) and served:
        rs.span.set_attribute(RESPONSE_MODEL, served)
    if rs.record_content:
        if isinstance(out.get("text"), str):
            rs.record_output(out["text"], finish_reason)
        elif "value" in out:
            rs.record_output(json.dumps(out["value"], ensure_ascii=False), finish_reason)


def instrument(
    server: Any,
    models: Sequence[str],
    embedding_models: Sequence[str],
    *,
    record_content: bool = False,
    aliases: Mapping[str, str] | None = None,
) -> None:
    """Add the middleware to an ``MCPServer`` (or its low-level server)."""
    server.middleware.append(
        ToolSpans(models, embedding_models, record_content=record_content, aliases=aliases)
    )


__all__ = ["TOOL_OPERATIONS", "ToolSpans", "instrument"]
