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
    "grounding_metadata",
    "list_models_response",
    "model_resource",
    "safety_ratings",
    "stream_chunk",
    "text_candidate",
    "url_context_metadata",
    "usage_metadata",
]


def usage_metadata(
    prompt_tokens: int,
    output_tokens: int | None = None,
    *,
    thoughts_tokens: int = 0,
    prompt_details: dict[str, int] | None = None,
) -> dict[str, Any]:
    """``usageMetadata``; without ``output_tokens`` (an answer with no candidate text)
    there is no ``candidatesTokenCount``. ``thoughts_tokens`` (when > 0) adds
    ``thoughtsTokenCount``, which ``totalTokenCount`` includes. ``prompt_details``:
    prompt tokens per modality (``TEXT``, ``IMAGE``, ``AUDIO``, ``VIDEO``, ``DOCUMENT``;
    default all ``TEXT``)."""
    usage: dict[str, Any] = {"promptTokenCount": prompt_tokens}
    if output_tokens is not None:
        usage["candidatesTokenCount"] = output_tokens
    if thoughts_tokens > 0:
        usage["thoughtsTokenCount"] = thoughts_tokens
    usage["totalTokenCount"] = prompt_tokens + (output_tokens or 0) + thoughts_tokens
    details = prompt_details if prompt_details else {"TEXT": prompt_tokens}
    usage["promptTokensDetails"] = [
        {"modality": modality, "tokenCount": n} for modality, n in details.items()
    ]
    return usage


def text_candidate(
    text: str,
    finish_reason: str | None = None,
    *,
    thought: str | None = None,
    grounding_metadata: dict[str, Any] | None = None,
    url_context_metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A candidate whose content is one text part (a stream chunk's has no finishReason
    until the last one), after a thought summary part (``{"text", "thought": true}``)
    when ``thought`` is given; ``text`` may then be empty (a chunk of thoughts only).
    ``groundingMetadata`` and ``urlContextMetadata`` go on the candidate."""
    parts: list[dict[str, Any]] = []
    if thought is not None:
        parts.append({"text": thought, "thought": True})
    if text or thought is None:
        parts.append({"text": text})
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
    if finish_reason is not None:
        candidate["finishReason"] = finish_reason
    if grounding_metadata is not None:
        candidate["groundingMetadata"] = grounding_metadata
    if url_context_metadata is not None:
        candidate["urlContextMetadata"] = url_context_metadata
    candidate["index"] = 0
    return candidate


def grounding_metadata(
    *,
    queries: Sequence[str],
    chunks: Sequence[tuple[str, str]],
    supports: Sequence[tuple[int, int, str, Sequence[int]]],
    rendered_content: str | None,
) -> dict[str, Any]:
    """``groundingMetadata`` of a Google Search grounded answer: ``chunks`` are (uri,
    title) web sources, ``supports`` (start, end, text, chunk indices) segments of the
    answer text, offsets in UTF-8 bytes. Like Gemini (proto3 JSON), a segment starting at
    0 has no ``startIndex``. ``rendered_content``: the search entry point's HTML (None:
    no ``searchEntryPoint``, as from a relay that does not have it)."""
    support_list: list[dict[str, Any]] = []
    for start, end, text, indices in supports:
        segment: dict[str, Any] = {}
        if start:
            segment["startIndex"] = start
        segment["endIndex"] = end
        segment["text"] = text
        support_list.append({"segment": segment, "groundingChunkIndices": list(indices)})
    metadata: dict[str, Any] = {}
    if rendered_content is not None:
        metadata["searchEntryPoint"] = {"renderedContent": rendered_content}
    metadata["groundingChunks"] = [{"web": {"uri": uri, "title": title}} for uri, title in chunks]
    if support_list:
        metadata["groundingSupports"] = support_list
    metadata["webSearchQueries"] = list(queries)
    return metadata


def url_context_metadata(statuses: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """``urlContextMetadata``: (url, ``URL_RETRIEVAL_STATUS_...``) per URL read."""
    return {
        "urlMetadata": [
            {"retrievedUrl": url, "urlRetrievalStatus": status} for url, status in statuses
        ]
    }


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
    **candidate_extras: Any,
) -> dict[str, Any]:
    """One ``streamGenerateContent`` event: only the last carries ``finishReason`` and
    ``usageMetadata`` (and, from an answer that has them, ``groundingMetadata`` and
    ``urlContextMetadata``: ``candidate_extras`` are ``text_candidate``'s keywords)."""
    return generate_content_response(
        model_version=model_version,
        response_id=response_id,
        candidates=[text_candidate(text, finish_reason, **candidate_extras)],
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


def count_tokens_response(
    total_tokens: int, details: dict[str, int] | None = None
) -> dict[str, Any]:
    """A ``countTokens`` answer (``details``: tokens per modality, default all TEXT)."""
    per_modality = details if details else {"TEXT": total_tokens}
    return {
        "totalTokens": total_tokens,
        "promptTokensDetails": [
            {"modality": modality, "tokenCount": n} for modality, n in per_modality.items()
        ],
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
    thinking: bool = False,
) -> dict[str, Any]:
    """A ``Model`` resource, as ``models.get`` answers and ``models.list`` lists
    (``"thinking": true`` for a thinking model, as Gemini says)."""
    resource: dict[str, Any] = {
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
    if thinking:
        resource["thinking"] = True
    return resource


def list_models_response(
    models: Sequence[dict[str, Any]], next_page_token: str | None = None
) -> dict[str, Any]:
    """A ``models.list`` page."""
    reply: dict[str, Any] = {"models": list(models)}
    if next_page_token is not None:
        reply["nextPageToken"] = next_page_token
    return reply
