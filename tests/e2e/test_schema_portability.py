"""tools/list passes a strict schema-portability check (zero errors, zero warnings).

MCP clients hand the input schemas to a language model's tool-calling API (Anthropic,
OpenAI strict mode, Gemini function declarations) and validate results against the
output schemas (ajv in the TypeScript SDK, jsonschema in Python). Those consumers
support different subsets of JSON Schema; the rules below keep to the common subset,
the same ground the MCP Inspector's ``--strict`` mode covers (it needs Node >= 22, so
the check is written here in Python and runs in ``make test``):

1. Tool names: 1-64 of [A-Za-z0-9_-] (the strictest client limit); a title and a
   description on every tool.
2. Every schema is valid JSON Schema 2020-12 with an object root.
3. No ``$ref``/``$defs``, ``anyOf``/``oneOf``/``allOf``/``not``, ``if``/``then``/``else``,
   ``patternProperties``, ``prefixItems``: OpenAI strict mode and Gemini function
   declarations reject or misread them.
4. Every object is closed (``additionalProperties: false``) and lists its properties;
   the only exception is an argument that is a free-form document by design (the JSON
   Schema given to gemini_generate_json), which must say ``additionalProperties: true``
   explicitly and describe itself.
5. Every property is typed (no schema that constrains nothing: the Inspector's
   warning). Input properties have a single type; output properties may list several
   JSON types (a value that can be any JSON).
6. Every array says what its items are; ``required`` names only listed properties.
7. Every input property has a description (it is what the model reads); defaults, if
   any, are valid values (no ``default: null`` on a number).
8. tools/list stays lean: under ``BUDGET`` bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator
from mcp import Client

#: Bytes of the whole tools/list result (compact JSON). It was 20,068 before the
#: schemas were made lean; most of it is now the descriptions the model reads. The
#: files and urls arguments and the files report in four outputSchemas add ~5 KB; the
#: generation tools' options (google_search, thinking, model, failover, conversation_id
#: on three tools, citations in their output schemas) ~3.5 KB more.
BUDGET = 24_000

FORBIDDEN = (
    "$ref",
    "$defs",
    "definitions",
    "anyOf",
    "oneOf",
    "allOf",
    "not",
    "if",
    "then",
    "else",
    "patternProperties",
    "prefixItems",
    "$dynamicRef",
)
JSON_TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}
NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: (tool, schema kind, property path) of free-form documents.
OPEN_BY_DESIGN = {("gemini_generate_json", "input", "schema")}


def _walk(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{name}" if path else name)
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")


def schema_problems(tool: str, kind: str, schema: dict[str, Any]) -> list[str]:
    """Every rule (2-7) this schema breaks, as readable lines."""
    problems: list[str] = []
    where = f"{tool} {kind}Schema"
    Draft202012Validator.check_schema(schema)
    if schema.get("type") != "object":
        problems.append(f"{where}: the root is not an object")
    for path, node in _walk(schema, ""):
        at = f"{where} at {path or '(root)'}"
        for keyword in FORBIDDEN:
            if keyword in node:
                problems.append(f"{at}: uses {keyword}")
        kind_of = node.get("type")
        if kind_of is None:
            problems.append(f"{at}: constrains nothing (no type)")
        elif isinstance(kind_of, list):
            if kind == "input" or not set(kind_of) <= JSON_TYPES:
                problems.append(f"{at}: a list of types {kind_of}")
        elif kind_of not in JSON_TYPES:
            problems.append(f"{at}: unknown type {kind_of!r}")
        if kind_of == "object":
            open_ = node.get("additionalProperties")
            if (tool, kind, path) in OPEN_BY_DESIGN:
                if open_ is not True or not node.get("description"):
                    problems.append(f"{at}: a free-form object must say so and describe itself")
            elif open_ is not False:
                problems.append(f"{at}: not closed (additionalProperties: {open_!r})")
            elif "properties" not in node:
                problems.append(f"{at}: lists no properties")
            missing = set(node.get("required", ())) - set(node.get("properties", {}))
            if missing:
                problems.append(f"{at}: requires unlisted {sorted(missing)}")
        if kind_of == "array" and not isinstance(node.get("items"), dict):
            problems.append(f"{at}: an array without items")
        described = bool(str(node.get("description", "")).strip())
        # (an item of a list is described by its list)
        if path and kind == "input" and not described and not path.endswith("[]"):
            problems.append(f"{at}: no description")
        if "default" in node and not Draft202012Validator(node).is_valid(node["default"]):
            problems.append(f"{at}: default {node['default']!r} is not a valid value")
    return problems


def tool_problems(tool: dict[str, Any]) -> list[str]:
    name = tool.get("name", "")
    problems = [] if NAME.match(name) else [f"{name!r}: not a portable tool name"]
    for field in ("title", "description"):
        if not str(tool.get(field, "")).strip():
            problems.append(f"{name}: no {field}")
    problems += schema_problems(name, "input", tool["inputSchema"])
    if tool.get("outputSchema") is not None:
        problems += schema_problems(name, "output", tool["outputSchema"])
    return problems


async def test_tools_list_passes_the_portability_check(client: Client) -> None:
    listed = await client.list_tools()
    tools = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in listed.tools]
    assert len(tools) == 7
    problems = [p for tool in tools for p in tool_problems(tool)]
    assert problems == []
    size = len(json.dumps(tools, separators=(",", ":")))
    assert size < BUDGET, f"tools/list is {size:,} bytes"


def test_the_check_catches_what_clients_choke_on() -> None:
    """The checker itself: the schemas this server used to publish fail it."""
    before = {
        "name": "gemini_generate_json",
        "title": "t",
        "description": "d",
        "inputSchema": {
            "type": "object",
            "properties": {
                "prompt": {"type": "string", "description": "p"},
                "temperature": {
                    "anyOf": [{"type": "number"}, {"type": "null"}],
                    "default": None,
                    "description": "t",
                },
                "turns": {"type": "array", "items": {"$ref": "#/$defs/ChatTurn"}},
            },
            "$defs": {"ChatTurn": {"type": "object", "properties": {}}},
        },
        "outputSchema": {"type": "object", "properties": {"value": {"description": "v"}}},
    }
    problems = "\n".join(tool_problems(before))
    assert "(root): not closed" in problems
    assert "(root): uses $defs" in problems
    assert "temperature: uses anyOf" in problems
    assert "temperature: constrains nothing" in problems
    assert "turns: no description" in problems
    assert "turns[]: uses $ref" in problems
    assert "outputSchema at value: constrains nothing" in problems
