"""The emulated model: what it refuses (by its profile) and what it answers.

Deterministic, from :mod:`.text` and :mod:`.schema`; the JSON shapes come from the wire
layer. Nothing here knows about faults beyond the two answer variants a fault can ask
for (an overlapping continuation, a schema violation).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .schema import value_for_schema, violating_json
from .spec import Profile
from .text import count_tokens, embedding_for, expected_text, overlap_start
from .wire import errors, responses
from .wire.errors import ErrorReply
from .wire.requests import (
    ACTION_METHODS,
    CountTokensRequest,
    EmbedRequest,
    GenerateRequest,
)

__all__ = [
    "Answer",
    "Prompt",
    "check_embed",
    "check_method",
    "check_prompt",
    "count_tokens_reply",
    "embed_reply",
    "list_reply",
    "model_json",
    "shaped_answer",
]


@dataclass(frozen=True, slots=True)
class Prompt:
    """A generate / stream request as the model sees it: its token count, and the part of
    the answer already sent when the request asks to continue one."""

    request: GenerateRequest
    tokens: int
    continuation_prefix: str | None

    @classmethod
    def of(cls, request: GenerateRequest) -> Prompt:
        prefix = request.trailing_model_text
        if not prefix or not expected_text(request.first_user_text).startswith(prefix):
            prefix = None
        return cls(request, count_tokens(request.text_chars), prefix)


def check_method(model: str, profile: Profile, action: str) -> ErrorReply | None:
    """Gemini's 404 when the profile does not list the action's method (embed also
    accepts ``embedContent``, the name real embedding models list)."""
    method = ACTION_METHODS.get(action)
    if method is None or method in profile.methods:
        return None
    if method == "batchEmbedContents" and "embedContent" in profile.methods:
        return None
    return errors.model_not_found(model, method)


def check_prompt(model: str, profile: Profile, prompt: Prompt) -> ErrorReply | None:
    """400 for structured output the model lacks, or a prompt over its input limit."""
    if prompt.request.schema is not None and not profile.json_schema:
        return errors.invalid_argument(
            f"Structured output (responseSchema / responseJsonSchema) is not "
            f"supported by models/{model}."
        )
    if prompt.tokens > profile.input_token_limit:
        return errors.input_too_long(prompt.tokens, profile.input_token_limit)
    return None


def check_embed(profile: Profile, request: EmbedRequest) -> ErrorReply | None:
    """400 for no texts, a text over the input limit, or a dimensionality too large."""
    if not request.items:
        return errors.invalid_argument(
            "* BatchEmbedContentsRequest.requests: contents is not specified\n"
        )
    for item in request.items:
        tokens = count_tokens(len(item.text))
        if tokens > profile.input_token_limit:
            return errors.input_too_long(tokens, profile.input_token_limit)
        dim = item.output_dimensionality
        if dim is not None and (not isinstance(dim, int) or not 0 < dim <= profile.embedding_dim):
            return errors.invalid_argument(
                f"outputDimensionality must be between 1 and {profile.embedding_dim}."
            )
    return None


def _answer_text(prompt: Prompt, overlap_words: int | None, violate_schema: bool) -> str:
    request = prompt.request
    if request.schema is not None:
        if violate_schema:
            return violating_json(request.schema)
        return json.dumps(value_for_schema(request.schema))
    expected = expected_text(request.first_user_text)
    if request.json_mode:
        return json.dumps({"text": expected})
    prefix = prompt.continuation_prefix
    if prefix is None:
        return expected
    rest = expected[len(prefix) :]
    if overlap_words is not None:
        return prefix[overlap_start(prefix, overlap_words) :] + rest
    return rest


def _truncate(text: str, max_tokens: int) -> str:
    cut = max_tokens * 4
    space = text.rfind(" ", 0, cut + 1)
    return text[:space] if space > 0 else text[:cut]


@dataclass(frozen=True, slots=True)
class Answer:
    """The model's answer: text, finishReason and usageMetadata."""

    text: str
    finish_reason: str
    usage: dict[str, Any]


def shaped_answer(
    profile: Profile,
    prompt: Prompt,
    *,
    overlap_words: int | None = None,
    violate_schema: bool = False,
) -> Answer:
    """The answer, cut at the output limit (``MAX_TOKENS``) when it is longer."""
    text = _answer_text(prompt, overlap_words, violate_schema)
    finish = "STOP"
    limit = profile.output_token_limit
    if prompt.request.max_output_tokens is not None:
        limit = min(limit, max(1, prompt.request.max_output_tokens))
    if text and count_tokens(len(text)) > limit:
        text = _truncate(text, limit)
        finish = "MAX_TOKENS"
    usage = responses.usage_metadata(prompt.tokens, count_tokens(len(text)) if text else 0)
    return Answer(text, finish, usage)


def count_tokens_reply(request: CountTokensRequest) -> dict[str, Any]:
    return responses.count_tokens_response(count_tokens(request.text_chars))


def embed_reply(profile: Profile, request: EmbedRequest) -> dict[str, Any]:
    vectors = []
    for item in request.items:
        dim = item.output_dimensionality  # checked by check_embed: None or 1..embedding_dim
        vectors.append(
            embedding_for(
                item.text, int(dim) if isinstance(dim, int) and dim else profile.embedding_dim
            )
        )
    return responses.embeddings_response(vectors, batch=request.batch)


def model_json(model: str, profile: Profile) -> dict[str, Any]:
    """The Model resource ``models.get`` answers for this model."""
    return responses.model_resource(
        model,
        version=profile.version,
        display_name=profile.display_name or model,
        description=f"Emulated model {model}.",
        input_token_limit=profile.input_token_limit,
        output_token_limit=profile.output_token_limit,
        methods=profile.methods,
    )


def list_reply(
    models: Sequence[tuple[str, Profile]], page_size: int, offset: int
) -> dict[str, Any]:
    """One ``models.list`` page (``nextPageToken``: the next offset)."""
    page = models[offset : offset + page_size]
    more = offset + page_size < len(models)
    return responses.list_models_response(
        [model_json(n, p) for n, p in page], str(offset + page_size) if more else None
    )
