"""Gemini API JSON <-> the failover manager's requests and results.

The one place that decides which parts of a Gemini request the manager can carry (the
features beyond text, inline data, thinking and the search / URL-context tools, are
read in :mod:`.features`). A field the manager cannot carry yet (file data, function
calling, safety settings, ...) is never dropped silently: the request is refused with
400 INVALID_ARGUMENT naming the field (:data:`UNSUPPORTED`). A field the Gemini API
itself does not have is refused the way Gemini refuses it ("Unknown name ... Cannot find
field."). Extending the gateway to a new capability means moving its field from the
unsupported table to a mapping here. Answers are built in :mod:`.replies`.

Both spellings the API accepts are read: ``generationConfig`` and ``generation_config``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gemini_failover.emulator.schema import openapi_to_json_schema
from gemini_failover.emulator.wire import (
    ErrorReply,
    invalid_argument,
    normalise_model,
    unknown_field,
)
from gemini_failover.gateway.features import FeatureError, inline_media, thinking_of, tools_of
from gemini_failover.protocol import Attachment, GenerationRequest, Turn

__all__ = [
    "UNSUPPORTED",
    "EmbedCall",
    "MappingError",
    "count_tokens_contents",
    "embed_call",
    "generation_request",
]


class MappingError(Exception):
    """The request cannot be mapped; ``reply`` is the Gemini error to send."""

    def __init__(self, reply: ErrorReply) -> None:
        super().__init__(reply.body["error"]["message"])
        self.reply = reply


# -- the field tables ------------------------------------------------------------------
# Keys are the API's camelCase names. A field in a message's table is known; its value
# says whether the manager can carry it (True) or what it is (a str: why it is refused).

_LATER = "not supported by the gateway yet"

#: GenerateContentRequest fields.
_GENERATE: dict[str, bool | str] = {
    "model": True,
    "contents": True,
    "systemInstruction": True,
    "generationConfig": True,
    "tools": True,  # googleSearch and urlContext (features.tools_of)
    "toolConfig": _LATER,
    "safetySettings": _LATER,
    "cachedContent": _LATER,
    "labels": _LATER,
}
#: GenerationConfig fields.
_CONFIG: dict[str, bool | str] = {
    "temperature": True,
    "topP": True,
    "maxOutputTokens": True,
    "stopSequences": True,
    "responseMimeType": True,
    "responseSchema": True,
    "responseJsonSchema": True,
    "candidateCount": True,  # 1 only
    "responseModalities": True,  # TEXT only
    "topK": _LATER,
    "seed": _LATER,
    "presencePenalty": _LATER,
    "frequencyPenalty": _LATER,
    "responseLogprobs": _LATER,
    "logprobs": _LATER,
    "enableEnhancedCivicAnswers": _LATER,
    "speechConfig": _LATER,
    "thinkingConfig": True,
    "imageConfig": _LATER,
    "mediaResolution": _LATER,
    "audioTimestamp": _LATER,
    "routingConfig": _LATER,
    "modelSelectionConfig": _LATER,
    "enableAffectiveDialog": _LATER,
}
#: Content and Part fields.
_CONTENT: dict[str, bool | str] = {"role": True, "parts": True}
_PART: dict[str, bool | str] = {
    "text": True,
    "inlineData": True,
    "fileData": "a file in one API key's Files API storage, which a failover to another "
    "key or endpoint cannot read: send its bytes as inlineData",
    "functionCall": _LATER,
    "functionResponse": _LATER,
    "executableCode": _LATER,
    "codeExecutionResult": _LATER,
    "videoMetadata": _LATER,
    "thought": True,  # a thought summary in the history: not sent again
    "thoughtSignature": True,  # one model's own: ignored (no function calling here)
    "partMetadata": _LATER,
}
#: EmbedContentRequest fields (also each request of batchEmbedContents).
_EMBED: dict[str, bool | str] = {
    "model": True,
    "content": True,
    "taskType": _LATER,
    "title": _LATER,
    "outputDimensionality": _LATER,
}
_BATCH_EMBED: dict[str, bool | str] = {"requests": True}
#: CountTokensRequest fields.
_COUNT: dict[str, bool | str] = {"model": True, "contents": True, "generateContentRequest": True}

#: Every field refused today because the manager cannot carry it, by message path.
UNSUPPORTED: dict[str, list[str]] = {
    message: sorted(k for k, v in table.items() if v is not True)
    for message, table in (
        ("GenerateContentRequest", _GENERATE),
        ("GenerationConfig", _CONFIG),
        ("Part", _PART),
        ("EmbedContentRequest", _EMBED),
    )
}

_CAMEL = re.compile(r"_([a-z])")
_SNAKE = re.compile(r"(?<!^)([A-Z])")


def _camel(name: str) -> str:
    if "_" not in name:  # what the SDKs send: no substitution to make
        return name
    return _CAMEL.sub(lambda m: m.group(1).upper(), name)


def _snake(path: str) -> str:
    return _SNAKE.sub(r"_\1", path).lower()


def _fields(obj: Any, table: Mapping[str, bool | str], at: str) -> dict[str, Any]:
    """``obj`` (a JSON object) with camelCase keys, checked against ``table``."""
    if not isinstance(obj, dict):
        raise MappingError(_invalid_value(at, "TYPE_MESSAGE", obj))
    out: dict[str, Any] = {}
    for raw_key, value in obj.items():
        key = _camel(raw_key)
        known = table.get(key)
        if known is None:
            raise MappingError(unknown_field(raw_key, _snake(at)))
        if known is not True:
            if value is None:  # an explicit null is as good as absent
                continue
            path = f"{at}.{key}" if at else key
            raise MappingError(
                invalid_argument(f"{path} is {known}: remove it, or call Gemini directly")
            )
        out[key] = value
    return out


def _invalid_value(at: str, kind: str, value: Any) -> ErrorReply:
    shown = json.dumps(value)[:80]
    return invalid_argument(f"Invalid value at '{_snake(at)}' ({kind}), {shown}")


# -- requests --------------------------------------------------------------------------


def _text_of(content: Any, at: str, *, parts_required: bool = True) -> tuple[str, str]:
    """(role, text) of one Content that may hold text only."""
    role, text, attachments = _content_of(content, at, parts_required=parts_required)
    if attachments:
        raise MappingError(
            invalid_argument(f"{at}.parts: only text is supported here by the gateway")
        )
    return role, text


def _content_of(
    content: Any, at: str, *, parts_required: bool = True
) -> tuple[str, str, tuple[Attachment, ...]]:
    """(role, text, attachments) of one Content. A turn's files are sent before its
    text (as the MCP tools send them): its files must therefore all come before or all
    after its text, so that no text moves from one file's side to another's."""
    fields = _fields(content, _CONTENT, at)
    role = fields.get("role") or "user"
    if role not in ("user", "model"):
        raise MappingError(invalid_argument("Please use a valid role: user, model."))
    parts = fields.get("parts")
    if parts is None:
        parts = []
    if not isinstance(parts, list):
        raise MappingError(_invalid_value(f"{at}.parts", "TYPE_MESSAGE", parts))
    if not parts and parts_required:
        raise MappingError(
            invalid_argument(
                f"* GenerateContentRequest.{at}.parts: contents.parts must not be empty."
            )
        )
    texts: list[str] = []
    attachments: list[Attachment] = []
    sides: list[str] = []  # "text" / "file", one entry per change of kind
    for j, part in enumerate(parts):
        where = f"{at}.parts[{j}]"
        fields = _fields(part, _PART, where)
        text = fields.get("text")
        blob = fields.get("inlineData")
        if blob is not None and text is not None:
            raise MappingError(
                invalid_argument(
                    f"* GenerateContentRequest.{where}.data: oneof field 'data' is already set. "
                    "Cannot set 'inline_data'"
                )
            )
        if fields.get("thought") is True:
            continue  # a thought summary from an earlier answer: models do not read them
        if blob is not None:
            try:
                attachments.append(inline_media(blob, f"{_snake(where)}.inline_data"))
            except FeatureError as exc:
                raise MappingError(exc.reply) from None
            _side(sides, "file", at)
            continue
        if text is None:
            raise MappingError(
                invalid_argument(
                    f"* GenerateContentRequest.{where}.data: required oneof field 'data' "
                    "must have one initialized field"
                )
            )
        if not isinstance(text, str):
            raise MappingError(_invalid_value(f"{where}.text", "TYPE_STRING", text))
        _side(sides, "text", at)
        texts.append(text)
    return str(role), "".join(texts), tuple(attachments)


def _side(sides: list[str], kind: str, at: str) -> None:
    """A turn is sent as its files, then its text: the parts may change kind once."""
    if sides and sides[-1] == kind:
        return
    sides.append(kind)
    if len(sides) > 2:
        raise MappingError(
            invalid_argument(
                f"{at}.parts: text and inlineData interleaved in one turn are not supported "
                "by the gateway yet: put the turn's files before or after all of its text"
            )
        )


def _turns(contents: Any, at: str = "contents") -> tuple[Turn, ...]:
    if contents is None or contents == []:
        raise MappingError(
            invalid_argument("* GenerateContentRequest.contents: contents is not specified")
        )
    if isinstance(contents, dict):  # a single Content is accepted as a list of one
        contents = [contents]
    if not isinstance(contents, list):
        raise MappingError(_invalid_value(at, "TYPE_MESSAGE", contents))
    turns: list[Turn] = []
    for i, content in enumerate(contents):
        role, text, attachments = _content_of(content, f"{at}[{i}]")
        turns.append(Turn("model" if role == "model" else "user", text, attachments))
    return tuple(turns)


def _number(config: dict[str, Any], key: str, kind: str) -> float | None:
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MappingError(_invalid_value(f"generation_config.{key}", kind, value))
    return float(value)


def _config(raw: Any) -> dict[str, Any]:
    config = _fields(raw, _CONFIG, "generationConfig") if raw is not None else {}
    out: dict[str, Any] = {}
    out["temperature"] = _number(config, "temperature", "TYPE_FLOAT")
    out["top_p"] = _number(config, "topP", "TYPE_FLOAT")
    max_tokens = _number(config, "maxOutputTokens", "TYPE_INT32")
    if max_tokens is not None:
        if max_tokens != int(max_tokens) or max_tokens < 1:
            raise MappingError(invalid_argument("max_output_tokens must be a positive integer."))
        out["max_output_tokens"] = int(max_tokens)
    stops = config.get("stopSequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise MappingError(
                _invalid_value("generation_config.stop_sequences", "TYPE_STRING", stops)
            )
        out["stop_sequences"] = tuple(stops)
    count = config.get("candidateCount")
    if count not in (None, 1):
        raise MappingError(
            invalid_argument(
                "generationConfig.candidateCount: only 1 candidate is supported by the gateway"
            )
        )
    modalities = config.get("responseModalities")
    if modalities not in (None, [], ["TEXT"], ["text"]):
        raise MappingError(
            invalid_argument(
                "generationConfig.responseModalities: only TEXT is supported by the gateway"
            )
        )
    out["response_schema"] = _schema(config)
    try:
        out["thinking"] = thinking_of(config.get("thinkingConfig"))
    except FeatureError as exc:
        raise MappingError(exc.reply) from None
    return {k: v for k, v in out.items() if v is not None}


def _schema(config: dict[str, Any]) -> dict[str, Any] | None:
    mime = config.get("responseMimeType")
    json_schema = config.get("responseJsonSchema")
    openapi = config.get("responseSchema")
    if mime in (None, "", "text/plain"):
        if json_schema is not None or openapi is not None:
            raise MappingError(
                invalid_argument(
                    "response_mime_type must be application/json when a response schema is set."
                )
            )
        return None
    if mime != "application/json":
        raise MappingError(
            invalid_argument(
                f"generationConfig.responseMimeType {mime!r}: only text/plain and "
                "application/json are supported by the gateway"
            )
        )
    if json_schema is not None and openapi is not None:
        raise MappingError(
            invalid_argument("response_schema and response_json_schema cannot both be set.")
        )
    if json_schema is not None:
        if not isinstance(json_schema, dict):
            raise MappingError(
                _invalid_value(
                    "generation_config.response_json_schema", "TYPE_MESSAGE", json_schema
                )
            )
        return json_schema
    if openapi is not None:
        if not isinstance(openapi, dict):
            raise MappingError(
                _invalid_value("generation_config.response_schema", "TYPE_MESSAGE", openapi)
            )
        converted = openapi_to_json_schema(openapi)
        return converted if isinstance(converted, dict) else {}
    return {}  # JSON mode without a schema: any JSON value


def generation_request(body: dict[str, Any], model: str | None = None) -> GenerationRequest:
    """A generateContent / streamGenerateContent body as the manager's request."""
    fields = _fields(body, _GENERATE, "")
    _same_model(fields.get("model"), model)
    system: str | None = None
    raw_system = fields.get("systemInstruction")
    if raw_system is not None:
        if isinstance(raw_system, str):  # the API accepts a bare string here too
            system = raw_system
        else:
            system = _text_of(raw_system, "system_instruction", parts_required=False)[1]
    try:
        tools = tools_of(fields.get("tools"))
    except FeatureError as exc:
        raise MappingError(exc.reply) from None
    return GenerationRequest(
        contents=_turns(fields.get("contents")),
        system_instruction=system or None,
        google_search=tools.google_search,
        url_context=tools.url_context,
        **_config(fields.get("generationConfig")),
    )


def count_tokens_contents(body: dict[str, Any], model: str | None = None) -> tuple[Turn, ...]:
    """A countTokens body as turns (``contents``, or ``generateContentRequest`` whose
    other fields the manager's count cannot carry: a system instruction is refused)."""
    fields = _fields(body, _COUNT, "")
    _same_model(fields.get("model"), model)
    inner = fields.get("generateContentRequest")
    if inner is not None:
        if fields.get("contents") is not None:
            raise MappingError(
                invalid_argument("contents and generate_content_request cannot both be set.")
            )
        request = generation_request(inner if isinstance(inner, dict) else {}, model)
        if request.system_instruction is not None:
            raise MappingError(
                invalid_argument(
                    "generateContentRequest.systemInstruction is not supported by the gateway "
                    "yet: count the contents only"
                )
            )
        return request.contents
    return _turns(fields.get("contents"))


@dataclass(frozen=True, slots=True)
class EmbedCall:
    texts: tuple[str, ...]
    batch: bool


def embed_call(body: dict[str, Any], model: str, *, batch: bool) -> EmbedCall:
    """An embedContent (one text) or batchEmbedContents body: the texts to embed."""
    if batch:
        requests = _fields(body, _BATCH_EMBED, "").get("requests")
        if not isinstance(requests, list) or not requests:
            raise MappingError(
                invalid_argument("* BatchEmbedContentsRequest.requests: requests is not specified")
            )
        at = "requests[{}]"
    else:
        requests, at = [body], "{}"
    texts: list[str] = []
    for i, request in enumerate(requests):
        where = at.format(i) if batch else ""
        fields = _fields(request, _EMBED, where)
        _same_model(fields.get("model"), model)
        content = fields.get("content")
        if content is None:
            raise MappingError(
                invalid_argument("* EmbedContentRequest.content: content is not specified")
            )
        texts.append(_text_of(content, f"{where}.content" if where else "content")[1])
    return EmbedCall(tuple(texts), batch)


def _same_model(named: Any, model: str | None) -> None:
    """A ``model`` field in the body must name the model in the URL."""
    if named is None or model is None:
        return
    if not isinstance(named, str) or normalise_model(named) != model:
        raise MappingError(
            invalid_argument(
                f"The model in the request body ({named}) does not match the model in the "
                f"URL (models/{model})."
            )
        )
