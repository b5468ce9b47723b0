"""Strict arguments, as a property over every tool and every parameter: an unknown
argument, a missing required one, or a value of the wrong JSON type is rejected before
any upstream call, with the project's own one-line message naming the argument, what
was given and what is allowed (never a pydantic dump, never the SDK's crash text)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp.types import TextContent

from gemini_failover.tools.arguments import given as rendered
from gemini_failover.tools.handlers import build_tools
from tests.e2e.test_properties import FAST, Env, env

__all__ = ["env"]  # the module-scoped fixture: one server for every example


async def _unused() -> Any:  # pragma: no cover - tools are only listed here
    raise AssertionError


SCHEMAS: dict[str, dict[str, Any]] = {t.name: t.parameters for t in build_tools(_unused, _unused)}

#: A valid call of each tool, to break one argument of.
VALID: dict[str, dict[str, Any]] = {
    "gemini_generate": {"prompt": "hello"},
    "gemini_chat": {"turns": [{"role": "user", "text": "hello"}]},
    "gemini_generate_json": {"prompt": "hello", "schema": {"type": "object"}},
    "gemini_count_tokens": {"text": "hello"},
    "gemini_embed": {"texts": ["hello"]},
    "gemini_list_models": {},
    "gemini_health": {},
}

OUR_MESSAGES = ("Invalid argument ", "Unknown argument ", "Missing argument ", "Unknown key ")
JSON_TYPES = ("string", "number", "integer", "boolean", "array", "object", "null")


def _not_json_text(s: str) -> bool:
    """A string the SDK will not pre-parse into another type."""
    try:
        json.loads(s)
    except ValueError:
        return True
    return False


def value_of(kind: str) -> st.SearchStrategy[Any]:
    leaves = st.one_of(st.integers(-5, 5), st.text(max_size=3).filter(_not_json_text))
    return {
        "string": st.text(max_size=8).filter(_not_json_text),
        "number": st.floats(-10, 10, allow_nan=False).filter(lambda f: not f.is_integer()),
        "integer": st.integers(-10, 10),
        "boolean": st.booleans(),
        "array": st.lists(leaves, max_size=3),
        "object": st.dictionaries(st.text(max_size=3), leaves, max_size=2),
        "null": st.none(),
    }[kind]


def wrong_value(schema: dict[str, Any], required: bool) -> st.SearchStrategy[Any]:
    """A JSON value whose type the schema does not allow (null: only where the argument
    is required, since null for an optional argument means "omitted")."""
    declared = schema["type"]
    allowed = {declared} | ({"integer"} if declared == "number" else set())
    wrong = [t for t in JSON_TYPES if t not in allowed and (required or t != "null")]
    return st.sampled_from(wrong).flatmap(value_of)


@st.composite
def mistyped(draw: st.DrawFn) -> tuple[str, dict[str, Any], str]:
    """(tool, arguments, the argument's name as the message must give it)."""
    tool = draw(st.sampled_from([t for t in SCHEMAS if SCHEMAS[t]["properties"]]))
    schema = SCHEMAS[tool]
    name = draw(st.sampled_from(sorted(schema["properties"])))
    prop = schema["properties"][name]
    arguments = dict(VALID[tool])
    required = name in schema.get("required", ())
    if prop["type"] == "array" and draw(st.booleans()):
        # one item of the list has the wrong type
        item = draw(wrong_value(prop["items"], required=True))
        arguments[name] = [item]
        return tool, arguments, f"{name}[0]"
    arguments[name] = draw(wrong_value(prop, required))
    return tool, arguments, name


identifiers = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)


@st.composite
def unknown(draw: st.DrawFn) -> tuple[str, dict[str, Any], str]:
    tool = draw(st.sampled_from(sorted(SCHEMAS)))
    name = draw(identifiers.filter(lambda n: n not in SCHEMAS[tool]["properties"]))
    arguments = {**VALID[tool], name: draw(value_of(draw(st.sampled_from(JSON_TYPES))))}
    return tool, arguments, name


def check_own_message(env: Env, tool: str, arguments: dict[str, Any], argument: str) -> str:
    before = env.upstream_calls()
    result = env.call(tool, arguments)
    assert env.upstream_calls() == before, "invalid arguments reached Gemini"
    assert result.is_error, (tool, arguments)
    content = result.content[0]
    assert isinstance(content, TextContent)
    text = content.text
    assert "\n" not in text
    assert text.startswith(OUR_MESSAGES)
    assert f" {argument} for {tool}" in text, text
    for foreign in ("Error executing tool", "validation error", "pydantic", "type="):
        assert foreign not in text, text
    return text


@settings(FAST, max_examples=150)
@given(case=mistyped())
def test_a_value_of_the_wrong_type_is_rejected_with_our_message(
    env: Env, case: tuple[str, dict[str, Any], str]
) -> None:
    tool, arguments, argument = case
    text = check_own_message(env, tool, arguments, argument)
    assert "got " in text and "allowed: " in text


@settings(FAST, max_examples=80)
@given(case=unknown())
def test_an_unknown_argument_is_rejected_with_our_message(
    env: Env, case: tuple[str, dict[str, Any], str]
) -> None:
    tool, arguments, argument = case
    text = check_own_message(env, tool, arguments, argument)
    assert f"(got {rendered(arguments[argument])})" in text


@pytest.mark.parametrize("tool", sorted(t for t in SCHEMAS if SCHEMAS[t].get("required")))
def test_a_missing_argument_is_named(env: Env, tool: str) -> None:
    missing = SCHEMAS[tool]["required"][0]
    arguments = {k: v for k, v in VALID[tool].items() if k != missing}
    text = check_own_message(env, tool, arguments, missing)
    assert text.startswith(f"Missing argument {missing} for {tool}; allowed: ")


def test_an_unknown_key_in_a_chat_turn_is_named(env: Env) -> None:
    turns = [{"role": "user", "text": "hi", "name": "me"}]
    text = check_own_message(env, "gemini_chat", {"turns": turns}, "turns[0].name")
    assert text.startswith("Unknown key turns[0].name for gemini_chat")
    assert "takes the keys role, text" in text
