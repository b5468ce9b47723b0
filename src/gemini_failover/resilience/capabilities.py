"""Capability fit: never fail over to a model that cannot serve the request.

A fallback with a smaller context window, or without JSON-schema output, returns
garbage or a 400 at the worst moment (the "semantic drift" of the review). Each model
has a :class:`ModelProfile`: limits from ``models.get`` (fetched lazily, cached),
feature flags from configuration overrides, defaults otherwise. Each request states
its :class:`Needs`; :func:`misfit` says why a model cannot serve them, or None.

Search grounding and thinking are capabilities too: a fallback without grounding, or
one that cannot think the way the request asks, would answer a different question, so
it is skipped (with the reason) rather than silently downgraded. Defaults by family,
used where the overrides do not say (``models.get``'s ``thinking`` flag, once fetched,
decides whether a model thinks at all):

| model name | google_search | thinking | budget range | can turn thinking off |
|---|---|---|---|---|
| ``*embedding*``, ``gemma*``, ``*-tts*``, ``*-image*`` | no | none | - | - |
| ``gemini-1.*``, ``gemini-2.0-*`` | yes | none | - | - |
| ``gemini-2.5-pro*`` | yes | budget | 128-32,768 | no |
| ``gemini-2.5-flash-lite*`` | yes | budget | 512-24,576 | yes |
| ``gemini-2.5-*`` (Flash) | yes | budget | 1-24,576 | yes |
| ``gemini-3*`` and newer, ``*pro*`` | yes | level | 128-32,768 | no (no MINIMAL) |
| ``gemini-3*`` and newer, others | yes | level | 0-24,576 | yes |
| anything else (``gemini-pro-latest``, ...) | yes | budget | unknown | unless ``pro`` |
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Literal

from gemini_failover import pairs
from gemini_failover.config import ModelOverride, Settings
from gemini_failover.protocol import GenerationRequest, Media, Modality, ModelInfo, Thinking

#: How a model takes thinking settings: not at all, a token budget, or a level.
ThinkingMode = Literal["none", "budget", "level"]

_MAJOR_MINOR = re.compile(r"gemini-(\d+)(?:\.(\d+))?(?:-|$)")
_NO_TOOLS = ("embedding", "gemma", "-tts", "-image")


@dataclass(frozen=True, slots=True)
class ThinkingProfile:
    """How a model thinks: ``mode``, the budgets it accepts (None: unknown, not
    checked) and whether thinking can be turned off (budget 0 / MINIMAL)."""

    mode: ThinkingMode = "budget"
    budget_min: int | None = None
    budget_max: int | None = None
    can_disable: bool = True


def family_defaults(name: str) -> tuple[bool, ThinkingProfile]:
    """(google_search, thinking) for a model by its name's family (the table above)."""
    bare = name.removeprefix("models/").lower()
    if any(tag in bare for tag in _NO_TOOLS):
        return False, ThinkingProfile("none", can_disable=False)
    pro = "pro" in bare
    found = _MAJOR_MINOR.search(bare)
    if found is None:
        return True, ThinkingProfile("budget", can_disable=not pro)
    major, minor = int(found.group(1)), int(found.group(2) or 0)
    if major < 2 or (major == 2 and minor < 5):
        return True, ThinkingProfile("none", can_disable=False)
    if major == 2:
        if pro:
            return True, ThinkingProfile("budget", 128, 32_768, can_disable=False)
        if "lite" in bare:
            return True, ThinkingProfile("budget", 512, 24_576)
        return True, ThinkingProfile("budget", 1, 24_576)
    if pro:
        return True, ThinkingProfile("level", 128, 32_768, can_disable=False)
    return True, ThinkingProfile("level", 0, 24_576)


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
    google_search: bool = True
    thinking: ThinkingProfile = ThinkingProfile()
    #: files too large to send inline go through the endpoint's Files API (Vertex AI
    #: has none)
    file_uploads: bool = True

    @staticmethod
    def build(name: str, info: ModelInfo | None, override: ModelOverride | None) -> ModelProfile:
        o = override or ModelOverride()
        search, thinking = family_defaults(name)
        if info is not None:
            # Gemini's models.get says "thinking": true for every thinking model and,
            # being proto3 JSON, leaves a false out: not said is "does not think"
            # (an override's ``thinking`` corrects an endpoint that never says).
            if not info.thinking:
                thinking = ThinkingProfile("none", can_disable=False)
            elif thinking.mode == "none":  # thinks, though its family says not: a budget
                thinking = ThinkingProfile("budget")
        if o.thinking is not None and o.thinking != thinking.mode:
            thinking = ThinkingProfile(o.thinking, can_disable=o.thinking != "none")
        thinking = ThinkingProfile(
            thinking.mode,
            o.thinking_budget_min if o.thinking_budget_min is not None else thinking.budget_min,
            o.thinking_budget_max if o.thinking_budget_max is not None else thinking.budget_max,
            thinking.can_disable if o.thinking_off is None else o.thinking_off,
        )
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
            google_search=search if o.google_search is None else o.google_search,
            thinking=thinking,
        )


def pair_profile(settings: Settings, key: str, info: ModelInfo | None) -> ModelProfile:
    """The profile of a chain entry (``endpoint:model`` or a bare model): the model's
    family defaults, what models.get said, the overrides for the pair over those for
    the bare model, and what its endpoint can take."""
    endpoint = settings.endpoint_table().get(pairs.endpoint_of(key, settings.default_endpoint_name))
    profile = ModelProfile.build(pairs.model_of(key), info, settings.override_for(key))
    uploads = endpoint is None or endpoint.kind != "vertex"
    return replace(profile, name=key, file_uploads=uploads)


@dataclass(frozen=True, slots=True)
class Needs:
    prompt_tokens: int
    output_tokens: int | None = None
    json_schema: bool = False
    system_instruction: bool = False
    # -- inputs: the modalities the request's files need, and its urls --
    modalities: frozenset[Modality] = frozenset()
    url_context: bool = False
    google_search: bool = False
    thinking: Thinking | None = None
    #: files too large to send inline (uploaded through the Files API)
    uploads: bool = False

    @staticmethod
    def of(request: GenerationRequest) -> Needs:
        files = any(turn.attachments for turn in request.contents)  # usually none
        return Needs(
            prompt_tokens=estimate_tokens(request.prompt_chars())
            + (file_tokens(request) if files else 0),
            output_tokens=request.max_output_tokens,
            json_schema=request.structured,
            system_instruction=request.system_instruction is not None,
            modalities=request.modalities() if files else frozenset(),
            url_context=request.uses_url_context,
            google_search=request.google_search,
            thinking=request.thinking,
            uploads=files
            and any(
                isinstance(a, Media) and a.data is None
                for turn in request.contents
                for a in turn.attachments
            ),
        )

    @property
    def features(self) -> bool:
        """Whether the request asks for a feature models.get speaks about (thinking):
        then routing waits briefly for the model's profile instead of guessing."""
        return self.thinking is not None

    def capabilities(self) -> tuple[str, ...]:
        """The capability names this request needs (for metrics and health)."""
        names = []
        if self.google_search:
            names.append("google_search")
        if self.thinking is not None:
            names.append("thinking")
        if self.json_schema:
            names.append("json_schema")
        if self.url_context:
            names.append("url_context")
        names.extend(f"{m}_input" for m in sorted(self.modalities))
        return tuple(names)


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
    if needs.google_search and not profile.google_search:
        return "no Google Search grounding"
    if needs.uploads and not profile.file_uploads:
        return "no Files API on this endpoint (Vertex AI) for files too large to send inline"
    if needs.thinking is not None:
        return thinking_misfit(profile.thinking, needs.thinking)
    return None


def thinking_misfit(profile: ThinkingProfile, thinking: Thinking) -> str | None:
    if profile.mode == "none":
        return "no thinking (takes no thinking settings)"
    budget = thinking.budget
    if budget is None:
        if thinking.level == "off" and not profile.can_disable:
            return "thinking cannot be turned off"
        return None
    if budget == 0 and not profile.can_disable:
        return "thinking cannot be turned off (budget 0)"
    low, high = profile.budget_min, profile.budget_max
    if budget > 0 and low is not None and budget < low:
        return f"thinking budget {budget:,} below its minimum {low:,}"
    if high is not None and budget > high:
        return f"thinking budget {budget:,} above its maximum {high:,}"
    return None
