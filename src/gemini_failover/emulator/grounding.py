"""Deterministic Google Search grounding and thinking of the emulated model.

Grounding: the search queries, web sources and supports are a function of the first user
turn; one support per sentence of the model's answer (not of the ``Received ...``
sentences before it), each pointing at one or two sources. Supports are computed over
the model's whole answer and then clipped to the text a response returns, with offsets
into that text (UTF-8 bytes, as Gemini counts them): a continued answer's supports cover
only the continuation, and shifting them by the length of what came before gives the
supports of the stitched text.

Thinking: a fixed thought summary derived from the answer, and a thought token count
from the budget or level asked for.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .spec import Profile
from .text import VOCABULARY
from .wire import errors, responses
from .wire.errors import ErrorReply
from .wire.inputs import ThinkingConfig

__all__ = [
    "LEVEL_TOKENS",
    "Grounding",
    "check_thinking",
    "grounding_for",
    "thought_summary",
    "thoughts_tokens",
]

_SENTENCE = re.compile(r"[^.\s][^.]*\.")
_REDIRECT = "https://vertexaisearch.cloud.google.com/grounding-api-redirect/"


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class Grounding:
    """The search behind an answer: queries, sources (uri, title) and the supports of
    the full answer text (start, end in characters of it, chunk indices)."""

    queries: tuple[str, ...]
    sources: tuple[tuple[str, str], ...]
    supports: tuple[tuple[int, int, tuple[int, ...]], ...]

    def metadata(self, full_text: str, start: int, end: int) -> dict[str, Any]:
        """``groundingMetadata`` for ``full_text[start:end]``, the text one response
        returns: supports clipped to it, offsets into it, in UTF-8 bytes."""
        returned = full_text[start:end]
        clipped: list[tuple[int, int, str, Sequence[int]]] = []
        for s, e, indices in self.supports:
            s, e = max(s, start), min(e, end)
            if s >= e:
                continue
            a, b = s - start, e - start
            segment = returned[a:b]
            byte_a = len(returned[:a].encode("utf-8"))
            clipped.append((byte_a, byte_a + len(segment.encode("utf-8")), segment, indices))
        chips = "".join(f'<a class="chip">{html.escape(q)}</a>' for q in self.queries)
        return responses.grounding_metadata(
            queries=self.queries,
            chunks=self.sources,
            supports=clipped,
            rendered_content=f'<div class="container">{chips}</div>',
        )


def grounding_for(first_user_text: str, full_text: str, body_start: int) -> Grounding:
    """The grounding of an answer ``full_text`` whose model-written part (the sentences
    to support) starts at ``body_start``."""
    words = re.findall(r"[\w'-]+", first_user_text.lower())[:8]
    query = " ".join(words) or "gemini"
    digest = _digest(first_user_text)
    count = 2 + digest[0] % 2
    sources = tuple(
        (
            f"{_REDIRECT}{digest.hex()[:16]}{i}",
            f"{VOCABULARY[digest[i + 1] % len(VOCABULARY)]}.example.com",
        )
        for i in range(count)
    )
    supports: list[tuple[int, int, tuple[int, ...]]] = []
    for i, match in enumerate(_SENTENCE.finditer(full_text, body_start)):
        indices = (i % count,) if i % 3 else (i % count, (i + 1) % count)
        supports.append((match.start(), match.end(), indices))
    return Grounding((query,), sources, tuple(supports))


#: Thought tokens spent per thinking level.
LEVEL_TOKENS: dict[str, int] = {
    "MINIMAL": 32,
    "LOW": 128,
    "MEDIUM": 512,
    "HIGH": 1024,
    "XHIGH": 2048,
}


def check_thinking(
    model: str, profile: Profile, config: ThinkingConfig | None
) -> ErrorReply | None:
    """400 for thinking the profile cannot do (see docs/emulator.md)."""
    if config is None:
        return None
    budget, level = config.budget, config.level
    if profile.thinking == "none":
        if (budget is not None and budget != 0) or level is not None or config.include_thoughts:
            return errors.invalid_argument(f"Thinking is not supported for models/{model}.")
        return None
    if budget is not None and level is not None:
        return errors.invalid_argument(
            "You can only set only one of thinking budget and thinking level."
        )
    if level is not None:
        if profile.thinking != "level":
            return errors.invalid_argument(f"Thinking level is not supported for models/{model}.")
        if level not in LEVEL_TOKENS:
            return errors.invalid_argument(f"Invalid thinking level: {level}.")
    if budget is not None and budget != -1:
        low, high = profile.thinking_budget_min, profile.thinking_budget_max
        if budget == 0 and low > 0:
            return errors.invalid_argument(
                "Budget 0 is invalid. This model only works in thinking mode."
            )
        if budget != 0 and not low <= budget <= high:
            return errors.invalid_argument(
                f"The thinking budget {budget} is invalid. Please choose a value between "
                f"{low} and {high}."
            )
    return None


def thoughts_tokens(config: ThinkingConfig | None) -> int:
    """Thought tokens spent: none without a thinking config or with budget 0; 256 for a
    dynamic budget (-1); ``min(budget, 512)`` for a budget; per level, LEVEL_TOKENS."""
    if config is None:
        return 0
    if config.level is not None:
        return LEVEL_TOKENS.get(config.level, 0)
    if config.budget is None or config.budget == -1:
        return 256
    return min(max(config.budget, 0), 512)


def thought_summary(answer: str) -> str:
    """The thought summary shown with ``includeThoughts``: derived from the answer."""
    words = re.findall(r"[a-z]+", answer.lower())[:3] or ["the", "request"]
    return (
        "**Planning the answer**\n\nI am weighing "
        + ", ".join(words)
        + " before I write the answer."
    )
