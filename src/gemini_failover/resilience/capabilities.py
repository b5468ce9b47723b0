"""Capability fit: never fail over to a model that cannot serve the request.

A fallback with a smaller context window, or without JSON-schema output, returns
garbage or a 400 at the worst moment (the "semantic drift" of the review). Each model
has a :class:`ModelProfile`: limits from ``models.get`` (fetched lazily, cached),
feature flags from configuration overrides, defaults otherwise. Each request states
its :class:`Needs`; :func:`misfit` says why a model cannot serve them, or None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gemini_failover.config import ModelOverride
from gemini_failover.protocol import GenerationRequest, Media, Modality, ModelInfo

#: Tokens per character used for routing estimates: Gemini averages ~4 characters a
#: token on English text; a conservative estimate routes a borderline prompt to a
#: model with room rather than one that would reject it.
CHARS_PER_TOKEN = 4.0

#: What a model reads when neither models.get (the SDK's Model has no such field) nor
#: an override says: every Gemini model since 1.5 takes text, images, audio, video and
#: PDF. URL context came with Gemini 2.0: ``gemini-1.*`` models default to without it.
ALL_MODALITIES: frozenset[Modality] = frozenset({"text", "image", "audio", "video", "pdf"})


def default_url_context(name: str) -> bool:
    return not name.removeprefix("models/").startswith("gemini-1.")


@dataclass(frozen=True, slots=True)
class ModelProfile:
    name: str
    input_token_limit: int | None = None  # None: unknown, assume it fits
    output_token_limit: int | None = None
    json_schema: bool = True
    function_calling: bool = True
    system_instruction: bool = True
    source: str = "defaults"  # "models.get", "config", "defaults" (for health output)
    # -- inputs: what the model reads besides text, and the URL-context tool --
    input_modalities: frozenset[Modality] = ALL_MODALITIES
    url_context: bool = True

    @staticmethod
    def build(name: str, info: ModelInfo | None, override: ModelOverride | None) -> ModelProfile:
        o = override or ModelOverride()
        return ModelProfile(
            name=name,
            input_token_limit=o.input_token_limit or (info.input_token_limit if info else None),
            output_token_limit=o.output_token_limit or (info.output_token_limit if info else None),
            json_schema=True if o.json_schema is None else o.json_schema,
            function_calling=True if o.function_calling is None else o.function_calling,
            system_instruction=True if o.system_instruction is None else o.system_instruction,
            source="models.get" if info else ("config" if override else "defaults"),
            input_modalities=ALL_MODALITIES
            if o.input_modalities is None
            else frozenset(o.input_modalities) | {"text"},
            url_context=default_url_context(name) if o.url_context is None else o.url_context,
        )


@dataclass(frozen=True, slots=True)
class Needs:
    prompt_tokens: int
    output_tokens: int | None = None
    json_schema: bool = False
    system_instruction: bool = False
    # -- inputs: the modalities the request's files need, and its urls --
    modalities: frozenset[Modality] = frozenset()
    url_context: bool = False

    @staticmethod
    def of(request: GenerationRequest) -> Needs:
        return Needs(
            prompt_tokens=estimate_tokens(request.prompt_chars()) + file_tokens(request),
            output_tokens=request.max_output_tokens,
            json_schema=request.structured,
            system_instruction=request.system_instruction is not None,
            modalities=request.modalities(),
            url_context=bool(request.urls),
        )


def file_tokens(request: GenerationRequest) -> int:
    """Tokens the request's files add: text files by their length, media as the loader
    estimated them (images by tiles, PDF pages, audio/video seconds)."""
    n = 0
    for turn in request.contents:
        for a in turn.attachments:
            n += a.tokens if isinstance(a, Media) else estimate_tokens(len(a.text) + len(a.label))
    return n


def estimate_tokens(chars: int) -> int:
    return max(1, math.ceil(chars / CHARS_PER_TOKEN))


def misfit(profile: ModelProfile, needs: Needs) -> str | None:
    """Why ``profile`` cannot serve ``needs`` (a short phrase), or None if it can."""
    limit = profile.input_token_limit
    if limit is not None and needs.prompt_tokens > limit:
        return f"context window {limit:,} tokens < prompt of ~{needs.prompt_tokens:,}"
    out = profile.output_token_limit
    if out is not None and needs.output_tokens is not None and needs.output_tokens > out:
        return f"output limit {out:,} tokens < max_output_tokens {needs.output_tokens:,}"
    if needs.json_schema and not profile.json_schema:
        return "no JSON-schema structured output"
    if needs.system_instruction and not profile.system_instruction:
        return "no system instructions"
    missing = sorted(needs.modalities - profile.input_modalities)
    if missing:
        return f"no {', '.join(missing)} input"
    if needs.url_context and not profile.url_context:
        return "no URL context (urls)"
    return None
