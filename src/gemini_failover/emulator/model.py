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

from .grounding import check_thinking, grounding_for, thought_summary, thoughts_tokens
from .media import (
    DETAIL_NAMES,
    InputPart,
    UrlRead,
    check_inputs,
    received_summary,
    url_status,
)
from .schema import value_for_schema, violating_json
from .spec import Profile
from .text import count_tokens, embedding_for, expected_text, overlap_start
from .wire import errors, responses
from .wire.errors import ErrorReply
from .wire.inputs import urls_in
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
    """A generate / stream request as the model sees it: its token count (text and
    media), its non-text inputs, the URLs the URL-context tool reads, the answer it gets
    (``full_answer``: what the first user turn received, then the model's words, which
    start at ``body_start``), and the part already sent when it asks to continue one."""

    request: GenerateRequest
    tokens: int
    continuation_prefix: str | None
    inputs: tuple[InputPart, ...] = ()
    urls: tuple[UrlRead, ...] = ()
    token_details: tuple[tuple[str, int], ...] = ()
    full_answer: str = ""
    body_start: int = 0

    @classmethod
    def of(cls, request: GenerateRequest, inputs: tuple[InputPart, ...] = ()) -> Prompt:
        urls: tuple[UrlRead, ...] = ()
        if "urlContext" in request.tools:
            urls = tuple(UrlRead(u, url_status(u)) for u in urls_in(request.first_user_text))
        summary = received_summary([i for i in inputs if i.first_turn], urls)
        full = summary + expected_text(request.first_user_text)
        prefix = request.trailing_model_text
        # A continuation continues a cut answer: a model turn holding the whole answer
        # is an earlier exchange of a conversation, answered afresh.
        if not prefix or len(prefix) >= len(full) or not full.startswith(prefix):
            prefix = None
        text_tokens = count_tokens(request.text_chars)
        details: dict[str, int] = {"TEXT": text_tokens}
        for item in inputs:
            name = DETAIL_NAMES[item.modality]
            details[name] = details.get(name, 0) + item.tokens
        return cls(
            request,
            sum(details.values()),
            prefix,
            inputs,
            urls,
            tuple(details.items()),
            full,
            len(summary),
        )


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
    problem = check_inputs(model, profile, prompt.inputs, prompt.request.tools)
    if problem is None:
        problem = check_thinking(model, profile, prompt.request.thinking)
    if problem is not None:
        return problem
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


def _answer_text(
    prompt: Prompt, overlap_words: int | None, violate_schema: bool
) -> tuple[str, int | None]:
    """The answer's text, and where it starts in ``prompt.full_answer`` (None: it is not
    a slice of it, e.g. JSON)."""
    request = prompt.request
    if request.schema is not None:
        if violate_schema:
            return violating_json(request.schema), None
        return json.dumps(value_for_schema(request.schema)), None
    expected = prompt.full_answer
    if request.json_mode:
        return json.dumps({"text": expected}), None
    prefix = prompt.continuation_prefix
    if prefix is None:
        return expected, 0
    start = len(prefix)
    if overlap_words is not None:
        start = overlap_start(prefix, overlap_words)
    return expected[start:], start


def _truncate(text: str, max_tokens: int) -> str:
    cut = max_tokens * 4
    space = text.rfind(" ", 0, cut + 1)
    return text[:space] if space > 0 else text[:cut]


@dataclass(frozen=True, slots=True)
class Answer:
    """The model's answer: text, finishReason and usageMetadata, and when asked for, a
    thought summary, ``groundingMetadata`` and ``urlContextMetadata``."""

    text: str
    finish_reason: str
    usage: dict[str, Any]
    thought: str | None = None
    grounding: dict[str, Any] | None = None
    url_context: dict[str, Any] | None = None


def shaped_answer(
    profile: Profile,
    prompt: Prompt,
    *,
    overlap_words: int | None = None,
    violate_schema: bool = False,
) -> Answer:
    """The answer, cut at the output limit (``MAX_TOKENS``) when it is longer."""
    text, start = _answer_text(prompt, overlap_words, violate_schema)
    finish = "STOP"
    limit = profile.output_token_limit
    request = prompt.request
    if request.max_output_tokens is not None:
        limit = min(limit, max(1, request.max_output_tokens))
    if text and count_tokens(len(text)) > limit:
        text = _truncate(text, limit)
        finish = "MAX_TOKENS"
    thinking = request.thinking
    thoughts = thoughts_tokens(thinking) if profile.thinking != "none" else 0
    usage = responses.usage_metadata(
        prompt.tokens,
        count_tokens(len(text)) if text else 0,
        thoughts_tokens=thoughts,
        prompt_details=dict(prompt.token_details) or None,
    )
    grounding = None
    if "googleSearch" in request.tools:
        search = grounding_for(request.first_user_text, prompt.full_answer, prompt.body_start)
        if start is None:
            grounding = search.metadata("", 0, 0)
        else:
            grounding = search.metadata(prompt.full_answer, start, start + len(text))
    url_context = None
    if prompt.urls:
        url_context = responses.url_context_metadata([(u.url, u.status) for u in prompt.urls])
    thought = None
    if thinking is not None and thinking.include_thoughts and thoughts:
        thought = thought_summary(text)
    return Answer(text, finish, usage, thought, grounding, url_context)


def count_tokens_reply(
    request: CountTokensRequest, inputs: tuple[InputPart, ...] = ()
) -> dict[str, Any]:
    details: dict[str, int] = {"TEXT": count_tokens(request.text_chars)}
    for item in inputs:
        name = DETAIL_NAMES[item.modality]
        details[name] = details.get(name, 0) + item.tokens
    return responses.count_tokens_response(sum(details.values()), details)


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
        thinking=profile.thinking != "none",
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
