"""The manager's results as Gemini API answers: one candidate, the real model in
``modelVersion``, thought summaries and search grounding where the request asked for
them, ``usageMetadata`` with the thinking tokens."""

from __future__ import annotations

from typing import Any

from gemini_failover.emulator.wire import (
    generate_content_response,
    stream_chunk,
    text_candidate,
    usage_metadata,
)
from gemini_failover.gateway.features import grounding_wire
from gemini_failover.protocol import Grounding, Usage

__all__ = ["final_chunk", "generate_response", "text_chunk"]


def _usage(usage: Usage) -> dict[str, Any]:
    return usage_metadata(
        usage.prompt_tokens, usage.output_tokens, thoughts_tokens=usage.thinking_tokens
    )


def _extras(text: str, thoughts: str, grounding: Grounding | None) -> dict[str, Any]:
    """``text_candidate``'s keywords for thought summaries and search grounding."""
    extras: dict[str, Any] = {}
    if thoughts:
        extras["thought"] = thoughts
    if grounding is not None:
        extras["grounding_metadata"] = grounding_wire(text, grounding)
    return extras


def generate_response(
    text: str,
    finish_reason: str,
    usage: Usage,
    *,
    model_version: str,
    response_id: str,
    thoughts: str = "",
    grounding: Grounding | None = None,
) -> dict[str, Any]:
    """A generateContent answer: one candidate (its thought summary part first, when
    asked for), the real model in ``modelVersion``."""
    candidate = text_candidate(text, finish_reason or "STOP", **_extras(text, thoughts, grounding))
    return generate_content_response(
        model_version=model_version,
        response_id=response_id,
        candidates=[candidate],
        usage=_usage(usage),
    )


def text_chunk(text: str, *, model_version: str, response_id: str) -> dict[str, Any]:
    """One stream event carrying a text delta."""
    return stream_chunk(text, model_version=model_version, response_id=response_id)


def final_chunk(
    finish_reason: str,
    usage: Usage,
    *,
    model_version: str,
    response_id: str,
    text: str = "",
    thoughts: str = "",
    grounding: Grounding | None = None,
) -> dict[str, Any]:
    """The last stream event: no text, the finish reason and the usage; the thought
    summary (the manager hands it over once the stream is done) and the grounding,
    whose offsets count in the whole streamed ``text``."""
    return stream_chunk(
        "",
        model_version=model_version,
        response_id=response_id,
        finish_reason=finish_reason or "STOP",
        usage=_usage(usage),
        **_extras(text, thoughts, grounding),
    )
