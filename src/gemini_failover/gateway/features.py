"""The Gemini request features the gateway carries beyond text, both ways.

Requests: ``inlineData`` parts (images, PDF, audio, video, text files: the manager's
``Media``, with the token estimate routing needs), ``generationConfig.thinkingConfig``
(the manager's ``Thinking``) and the ``googleSearch`` / ``urlContext`` tools. Each
becomes part of the request's needs, so a model that cannot serve it is skipped with
the reason, as for the MCP tools. Answers: thought summaries (``thought: true`` parts),
``groundingMetadata`` (offsets back in UTF-8 bytes, as Gemini sends them) and
``thoughtsTokenCount``.

What the manager cannot carry is refused by name (``mapping.UNSUPPORTED``), never
dropped; ``fileData`` in particular names a file in one API key's Files API storage,
which another endpoint or key cannot read, so a failover could not keep it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from gemini_failover.emulator.wire import ErrorReply, grounding_metadata, invalid_argument
from gemini_failover.emulator.wire.inputs import field
from gemini_failover.inputs.media import PdfPages, measure
from gemini_failover.protocol import Grounding, Media, Thinking, ThinkingLevel

__all__ = [
    "FeatureError",
    "Tools",
    "grounding_wire",
    "inline_media",
    "thinking_of",
    "tools_of",
]


class FeatureError(Exception):
    """A feature field the gateway cannot read; ``reply`` is Gemini's error for it."""

    def __init__(self, reply: ErrorReply) -> None:
        super().__init__(reply.body["error"]["message"])
        self.reply = reply


def _invalid(path: str, kind: str, value: Any) -> FeatureError:
    shown = repr(value)[:80]
    return FeatureError(invalid_argument(f"Invalid value at '{path}' ({kind}), {shown}"))


# -- inline data -------------------------------------------------------------------------


def _bytes_of(data: Any, path: str) -> bytes:
    """Base64 as Gemini reads it: standard or URL-safe alphabet, padding optional."""
    if not isinstance(data, str):
        raise _invalid(path, "TYPE_BYTES", data)
    text = data.replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise FeatureError(
            invalid_argument(f"Invalid value at '{path}' (TYPE_BYTES), Base64 decoding failed")
        ) from None


def inline_media(blob: Any, path: str) -> Media:
    """An ``inlineData`` Blob (``path``: its place in the request, snake_case, for
    errors) as the manager's ``Media``, its tokens estimated as the MCP tools do."""
    if not isinstance(blob, dict):
        raise _invalid(path, "TYPE_MESSAGE", blob)
    unknown = [k for k in blob if k not in ("mimeType", "mime_type", "data", "displayName")]
    if unknown:
        raise FeatureError(
            invalid_argument(
                f'Invalid JSON payload received. Unknown name "{unknown[0]}" at '
                f"'{path}': Cannot find field."
            )
        )
    mime = field(blob, "mimeType")
    if not isinstance(mime, str) or "/" not in mime:
        raise FeatureError(invalid_argument(f"{path}.mime_type: a MIME type is required"))
    data = _bytes_of(blob.get("data"), f"{path}.data")
    pages: int | None = None
    if mime == "application/pdf":
        scan = PdfPages()
        scan.feed(data)
        pages = scan.result()
    estimate = measure(mime, len(data), lambda at, n: data[at : at + n], pages)
    return Media(
        label=f"{path} ({mime})",
        mime_type=mime,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        data=data,
        tokens=estimate.tokens,
    )


# -- thinking ----------------------------------------------------------------------------

#: Gemini's thinkingLevel -> the manager's level (MINIMAL is as little as a model thinks;
#: the manager's "off" is sent back as MINIMAL to the models that take levels).
_LEVELS: dict[str, ThinkingLevel | None] = {
    "THINKING_LEVEL_UNSPECIFIED": None,
    "MINIMAL": "off",
    "LOW": "low",
    "MEDIUM": "medium",
    "HIGH": "high",
}
_THINKING_FIELDS = ("thinkingBudget", "thinkingLevel", "includeThoughts")


def thinking_of(config: Any) -> Thinking | None:
    """``generationConfig.thinkingConfig`` (its value) as the manager's ``Thinking``:
    a level, a budget (-1, dynamic: the model's own default), thought summaries."""
    path = "generation_config.thinking_config"
    if config is None:
        return None
    if not isinstance(config, dict):
        raise _invalid(path, "TYPE_MESSAGE", config)
    known = {*_THINKING_FIELDS, "thinking_budget", "thinking_level", "include_thoughts"}
    for key in config:
        if key not in known:
            raise FeatureError(
                invalid_argument(
                    f'Invalid JSON payload received. Unknown name "{key}" at '
                    f"'{path}': Cannot find field."
                )
            )
    budget = field(config, "thinkingBudget")
    level = field(config, "thinkingLevel")
    include = field(config, "includeThoughts")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int)):
        raise _invalid(f"{path}.thinking_budget", "TYPE_INT32", budget)
    if level is not None and (not isinstance(level, str) or level.upper() not in _LEVELS):
        raise _invalid(f"{path}.thinking_level", "TYPE_ENUM", level)
    if include is not None and not isinstance(include, bool):
        raise _invalid(f"{path}.include_thoughts", "TYPE_BOOL", include)
    if budget is not None and level is not None:
        raise FeatureError(
            invalid_argument("thinking_budget and thinking_level cannot both be set.")
        )
    if budget is not None and budget < -1:
        raise _invalid(f"{path}.thinking_budget", "TYPE_INT32", budget)
    return Thinking(
        level=_LEVELS[level.upper()] if isinstance(level, str) else None,
        budget=budget if budget is not None and budget >= 0 else None,
        include_thoughts=include is True,
    )


# -- tools -------------------------------------------------------------------------------

_TOOL_LATER = {
    "functionDeclarations": "function calling",
    "codeExecution": "code execution",
    "googleSearchRetrieval": "googleSearchRetrieval (use googleSearch)",
    "retrieval": "retrieval",
    "googleMaps": "Google Maps grounding",
    "computerUse": "computer use",
    "fileSearch": "file search",
    "enterpriseWebSearch": "enterprise web search",
    "urlContext": "",
    "googleSearch": "",
}


class Tools:
    """What a request's ``tools`` ask for."""

    __slots__ = ("google_search", "url_context")

    def __init__(self, google_search: bool = False, url_context: bool = False) -> None:
        self.google_search = google_search
        self.url_context = url_context


def tools_of(raw: Any) -> Tools:
    """``tools``: Google Search grounding and URL context are carried (and routed on);
    every other tool is refused by name."""
    out = Tools()
    if raw is None:
        return out
    if not isinstance(raw, list):
        raise _invalid("tools", "TYPE_MESSAGE", raw)
    for i, tool in enumerate(raw):
        if not isinstance(tool, dict):
            raise _invalid(f"tools[{i}]", "TYPE_MESSAGE", tool)
        for key, value in tool.items():
            camel = "".join(p.capitalize() if j else p for j, p in enumerate(key.split("_")))
            if camel not in _TOOL_LATER:
                raise FeatureError(
                    invalid_argument(
                        f'Invalid JSON payload received. Unknown name "{key}" at '
                        f"'tools[{i}]': Cannot find field."
                    )
                )
            if value is None:
                continue
            if _TOOL_LATER[camel]:
                raise FeatureError(
                    invalid_argument(
                        f"tools[{i}].{camel} ({_TOOL_LATER[camel]}) is not supported by the "
                        "gateway yet: remove it, or call Gemini directly"
                    )
                )
            if not isinstance(value, dict):
                raise _invalid(f"tools[{i}].{key}", "TYPE_MESSAGE", value)
            if camel == "googleSearch":
                out.google_search = True
            else:
                out.url_context = True
    return out


# -- answers -----------------------------------------------------------------------------


def grounding_wire(text: str, grounding: Grounding) -> dict[str, Any]:
    """``groundingMetadata`` for an answer: the manager keeps support offsets in
    characters of ``text``; Gemini sends them in UTF-8 bytes."""

    def byte_at(char: int) -> int:
        return len(text[:char].encode("utf-8"))

    supports = [
        (byte_at(s.start), byte_at(s.end), text[s.start : s.end], s.sources)
        for s in grounding.supports
    ]
    return grounding_metadata(
        queries=grounding.queries,
        chunks=[(s.uri, s.title) for s in grounding.sources],
        supports=supports,
        rendered_content=None,
    )
