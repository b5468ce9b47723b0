"""Building Gemini API responses: the JSON shapes the google-genai SDK parses.

Every builder takes plain values and returns the JSON object (a dict) as Gemini sends
it; serialising and framing are in :mod:`.transport`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "blocked_candidate",
    "blocked_prompt_feedback",
    "count_tokens_response",
    "embeddings_response",
    "generate_content_response",
    "list_models_response",
    "model_resource",
    "safety_ratings",
    "stream_chunk",
    "text_candidate",
    "usage_metadata",
]


def usage_metadata(prompt_tokens: int, output_tokens: int | None = None) -> dict[str, Any]:
    """``usageMetadata``; without ``output_tokens`` (an answer with no candidate text)
    there is no ``candidatesTokenCount``."""
    usage: dict[str, Any] = {"promptTokenCount": prompt_tokens}
    if output_tokens is not None:
        usage["candidatesTokenCount"] = output_tokens
    usage["totalTokenCount"] = prompt_tokens + (output_tokens or 0)
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt_tokens}]
    return usage


def text_candidate(text: str, finish_reason: str | None = None) -> dict[str, Any]:
    """A candidate whose content is one text part (a stream chunk's has no finishReason
    until the last one)."""
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}}
    if finish_reason is not None:
        candidate["finishReason"] = finish_reason
    candidate["index"] = 0
    return candidate


def generate_content_response(
    *,
    model_version: str,
    response_id: str,
    candidates: Sequence[dict[str, Any]] | None = None,
    usage: dict[str, Any] | None = None,
    prompt_feedback: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``GenerateContentResponse`` (also one SSE event of a stream). ``candidates``
    None leaves the key out (as Gemini does for a blocked prompt)."""
    response: dict[str, Any] = {}
    if candidates is not None:
        response["candidates"] = list(candidates)
    if prompt_feedback is not None:
        response["promptFeedback"] = prompt_feedback
    if usage is not None:
        response["usageMetadata"] = usage
    response["modelVersion"] = model_version
    response["responseId"] = response_id
    return response


def stream_chunk(
    text: str,
    *,
    model_version: str,
    response_id: str,
    finish_reason: str | None = None,
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``streamGenerateContent`` event: only the last carries ``finishReason`` and
    ``usageMetadata``."""
    return generate_content_response(
        model_version=model_version,
        response_id=response_id,
        candidates=[text_candidate(text, finish_reason)],
        usage=usage,
    )


_SAFETY_CATEGORIES = (
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
)


def safety_ratings(blocked_category: str = _SAFETY_CATEGORIES[-1]) -> list[dict[str, Any]]:
    """``safetyRatings`` with one category rated HIGH and ``blocked``."""
    ratings: list[dict[str, Any]] = [
        {"category": c, "probability": "NEGLIGIBLE"}
        for c in _SAFETY_CATEGORIES
        if c != blocked_category
    ]
    ratings.append({"category": blocked_category, "probability": "HIGH", "blocked": True})
    return ratings


def blocked_candidate(reason: str = "SAFETY") -> dict[str, Any]:
    """A candidate stopped by a filter: ``finishReason`` and ratings, no content."""
    return {"finishReason": reason, "index": 0, "safetyRatings": safety_ratings()}


def blocked_prompt_feedback(reason: str = "SAFETY") -> dict[str, Any]:
    """``promptFeedback`` for a blocked prompt (the response then has no candidates)."""
    return {"blockReason": reason, "safetyRatings": safety_ratings()}


def count_tokens_response(total_tokens: int) -> dict[str, Any]:
    """A ``countTokens`` answer."""
    return {
        "totalTokens": total_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total_tokens}],
    }


def embeddings_response(vectors: Sequence[Sequence[float]], *, batch: bool) -> dict[str, Any]:
    """``{"embeddings": [...]}`` (batchEmbedContents) or ``{"embedding": ...}``
    (embedContent: the first vector)."""
    values = [{"values": list(v)} for v in vectors]
    if not batch:
        return {"embedding": values[0]}
    return {"embeddings": values}


def model_resource(
    model: str,
    *,
    version: str,
    display_name: str,
    description: str,
    input_token_limit: int,
    output_token_limit: int,
    methods: Sequence[str],
    temperature: float = 1.0,
    max_temperature: float = 2.0,
    top_p: float = 0.95,
    top_k: int = 64,
) -> dict[str, Any]:
    """A ``Model`` resource, as ``models.get`` answers and ``models.list`` lists."""
    return {
        "name": f"models/{model}",
        "version": version,
        "displayName": display_name,
        "description": description,
        "inputTokenLimit": input_token_limit,
        "outputTokenLimit": output_token_limit,
        "supportedGenerationMethods": list(methods),
        "temperature": temperature,
        "maxTemperature": max_temperature,
        "topP": top_p,
        "topK": top_k,
    }


def list_models_response(
    models: Sequence[dict[str, Any]], next_page_token: str | None = None
) -> dict[str, Any]:
    """A ``models.list`` page."""
    reply: dict[str, Any] = {"models": list(models)}
    if next_page_token is not None:
        reply["nextPageToken"] = next_page_token
    return reply
