"""Deterministic JSON values for a response schema, and values that break it.

Gemini takes a structured-output schema in two dialects and the SDK may send either:

- ``responseSchema``: Gemini's OpenAPI subset (``"type": "OBJECT"``, ``nullable``,
  ``propertyOrdering``, ``anyOf``, ``enum``, ``format``, ``minItems``/``maxItems``,
  ``minimum``/``maximum``, ``minLength``/``maxLength``, ...);
- ``responseJsonSchema``: JSON Schema (lower-case types, type lists, ``$ref``/``$defs``,
  ``anyOf``/``oneOf``/``allOf``, ``const``, ``exclusiveMinimum``, ``prefixItems``, ...).

:func:`value_for_schema` answers a value that validates against either (``pattern`` is
not honoured). :func:`violating_json` answers JSON text that does not.
:func:`openapi_to_json_schema` converts the first dialect to the second so that a
response can be checked with any JSON Schema validator.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["openapi_to_json_schema", "value_for_schema", "violating_json"]

JSON = Any
Schema = dict[str, Any]

_FORMAT_SAMPLES: dict[str, str] = {
    "date-time": "2025-01-01T00:00:00Z",
    "date": "2025-01-01",
    "time": "12:00:00",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "hostname": "example.com",
    "duration": "P1D",
}

_MAX_DEPTH = 32


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _resolve(schema: Any, root: Schema) -> Schema:
    """Follow local $ref pointers and merge allOf; always returns a dict."""
    seen = 0
    while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and seen < _MAX_DEPTH:
        ref: str = schema["$ref"]
        target: Any = root
        if ref.startswith("#"):
            for token in ref[1:].split("/"):
                if not token:
                    continue
                token = token.replace("~1", "/").replace("~0", "~")
                target = target.get(token) if isinstance(target, dict) else None
        else:
            target = None
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**target, **rest} if isinstance(target, dict) else rest
        seen += 1
    if not isinstance(schema, dict):
        return {}
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and all_of:
        merged: Schema = {k: v for k, v in schema.items() if k != "allOf"}
        for part in all_of:
            sub = _resolve(part, root)
            for key, value in sub.items():
                if key == "properties" and isinstance(merged.get("properties"), dict):
                    merged["properties"] = {**merged["properties"], **value}
                elif key == "required" and isinstance(merged.get("required"), list):
                    merged["required"] = [*merged["required"], *value]
                else:
                    merged.setdefault(key, value)
        return merged
    return schema


def _types(schema: Schema) -> list[str]:
    """The JSON types a schema names directly (lower case), in order."""
    raw = schema.get("type")
    names: list[str]
    if isinstance(raw, str):
        names = [raw.lower()]
    elif isinstance(raw, list):
        names = [str(t).lower() for t in raw]
    else:
        names = []
    if schema.get("nullable") is True and "null" not in names:
        names.append("null")
    return names


def _primary_type(schema: Schema) -> str | None:
    names = _types(schema)
    for name in names:
        if name != "null":
            return name
    if names:
        return names[0]
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return None


def value_for_schema(schema: Schema, root: Schema | None = None) -> JSON:
    """A deterministic value that validates against the schema (either dialect)."""
    return _value(schema, root if root is not None else schema, "value", 0, 0)


def _value(schema: Any, root: Schema, name: str, index: int, depth: int) -> JSON:
    s = _resolve(schema, root)
    if depth > _MAX_DEPTH:
        return None
    if "const" in s:
        return s["const"]
    enum = s.get("enum")
    if isinstance(enum, list) and enum:
        return enum[index % len(enum)]
    for key in ("anyOf", "oneOf"):
        options = s.get(key)
        if isinstance(options, list) and options:
            chosen = next(
                (o for o in options if _primary_type(_resolve(o, root)) not in (None, "null")),
                options[0],
            )
            base = {k: v for k, v in s.items() if k not in ("anyOf", "oneOf")}
            return _value({**base, **_resolve(chosen, root)}, root, name, index, depth + 1)
    kind = _primary_type(s)
    if kind == "object":
        return _object(s, root, depth)
    if kind == "array":
        return _array(s, root, name, depth)
    if kind == "integer":
        return _integer(s, index)
    if kind == "number":
        return _number(s, index)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(s, name, index)


def _object(s: Schema, root: Schema, depth: int) -> dict[str, JSON]:
    props = s.get("properties")
    props = props if isinstance(props, dict) else {}
    order = s.get("propertyOrdering") or s.get("property_ordering")
    names: list[str] = [n for n in order if n in props] if isinstance(order, list) else []
    names += [n for n in props if n not in names]
    required = s.get("required")
    for extra in required if isinstance(required, list) else []:
        if extra not in names:
            names.append(extra)
    out: dict[str, JSON] = {}
    for prop in names:
        out[prop] = _value(props.get(prop, {}), root, prop, 0, depth + 1)
    min_props = int(_num(s.get("minProperties")) or 0)
    extra_index = 1
    while len(out) < min_props and s.get("additionalProperties") is not False:
        out[f"extra_{extra_index}"] = f"sample extra {extra_index}"
        extra_index += 1
    return out


def _array(s: Schema, root: Schema, name: str, depth: int) -> list[JSON]:
    low = _num(s.get("minItems"))
    high = _num(s.get("maxItems"))
    size = max(1, int(low or 0))
    if high is not None:
        size = min(size, int(high))
    prefix = s.get("prefixItems")
    items = s.get("items", {})
    out: list[JSON] = []
    for i in range(size):
        if isinstance(prefix, list) and i < len(prefix):
            sub = prefix[i]
        elif isinstance(items, list):  # draft 4 tuple form
            sub = items[i] if i < len(items) else {}
        else:
            sub = items if isinstance(items, dict) else {}
        out.append(_value(sub, root, name, i, depth + 1))
    return out


def _bounds(s: Schema) -> tuple[float | None, bool, float | None, bool]:
    low, high = _num(s.get("minimum")), _num(s.get("maximum"))
    low_excl = high_excl = False
    ex_min, ex_max = s.get("exclusiveMinimum"), s.get("exclusiveMaximum")
    if ex_min is True:  # OpenAPI 3.0 / draft 4: a flag on minimum
        low_excl = low is not None
    elif _num(ex_min) is not None:
        value = _num(ex_min)
        assert value is not None
        if low is None or value >= low:
            low, low_excl = value, True
    if ex_max is True:
        high_excl = high is not None
    elif _num(ex_max) is not None:
        value = _num(ex_max)
        assert value is not None
        if high is None or value <= high:
            high, high_excl = value, True
    return low, low_excl, high, high_excl


def _integer(s: Schema, index: int) -> int:
    low, low_excl, high, high_excl = _bounds(s)
    lo = None if low is None else (math.floor(low) + 1 if low_excl else math.ceil(low))
    hi = None if high is None else (math.ceil(high) - 1 if high_excl else math.floor(high))
    if lo is not None and hi is not None:
        value = (lo + hi) // 2
    elif lo is not None:
        value = lo + index
    elif hi is not None:
        value = min(hi, 1) - index
    else:
        value = 1 + index
    step = _num(s.get("multipleOf"))
    if step and step > 0 and float(step).is_integer():
        m = int(step)
        up = -(-value // m) * m
        value = up if hi is None or up <= hi else (value // m) * m
    return value


def _number(s: Schema, index: int) -> float:
    low, low_excl, high, high_excl = _bounds(s)
    if low is not None and high is not None:
        value = (low + high) / 2
    elif low is not None:
        value = low + (1.0 if low_excl else 0.0) + index
    elif high is not None:
        value = high - (1.0 if high_excl else 0.0) - index
    else:
        value = 0.5 + index
    step = _num(s.get("multipleOf"))
    if step and step > 0:
        value = math.ceil(value / step) * step
    return value


def _string(s: Schema, name: str, index: int) -> str:
    fmt = s.get("format")
    text = _FORMAT_SAMPLES.get(fmt, "") if isinstance(fmt, str) else ""
    if not text:
        text = f"sample {name}" + (f" {index + 1}" if index else "")
    min_len = int(_num(s.get("minLength")) or 0)
    max_len = _num(s.get("maxLength"))
    if len(text) < min_len:
        text += "x" * (min_len - len(text))
    if max_len is not None and len(text) > int(max_len):
        text = text[: int(max_len)]
    return text


def _allowed_types(s: Schema, root: Schema, depth: int = 0) -> set[str] | None:
    """All JSON types a value may have under s, or None when any type is allowed."""
    if depth > _MAX_DEPTH:
        return None
    if "const" in s or isinstance(s.get("enum"), list):
        values = [s["const"]] if "const" in s else list(s["enum"])
        return {_json_type(v) for v in values}
    for key in ("anyOf", "oneOf"):
        options = s.get(key)
        if isinstance(options, list) and options:
            union: set[str] = set()
            for option in options:
                sub = _allowed_types(_resolve(option, root), root, depth + 1)
                if sub is None:
                    return None
                union |= sub
            return union
    names = set(_types(s))
    if not names:
        kind = _primary_type(s)
        return {kind} if kind else None
    if "number" in names:
        names.add("integer")
    return names


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


_WRONG_VALUES: tuple[tuple[str, JSON], ...] = (
    ("string", "unexpected text"),
    ("integer", 12345),
    ("object", {"unexpected": True}),
    ("array", ["unexpected"]),
    ("boolean", False),
    ("null", None),
)


def violating_json(schema: Schema, root: Schema | None = None) -> str:
    """JSON text (or, for a schema that allows anything, non-JSON text) that fails it.

    An object schema with required properties loses its first required property; any other
    schema gets a value of a type it does not allow.
    """
    root = root if root is not None else schema
    s = _resolve(schema, root)
    allowed = _allowed_types(s, root)
    required = s.get("required")
    if allowed == {"object"} and isinstance(required, list) and required:
        value = _object(s, root, 0)
        value.pop(required[0], None)
        return json.dumps(value)
    if allowed is None:
        return '{"unterminated": '
    for type_name, wrong in _WRONG_VALUES:
        if type_name not in allowed and not (type_name == "integer" and "number" in allowed):
            return json.dumps(wrong)
    return '{"unterminated": '


def openapi_to_json_schema(schema: Any) -> Any:
    """Convert Gemini's OpenAPI-style responseSchema into an equivalent JSON Schema.

    Upper-case types become lower case, ``nullable: true`` becomes a type list with
    ``"null"``, and Gemini-only keys (``propertyOrdering``, ``example``) are dropped.
    """
    if isinstance(schema, list):
        return [openapi_to_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("propertyOrdering", "property_ordering", "nullable", "example"):
            continue
        if key == "type" and isinstance(value, str):
            out["type"] = value.lower()
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {k: openapi_to_json_schema(v) for k, v in value.items()}
        elif key in ("items", "anyOf", "oneOf", "allOf", "prefixItems", "not"):
            out[key] = openapi_to_json_schema(value)
        elif (
            key
            in ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties")
            and isinstance(value, str)
            and value.isdigit()
        ):
            out[key] = int(value)
        else:
            out[key] = value
    if schema.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out
