"""What each tool does once its arguments are valid: one call into the failover
manager, RequestFailed -> ToolError, and the structured result with provenance.

Kept apart from the tool definitions (handlers.py) so that listing the tools does not
import the request path: this module is loaded by the first tool call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio
from mcp.server.mcpserver import Context

from gemini_failover.protocol import Attachment, GenerationRequest, Grounding, Turn, Usage
from gemini_failover.resilience.results import Provenance, RequestFailed, Result
from gemini_failover.tools import threads
from gemini_failover.tools.errors import tool_error
from gemini_failover.tools.models import (
    Attempt,
    Citation,
    CountTokensOutput,
    EmbedOutput,
    Failover,
    FilesOutput,
    GenerateOutput,
    JsonOutput,
    ModelsOutput,
    Skipped,
    Span,
    TokenUsage,
)
from gemini_failover.tools.options import DEFAULT, Options

if TYPE_CHECKING:
    from gemini_failover.resilience.manager import FailoverManager

#: Seconds a cancelled stream gets to close its upstream HTTP connection.
CLOSE_TIMEOUT = 5.0

Ctx = Context[Any, Any]


# -- provenance -> output models ----------------------------------------------------------


def provenance_fields(prov: Provenance) -> dict[str, Any]:
    return {
        "served_by": prov.served_by or "",
        "attempts": [Attempt(model=a.model, outcome=a.outcome) for a in prov.attempts],
        "failovers": [
            Failover(from_=f.from_model, to=f.to_model, reason=f.reason) for f in prov.failovers
        ],
        "skipped": [Skipped(model=m, reason=r) for m, r in prov.skipped],
        "request_id": prov.request_id,
    }


def usage_of(usage: Usage) -> TokenUsage:
    return TokenUsage(
        prompt_tokens=usage.prompt_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
        thinking_tokens=usage.thinking_tokens,
    )


def citations_of(grounding: Grounding | None) -> list[Citation]:
    """One citation per supported span and source, in the answer's order."""
    if grounding is None:
        return []
    out = []
    for support in sorted(grounding.supports, key=lambda s: (s.start, s.end)):
        for i in support.sources:
            if 0 <= i < len(grounding.sources):
                src = grounding.sources[i]
                out.append(
                    Citation(title=src.title, uri=src.uri, start=support.start, end=support.end)
                )
    return out


def generate_output(result: Result) -> GenerateOutput:
    grounding = result.grounding
    return GenerateOutput(
        text=result.text,
        finish_reason=result.finish_reason,
        spans=[Span(model=s.model, start=s.start, end=s.end) for s in result.provenance.spans],
        usage=usage_of(result.usage),
        citations=citations_of(grounding),
        search_queries=list(grounding.queries) if grounding else [],
        thoughts=result.thoughts,
        **provenance_fields(result.provenance),
    )


# -- generation -------------------------------------------------------------------------


def wants_progress(ctx: Ctx) -> bool:
    """Did the client send a progress token with this request?"""
    request_context = ctx.request_context
    meta = request_context.meta or {}
    if meta.get("progress_token") is not None or meta.get("progressToken") is not None:
        return True
    # In-process clients (Client(server)) pass a callback instead of a token; the SDK
    # keeps it on the (wrapped) dispatch context. Read defensively: private API.
    outbound = getattr(request_context.session, "_request_outbound", None)
    for _ in range(4):
        if outbound is None:
            break
        if getattr(outbound, "_on_progress", None) is not None:
            return True
        outbound = getattr(outbound, "_inner", None)
    return False


async def run_generation(
    manager: FailoverManager, request: GenerationRequest, ctx: Ctx, options: Options = DEFAULT
) -> Result:
    """Generate through the manager (from the chosen model); stream text deltas as
    progress when asked to.

    A cancelled call (client cancellation, disconnect) closes the upstream stream
    before the cancellation propagates.
    """
    start_at, failover = options.model, options.failover
    if not wants_progress(ctx):
        try:
            return await manager.generate(request, start_at=start_at, failover=failover)
        except RequestFailed as exc:
            raise tool_error(exc) from None
    try:
        stream = manager.stream(request, start_at=start_at, failover=failover)
    except RequestFailed as exc:
        raise tool_error(exc) from None
    sent = 0
    try:
        async for delta in stream:
            sent += len(delta)
            await ctx.report_progress(sent, None, delta)
    except RequestFailed as exc:
        raise tool_error(exc) from None
    finally:
        # Shielded: on cancellation every bare await would raise again, and the
        # upstream HTTP stream must be closed now, not when it is garbage collected.
        with anyio.move_on_after(CLOSE_TIMEOUT, shield=True):
            await stream.aclose()
    if stream.result is None:  # pragma: no cover - the manager sets it or raises
        raise RuntimeError("the stream ended without a result")
    return stream.result


async def generate(
    manager: FailoverManager,
    ctx: Ctx,
    turns: Sequence[tuple[str, str]],
    *,
    system_instruction: str | None,
    temperature: float | None,
    top_p: float | None,
    max_output_tokens: int | None,
    stop_sequences: tuple[str, ...],
    options: Options = DEFAULT,
    attachments: tuple[Attachment, ...] = (),
    urls: tuple[str, ...] = (),
    files: FilesOutput | None = None,
) -> GenerateOutput:
    new = [Turn("user" if r == "user" else "model", t) for r, t in turns]
    if attachments:  # the files go with the last user turn
        last = max(i for i, t in enumerate(new) if t.role == "user")
        new[last] = Turn("user", new[last].text, attachments)
    new_turns = tuple(new)
    thread = await threads.load(manager, options.conversation_id)
    history = thread.turns if thread is not None else ()
    request = GenerationRequest(
        contents=(*history, *new_turns),
        system_instruction=system_instruction,
        temperature=temperature,
        top_p=top_p,
        max_output_tokens=max_output_tokens,
        stop_sequences=stop_sequences,
        urls=urls,
        google_search=options.google_search,
        thinking=options.thinking_config(),
    )
    result = await run_generation(manager, request, ctx, options)
    saved = await threads.save(manager, thread, new_turns, result)
    return generate_output(result).model_copy(
        update={
            "conversation_id": saved.conversation_id,
            "dropped_turns": saved.dropped_turns,
            "conversation_note": saved.note,
            **({"files": files} if files is not None else {}),
        }
    )


async def generate_json(
    manager: FailoverManager,
    prompt: str,
    schema: dict[str, Any],
    *,
    system_instruction: str | None,
    temperature: float | None,
    max_output_tokens: int | None,
    options: Options = DEFAULT,
    attachments: tuple[Attachment, ...] = (),
    urls: tuple[str, ...] = (),
    files: FilesOutput | None = None,
) -> JsonOutput:
    request = GenerationRequest(
        contents=(Turn("user", prompt, attachments),),
        system_instruction=system_instruction,
        temperature=temperature,
        max_output_tokens=max_output_tokens,
        response_schema=schema,
        urls=urls,
        thinking=options.thinking_config(),
    )
    try:
        result = await manager.generate(request, start_at=options.model, failover=options.failover)
    except RequestFailed as exc:
        raise tool_error(exc) from None
    return JsonOutput(
        value=result.parsed,
        usage=usage_of(result.usage),
        files=files,
        thoughts=result.thoughts,
        **provenance_fields(result.provenance),
    )


# -- the others ---------------------------------------------------------------------------


async def count_tokens(
    manager: FailoverManager,
    text: str,
    attachments: tuple[Attachment, ...] = (),
    files: FilesOutput | None = None,
) -> CountTokensOutput:
    try:
        count, prov = await manager.count_tokens((Turn("user", text, attachments),))
    except RequestFailed as exc:
        raise tool_error(exc) from None
    return CountTokensOutput(total_tokens=count, files=files, **provenance_fields(prov))


async def embed(manager: FailoverManager, texts: Sequence[str]) -> EmbedOutput:
    try:
        vectors, prov = await manager.embed(tuple(texts))
    except RequestFailed as exc:
        raise tool_error(exc) from None
    return EmbedOutput(
        embeddings=vectors,
        dimensions=len(vectors[0]) if vectors else 0,
        **provenance_fields(prov),
    )


def list_models(manager: FailoverManager) -> ModelsOutput:
    return ModelsOutput(active_model=manager.active_model, models=manager.model_status())
