"""Reading Gemini API requests: routes, API keys and request bodies.

Pure functions over what arrives on the wire (path, headers, query string, JSON body);
nothing here knows what a model answers. Bodies are read leniently, as Gemini's own
front end does for the fields a server needs: a field of the wrong type counts as absent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, get_args
from urllib.parse import parse_qsl

from gemini_failover import json_codec

from .inputs import PartInfo, ThinkingConfig, parse_parts, parse_thinking, tool_names

__all__ = [
    "ACTIONS",
    "ACTION_METHODS",
    "VERB_ACTIONS",
    "Action",
    "CountTokensRequest",
    "EmbedItem",
    "EmbedRequest",
    "GenerateRequest",
    "ListModelsQuery",
    "ModelRoute",
    "api_key",
    "content_text",
    "has_api_key",
    "normalise_model",
    "parse_json_object",
    "route_model_path",
    "text_chars",
]

#: What a request asks for: one per Gemini endpoint kind.
#: The Files API's: ``upload`` (the resumable upload's start request), ``upload_data``
#: (each chunk request), ``file_get``, ``file_list``, ``file_delete``.
Action = Literal[
    "generate",
    "stream",
    "count_tokens",
    "embed",
    "get",
    "list",
    "upload",
    "upload_data",
    "file_get",
    "file_list",
    "file_delete",
]
ACTIONS: tuple[Action, ...] = get_args(Action)

#: ``models/{m}:{verb}`` -> action.
VERB_ACTIONS: dict[str, Action] = {
    "generateContent": "generate",
    "streamGenerateContent": "stream",
    "countTokens": "count_tokens",
    "batchEmbedContents": "embed",
    "embedContent": "embed",
}

#: Action -> the Gemini method name a model lists in ``supportedGenerationMethods``
#: (``get`` and ``list`` need none).
ACTION_METHODS: dict[str, str] = {
    "generate": "generateContent",
    "stream": "streamGenerateContent",
    "count_tokens": "countTokens",
    "embed": "batchEmbedContents",
}


def normalise_model(name: str) -> str:
    """A model name without its ``models/`` prefix."""
    return name[len("models/") :] if name.startswith("models/") else name


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """What ``/{version}/models/{rest}`` names: a model, and an action (None: no such
    method; ``verb`` is then what was asked, for the 404)."""

    model: str
    action: Action | None
    verb: str


def route_model_path(
    http_method: str, rest: str, verbs: dict[str, Action] | None = None
) -> ModelRoute:
    """Route ``models/{rest}``: ``m`` (GET: get), ``m:verb`` (POST: that verb's action,
    by ``verbs``, default the Gemini API's VERB_ACTIONS). A POST's verb follows the last
    colon: the gateway's chain keys (``vertex:gemini-2.5-pro``) have one of their own."""
    if http_method == "POST" and ":" in rest:
        name, _, verb = rest.rpartition(":")
    else:
        name, _, verb = rest.partition(":")
    action: Action | None
    if not verb and http_method in ("GET", "HEAD"):
        action = "get"
    elif http_method == "POST":
        action = (VERB_ACTIONS if verbs is None else verbs).get(verb)
    else:
        action = None
    return ModelRoute(normalise_model(name), action, verb or http_method)


def has_api_key(headers: Iterable[tuple[bytes, bytes]], query_string: bytes) -> bool:
    """Whether the request carries an API key: ``x-goog-api-key`` (what the SDK sends),
    ``Authorization``, or a ``key=`` query parameter."""
    for key, value in headers:
        if (key == b"x-goog-api-key" or key == b"authorization") and value:
            return True
    return b"key=" in query_string


def api_key(headers: Iterable[tuple[bytes, bytes]], query_string: bytes) -> str | None:
    """The API key of a request: ``x-goog-api-key``, else the ``key=`` query parameter."""
    for key, value in headers:
        if key == b"x-goog-api-key" and value:
            return value.decode("latin-1")
    for name, param in parse_qsl(query_string.decode("latin-1")):
        if name == "key" and param:
            return param
    return None


def parse_json_object(payload: bytes) -> dict[str, Any] | None:
    """The body as a JSON object (``{}`` when empty); None when it is not one, which
    Gemini answers with 400 "Invalid JSON payload received."."""
    if not payload:
        return {}
    try:
        body = json_codec.loads(payload)  # bounded nesting: a decode error, not a crash
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def content_text(content: Any) -> str:
    """The text of one ``Content``: its text parts joined, thought parts left out."""
    if not isinstance(content, dict):
        return ""
    parts = content.get("parts")
    if not isinstance(parts, list):
        return ""
    return "".join(
        p["text"]
        for p in parts
        if isinstance(p, dict) and isinstance(p.get("text"), str) and not p.get("thought")
    )


def text_chars(contents: Any, system_instruction: Any = None) -> int:
    """Characters of text in the contents and the system instruction."""
    total = len(content_text(system_instruction))
    if isinstance(contents, list):
        for content in contents:
            total += len(content_text(content))
    return total


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


@dataclass(frozen=True, slots=True)
class GenerateRequest:
    """A ``generateContent`` / ``streamGenerateContent`` body, as far as a server needs it.

    ``first_user_text``: the text of the first user turn. ``trailing_model_text``: when
    the conversation (three turns or more) ends with a model turn and then a user turn,
    the model turn's text (what a client sends to have an answer continued), else None.
    ``schema``: ``responseJsonSchema`` or else ``responseSchema``; ``json_mode``:
    ``responseMimeType`` is ``application/json``. ``parts``: every part of every turn;
    ``first_user_parts``: those of the first user turn; ``tools``: the tools declared
    (``googleSearch``, ``urlContext``, ...); ``thinking``: the thinking config, if any.
    """

    contents: list[Any]
    system_instruction: Any
    first_user_text: str
    text_chars: int
    trailing_model_text: str | None
    schema: dict[str, Any] | None
    json_mode: bool
    max_output_tokens: int | None
    parts: tuple[PartInfo, ...] = ()
    first_user_parts: tuple[PartInfo, ...] = ()
    tools: tuple[str, ...] = ()
    thinking: ThinkingConfig | None = None

    @classmethod
    def parse(cls, body: dict[str, Any]) -> GenerateRequest:
        raw = body.get("contents")
        contents: list[Any] = raw if isinstance(raw, list) else []
        first_user = ""
        first_turn = -1
        for turn, content in enumerate(contents):
            if isinstance(content, dict) and content.get("role", "user") == "user":
                first_user = content_text(content)
                first_turn = turn
                break
        parts = parse_parts(contents)
        system = body.get("systemInstruction")
        config = body.get("generationConfig")
        config = config if isinstance(config, dict) else {}
        schema: dict[str, Any] | None = None
        for key in ("responseJsonSchema", "responseSchema"):
            candidate = config.get(key)
            if isinstance(candidate, dict):
                schema = candidate
                break
        trailing: str | None = None
        if (
            len(contents) >= 3
            and isinstance(contents[-1], dict)
            and isinstance(contents[-2], dict)
            and contents[-1].get("role", "user") == "user"
            and contents[-2].get("role") == "model"
        ):
            trailing = content_text(contents[-2])
        return cls(
            contents=contents,
            system_instruction=system,
            first_user_text=first_user,
            text_chars=text_chars(contents, system),
            trailing_model_text=trailing,
            schema=schema,
            json_mode=config.get("responseMimeType") == "application/json",
            max_output_tokens=_as_int(config.get("maxOutputTokens")),
            parts=parts,
            first_user_parts=tuple(p for p in parts if p.turn == first_turn),
            tools=tool_names(body),
            thinking=parse_thinking(config),
        )


@dataclass(frozen=True, slots=True)
class CountTokensRequest:
    """A ``countTokens`` body: ``contents`` (and ``systemInstruction``) either at the top
    level or inside ``generateContentRequest``."""

    text_chars: int
    parts: tuple[PartInfo, ...] = ()

    @classmethod
    def parse(cls, body: dict[str, Any]) -> CountTokensRequest:
        request = body.get("generateContentRequest")
        source = request if isinstance(request, dict) else body
        contents = source.get("contents")
        return cls(text_chars(contents, source.get("systemInstruction")), parse_parts(contents))


@dataclass(frozen=True, slots=True)
class EmbedItem:
    """One text to embed; ``output_dimensionality`` as sent (any JSON value, or None)."""

    text: str
    output_dimensionality: object


@dataclass(frozen=True, slots=True)
class EmbedRequest:
    """A ``batchEmbedContents`` body (``batch``: answered with ``embeddings``) or an
    ``embedContent`` body (one item, answered with ``embedding``)."""

    items: tuple[EmbedItem, ...]
    batch: bool

    @classmethod
    def parse(cls, body: dict[str, Any]) -> EmbedRequest:
        raw = body.get("requests")
        requests: list[dict[str, Any]]
        if isinstance(raw, list):
            requests = [r for r in raw if isinstance(r, dict)]
        elif "content" in body:  # :embedContent
            requests = [body]
        else:
            requests = []
        items = tuple(
            EmbedItem(content_text(r.get("content")), r.get("outputDimensionality"))
            for r in requests
        )
        return cls(items, batch="requests" in body)


@dataclass(frozen=True, slots=True)
class ListModelsQuery:
    """``models.list`` paging: ``pageSize`` (default 50) and ``pageToken`` (an offset)."""

    page_size: int
    offset: int

    @classmethod
    def parse(cls, query_string: bytes) -> ListModelsQuery:
        params = dict(parse_qsl(query_string.decode()))
        return cls(int(params.get("pageSize") or 50), int(params.get("pageToken") or 0))
