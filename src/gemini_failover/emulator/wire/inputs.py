"""Reading what a Gemini request gives the model besides text: parts (``inlineData``,
``fileData``, text, thoughts), tools (``googleSearch``, ``urlContext``, ...) and
``thinkingConfig``.

Gemini's JSON front end accepts both the proto field names in camelCase (``mimeType``)
and their snake_case originals (``mime_type``); the google-genai SDK sends some of each
(``inlineData.mime_type``, ``thinkingConfig.include_thoughts``), so both are read here.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "PartInfo",
    "ThinkingConfig",
    "field",
    "parse_parts",
    "parse_thinking",
    "tool_names",
    "urls_in",
]

_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


def field(obj: Any, name: str) -> Any:
    """``obj[name]`` by its camelCase name or its snake_case form (None when absent)."""
    if not isinstance(obj, dict):
        return None
    value = obj.get(name)
    if value is None:
        value = obj.get(_SNAKE.sub("_", name).lower())
    return value


@dataclass(frozen=True, slots=True)
class PartInfo:
    """One part of one turn, as far as a server needs it.

    ``turn``: the index of its turn in ``contents``. ``kind``: ``text``, ``thought``,
    ``inline_data``, ``file_data`` or ``other`` (function calls and responses, executable
    code, ...). ``size``: bytes of text (UTF-8) or of the
    decoded inline data (None: file data, whose size the server looks up, or base64 that
    does not decode). ``data``: the decoded inline bytes (None for other kinds).
    """

    role: str
    kind: str
    turn: int = 0
    mime_type: str | None = None
    size: int | None = None
    file_uri: str | None = None
    data: bytes | None = None
    text: str | None = None


def _decode(data: Any) -> bytes | None:
    if not isinstance(data, str):
        return None
    try:
        return base64.b64decode(data, validate=False, altchars=b"-_" if "-" in data else None)
    except (binascii.Error, ValueError):
        return None


def _part(role: str, turn: int, part: dict[str, Any]) -> PartInfo:
    text = part.get("text")
    if isinstance(text, str):
        kind = "thought" if part.get("thought") else "text"
        return PartInfo(role, kind, turn, "text/plain", len(text.encode("utf-8")), text=text)
    inline = field(part, "inlineData")
    if isinstance(inline, dict):
        raw = _decode(inline.get("data"))
        mime = field(inline, "mimeType")
        return PartInfo(
            role,
            "inline_data",
            turn,
            mime if isinstance(mime, str) else None,
            len(raw) if raw is not None else None,
            data=raw,
        )
    file_data = field(part, "fileData")
    if isinstance(file_data, dict):
        mime = field(file_data, "mimeType")
        uri = field(file_data, "fileUri")
        return PartInfo(
            role,
            "file_data",
            turn,
            mime if isinstance(mime, str) else None,
            file_uri=uri if isinstance(uri, str) else None,
        )
    return PartInfo(role, "other", turn)


def parse_parts(contents: Any) -> tuple[PartInfo, ...]:
    """Every part of every turn, in order (turns without ``role`` are ``user``)."""
    found: list[PartInfo] = []
    if not isinstance(contents, list):
        return ()
    for turn, content in enumerate(contents):
        if not isinstance(content, dict):
            continue
        role = content.get("role") if isinstance(content.get("role"), str) else "user"
        parts = content.get("parts")
        if isinstance(parts, list):
            found.extend(_part(str(role), turn, p) for p in parts if isinstance(p, dict))
    return tuple(found)


def tool_names(body: dict[str, Any]) -> tuple[str, ...]:
    """The tools a request declares, by their camelCase key (``googleSearch``,
    ``urlContext``, ``functionDeclarations``, ``codeExecution``, ...), in order."""
    tools = body.get("tools")
    names: list[str] = []
    if not isinstance(tools, list):
        return ()
    for tool in tools:
        if isinstance(tool, dict):
            for key in tool:
                camel = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key)
                if camel not in names:
                    names.append(camel)
    return tuple(names)


@dataclass(frozen=True, slots=True)
class ThinkingConfig:
    """``generationConfig.thinkingConfig``: ``budget`` (-1: dynamic, 0: off), ``level``
    (``LOW``, ``HIGH``, ...) and ``include_thoughts``, each None when not sent."""

    budget: int | None
    level: str | None
    include_thoughts: bool

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"includeThoughts": self.include_thoughts}
        if self.budget is not None:
            data["thinkingBudget"] = self.budget
        if self.level is not None:
            data["thinkingLevel"] = self.level
        return data


def parse_thinking(generation_config: Any) -> ThinkingConfig | None:
    """The request's thinking config, or None when it sends none."""
    config = field(generation_config, "thinkingConfig")
    if not isinstance(config, dict):
        return None
    budget = field(config, "thinkingBudget")
    level = field(config, "thinkingLevel")
    return ThinkingConfig(
        budget=int(budget)
        if isinstance(budget, int | float) and not isinstance(budget, bool)
        else None,
        level=level.upper() if isinstance(level, str) and level else None,
        include_thoughts=field(config, "includeThoughts") is True,
    )


_URL = re.compile(r"https?://[^\s<>\"')\]]+", re.IGNORECASE)


def urls_in(text: str) -> tuple[str, ...]:
    """The http(s) URLs in a text, in order, without duplicates or trailing
    punctuation (what the URL-context tool reads from a prompt)."""
    seen: list[str] = []
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(".,;:!?")
        if url not in seen:
            seen.append(url)
    return tuple(seen)
