"""Strict tool arguments: closed, portable input schemas and one-line messages.

The MCP SDK derives each tool's input schema from the handler's signature and
validates arguments with a lax pydantic model: unknown arguments are dropped, ``true``
becomes 1.0, and a violation reaches the model as a pydantic dump. Here:

- ``portable_schema`` rewrites the derived schema into the one published in
  tools/list: every object closed (``additionalProperties: false``), no ``anyOf``
  (an optional parameter is simply not required), no ``$ref``/``$defs`` (inlined), no
  titles or ``default: null``.
- ``StrictTool`` validates the arguments against that published schema (jsonschema,
  JSON types: a boolean is not a number) before the SDK's own validation, and answers
  a violation with one line naming the argument, what was given and what is allowed.
  It also returns every deliberate ``ToolError`` as the tool's error result without
  the SDK's "Error executing tool X:" prefix: that prefix (with nothing after it) is
  then left to crashes, which is what the documentation says it means.

Hand-written on purpose: jsonschema finds the violation; the messages (which need the
argument's own schema to say what is allowed) are this project's.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, TextContent

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from mcp.server.mcpserver import Context

log = logging.getLogger("gemini_failover.tools")

#: Keywords dropped from published schemas: noise for the model (titles) or
#: constructs that some clients reject or misread.
_DROPPED = ("title", "$defs", "definitions")

#: Longest rendering of a given value in a message.
_GIVEN_CHARS = 40


# -- the published schema ---------------------------------------------------------------


def portable_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The pydantic-derived input schema, closed and without refs or unions."""
    defs: dict[str, Any] = dict(schema.get("$defs", {}))
    return _rewrite(schema, defs)


def _rewrite(node: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target = defs[str(node["$ref"]).rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _rewrite(merged, defs)
    arms = node.get("anyOf")
    if arms is not None:
        # Optional[X] = X | None: published as X, and "not required" says it may be
        # omitted. Other unions are not used by these tools.
        concrete = [a for a in arms if a.get("type") != "null"]
        if len(concrete) != 1:
            raise ValueError(f"unsupported union in a tool schema: {arms}")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        return _rewrite({**concrete[0], **rest}, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED or (key == "default" and value is None):
            continue
        if key == "properties":
            out[key] = {name: _rewrite(sub, defs) for name, sub in value.items()}
        elif key == "items" and isinstance(value, Mapping):
            out[key] = _rewrite(value, defs)
        else:
            out[key] = value
    if out.get("type") == "object" and "additionalProperties" not in out:
        out.setdefault("properties", {})
        out["additionalProperties"] = False
    return out


# -- what is allowed, in words ------------------------------------------------------------


def _number(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def allowed(schema: Mapping[str, Any]) -> str:
    """What a value of ``schema`` may be, in a few words."""
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(v) for v in schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        text = "a non-empty string" if schema.get("minLength", 0) >= 1 else "a string"
        if "maxLength" in schema:
            text += f" of at most {_number(schema['maxLength'])} characters"
        return text
    if kind in ("number", "integer"):
        noun = "a number" if kind == "number" else "a whole number"
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and high is not None:
            return f"{noun} from {_number(low)} to {_number(high)}"
        if low is not None:
            return f"{noun} of at least {_number(low)}"
        return noun
    if kind == "boolean":
        return "true or false"
    if kind == "array":
        low, high = schema.get("minItems"), schema.get("maxItems")
        if low is not None and high is not None:
            size = f"{low} to {high} items"
        elif high is not None:
            size = f"at most {high} items"
        else:
            size = "items"
        return f"a list of {size}, each {allowed(schema.get('items', {}))}"
    if kind == "object":
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is False and props:
            return "an object with the keys " + ", ".join(props)
        return "a JSON object"
    return "a JSON value"


def given(value: Any) -> str:
    """The value as the caller sent it (JSON, cut short)."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=True)
        if not _valid_text(text):  # an unpaired surrogate: show it escaped
            text = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > _GIVEN_CHARS:
        text = text[: _GIVEN_CHARS - 1] + "…"
    return text


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# -- checking ---------------------------------------------------------------------------


def _valid_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _not_json(value: Any, path: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
    """Where a NaN, an infinity or an unpaired surrogate hides: not JSON, but a client
    (in-process, or a JSON parser that allows them) can send them."""
    if isinstance(value, float) and not math.isfinite(value):
        return path
    if isinstance(value, str) and not _valid_text(value):
        return path
    if isinstance(value, Mapping):
        for key, sub in value.items():
            if isinstance(key, str) and not _valid_text(key):
                return path
            if (found := _not_json(sub, (*path, key))) is not None:
                return found
    if isinstance(value, list | tuple):
        for i, sub in enumerate(value):
            if (found := _not_json(sub, (*path, i))) is not None:
                return found
    return None


def _at(schema: Mapping[str, Any], path: Iterable[Any]) -> Mapping[str, Any]:
    """The subschema at ``path`` ({} inside a free-form object)."""
    node: Mapping[str, Any] = schema
    for part in path:
        key = "items" if isinstance(part, int) else "properties"
        node = node.get(key, {})
        if not isinstance(part, int):
            node = node.get(part, {})
    return node


def problem(tool: str, schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> str | None:
    """One line about the first invalid argument, or None when they are all valid."""
    where = _not_json(arguments)
    if where is not None:
        bad = _dig(arguments, where)
        what = "finite numbers" if isinstance(bad, float) else "valid Unicode text"
        return (
            f"Invalid argument {_path(where) or '(arguments)'} for {tool}: got {given(bad)} "
            f"(not valid JSON); allowed: {what}."
        )
    # Imported here: listing the tools must not pay for jsonschema (the first call does,
    # or the warm-up after start-up).
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    error = best_match(Draft202012Validator(schema).iter_errors(dict(arguments)))
    if error is None:
        return None
    return describe(tool, schema, error)


def _dig(value: Any, path: Iterable[Any]) -> Any:
    for part in path:
        value = value[part]
    return value


def describe(tool: str, schema: Mapping[str, Any], error: ValidationError) -> str:
    path = tuple(error.absolute_path)
    instance = error.instance
    if error.validator == "additionalProperties" and isinstance(instance, Mapping):
        known = list(error.schema.get("properties", {}))
        extra = next(k for k in instance if k not in known)
        name = _path((*path, extra))
        if not path:
            takes = ", ".join(known) if known else "no arguments"
            return (
                f"Unknown argument {name} for {tool} (got {given(instance[extra])}); "
                f"it takes: {takes}."
            )
        return (
            f"Unknown key {name} for {tool} (got {given(instance[extra])}); "
            f"{_path(path)} takes the keys {', '.join(known)}."
        )
    if error.validator == "required" and isinstance(instance, Mapping):
        missing = next(r for r in error.validator_value if r not in instance)
        sub = error.schema["properties"][missing]
        return f"Missing argument {_path((*path, missing))} for {tool}; allowed: {allowed(sub)}."
    sub = _at(schema, path) if path else schema
    optional = len(path) == 1 and path[0] not in schema.get("required", ())
    return (
        f"Invalid argument {_path(path) or '(arguments)'} for {tool}: got {given(instance)}; "
        f"allowed: {allowed(sub)}{' (or omit it)' if optional else ''}."
    )


def error_result(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


class StrictTool(Tool):
    """A Tool whose arguments must fit its published (closed) schema exactly, and
    whose deliberate errors reach the model as the tool's own message."""

    async def run(
        self,
        arguments: dict[str, Any],
        context: Context[Any, Any],
        convert_result: bool = False,
    ) -> Any:
        # The SDK's own pre-parsing first (a list sent as a JSON string, which some
        # clients do), so that what is checked is what the handler would receive.
        parsed = self.fn_metadata.pre_parse_json(arguments)
        # An explicit null for an optional argument means "omitted".
        optional = set(self.parameters["properties"]) - set(self.parameters.get("required", ()))
        parsed = {k: v for k, v in parsed.items() if v is not None or k not in optional}
        message = problem(self.name, self.parameters, parsed)
        if message is not None:
            log.info("tool %s rejected its arguments: %s", self.name, message)
            return error_result(message)
        try:
            return await super().run(parsed, context, convert_result)
        except UnexpectedToolError:
            raise  # a bug: the SDK logs it and answers "Error executing tool X"
        except ToolError as exc:
            cause = exc.__cause__
            if not isinstance(cause, ToolError):
                raise
            log.info("tool %s failed: %s", self.name, cause)
            return error_result(str(cause))
