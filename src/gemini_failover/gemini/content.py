"""Protocol requests as Gemini parts, tools and thinking configs.

Parts (per turn: its attachments in order, then its text):

| protocol | Gemini part |
|---|---|
| ``Turn.text`` | ``{"text": ...}`` (left out when empty and the turn has files) |
| ``TextFile`` | ``{"text": '<file path="LABEL">\\nTEXT\\n</file>'}`` |
| ``Media`` with ``data`` | ``{"inlineData": {"mimeType", "data"}}`` |
| ``Media``, ``path`` only | ``{"fileData": {"fileUri", "mimeType"}}``: this endpoint's upload |
| ``urls`` | the ``urlContext`` tool, and a text part listing the URLs at the end of |
| | the user turn they came with, ``urls_turn`` (the tool reads URLs from the prompt) |
| ``google_search`` | the ``googleSearch`` tool |

``urls_turn`` is fixed when the request is built (its last user turn), so a
continuation (contents + the partial answer + "continue") keeps the URLs where they were.

Thinking (``Thinking.level``):

| level | 2.5 and older, unknown names: ``thinkingBudget`` | Gemini 3 and newer: ``thinkingLevel`` |
|---|---|---|
| off | 0 | MINIMAL |
| low | 1024 | LOW |
| medium | 8192 | MEDIUM |
| high | 24576 | HIGH |

An explicit ``Thinking.budget`` is sent as ``thinkingBudget`` to every model instead
(Gemini 3 models take budgets too), never dropped. ``include_thoughts`` sets
``includeThoughts``: thought summaries come back as ``thoughts``, never in the text.
A model's family is read from its name (``gemini-<major>``): Gemini 3 models also
accept budgets, 2.5 models refuse levels, so a name we cannot read gets a budget.
``models.get`` says only *whether* a model thinks (``ModelInfo.thinking``), not how.
What a model cannot do (2.5 Pro cannot turn thinking off, 3 Pro has no MINIMAL, a
model without thinking takes no config at all) is refused by Gemini with 400, a
bad_request: the manager's capability routing keeps such requests away.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import quoteattr

from gemini_failover.gemini.uploads import FileCache
from gemini_failover.protocol import Media, TextFile, Thinking, ThinkingLevel, Turn

THINKING_BUDGETS: Mapping[ThinkingLevel, int] = {
    "off": 0,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
}
THINKING_LEVELS: Mapping[ThinkingLevel, str] = {
    "off": "MINIMAL",
    "low": "LOW",
    "medium": "MEDIUM",
    "high": "HIGH",
}

_MAJOR = re.compile(r"gemini-(\d+)(?:\.\d+)?(?:-|$)")


def uses_thinking_levels(model: str) -> bool:
    """Gemini 3 and newer take ``thinkingLevel``; 2.x (and unknown names) a budget."""
    found = _MAJOR.search(model.removeprefix("models/"))
    return found is not None and int(found.group(1)) >= 3


def thinking_config(model: str, thinking: Thinking | None) -> dict[str, Any] | None:
    """The ``thinkingConfig`` for ``model`` (snake_case, as the SDK's types take it)."""
    if thinking is None:
        return None
    config: dict[str, Any] = {}
    if thinking.budget is not None:
        config["thinking_budget"] = thinking.budget
    elif thinking.level is None:
        pass  # the model's own default (e.g. only thought summaries were asked for)
    elif uses_thinking_levels(model):
        config["thinking_level"] = THINKING_LEVELS[thinking.level]
    else:
        config["thinking_budget"] = THINKING_BUDGETS[thinking.level]
    if thinking.include_thoughts:
        config["include_thoughts"] = True
    return config


def text_file_part(file: TextFile) -> dict[str, Any]:
    return {"text": f"<file path={quoteattr(file.label)}>\n{file.text}\n</file>"}


def urls_text(urls: tuple[str, ...]) -> str:
    return "Pages for the URL context tool:\n" + "\n".join(urls)


async def render_contents(
    turns: tuple[Turn, ...], urls: tuple[str, ...], urls_turn: int | None, files: FileCache
) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
    """The SDK ``contents`` and the names of the uploaded files they reference."""
    contents: list[dict[str, Any]] = []
    referenced: list[str] = []
    url_turn = urls_turn if urls else None
    for index, turn in enumerate(turns):
        parts: list[dict[str, Any]] = []
        for attachment in turn.attachments:
            if isinstance(attachment, TextFile):
                parts.append(text_file_part(attachment))
            else:
                parts.append(await _media_part(attachment, files, referenced))
        if turn.text or not parts:
            parts.append({"text": turn.text})
        if index == url_turn:
            parts.append({"text": urls_text(urls)})
        contents.append({"role": turn.role, "parts": parts})
    if urls and url_turn is None:  # no user turn at all: the URLs make one
        contents.append({"role": "user", "parts": [{"text": urls_text(urls)}]})
    return contents, tuple(referenced)


async def _media_part(media: Media, files: FileCache, referenced: list[str]) -> dict[str, Any]:
    if media.data is not None:
        return {"inline_data": {"mime_type": media.mime_type, "data": media.data}}
    uploaded = await files.acquire(media)
    referenced.append(uploaded.name)
    return {"file_data": {"file_uri": uploaded.uri, "mime_type": media.mime_type}}
