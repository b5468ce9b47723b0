"""The emulator's pure parts: deterministic text, chunking, schema values, token buckets."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gemini_failover.emulator import (
    expected_text,
    openapi_to_json_schema,
    overlap_start,
    stream_chunks_for,
    value_for_schema,
    violating_json,
)
from gemini_failover.emulator.faults import ActiveFault, ErrorReply, RequestFacts
from gemini_failover.emulator.quota import QUOTA_TIMEZONE
from gemini_failover.emulator.spec import RateLimitFault
from gemini_failover.emulator.wire.errors import format_retry_delay, retry_after_header

texts = st.text(alphabet=st.sampled_from("ab \n\t."), max_size=60)


@given(text=texts, n=st.integers(min_value=1, max_value=12))
def test_stream_chunks_cover_the_text_on_word_boundaries(text: str, n: int) -> None:
    chunks = stream_chunks_for(text, n)
    assert "".join(chunks) == text
    words = len(text.split())
    assert len(chunks) == (0 if not text else max(1, min(n, words)))
    assert all(chunks)
    for chunk in chunks[1:]:
        assert not chunk[0].isspace()  # every chunk after the first starts a word


@given(prompt=st.text(max_size=40))
@settings(max_examples=50)
def test_expected_text_shape(prompt: str) -> None:
    text = expected_text(prompt)
    assert 40 <= len(text.split()) <= 80
    assert text.endswith(".")
    assert text == expected_text(prompt)
    assert text[0].isupper()
    words = [w.strip(".").lower() for w in text.split()]
    for i, word in enumerate(words):  # no repeats within 8 words: overlaps are unambiguous
        assert word not in words[max(0, i - 7) : i]


def test_expected_text_is_stable_across_processes() -> None:
    # Fixed seed derivation (blake2b): this must never change between runs or machines.
    assert expected_text("hello").startswith("Agent append simple element column")


@pytest.mark.parametrize(
    ("prefix", "words", "expected"),
    [
        ("one two three four", 3, "two three four"),
        ("one two three four ", 3, "two three four "),
        ("one two", 3, "one two"),
        ("  ", 3, "  "),
        ("one two", 0, ""),
    ],
)
def test_overlap_start(prefix: str, words: int, expected: str) -> None:
    assert prefix[overlap_start(prefix, words) :] == expected


def _json_schemas() -> st.SearchStrategy[dict[str, Any]]:
    leaf = st.one_of(
        st.builds(
            lambda lo, span: {"type": "integer", "minimum": lo, "maximum": lo + span},
            st.integers(-50, 50),
            st.integers(0, 10),
        ),
        st.builds(
            lambda lo, excl: (
                {"type": "number", "exclusiveMinimum": lo}
                if excl
                else {"type": "number", "minimum": lo}
            ),
            st.floats(-100, 100, allow_nan=False),
            st.booleans(),
        ),
        st.builds(
            lambda lo, span: {"type": "string", "minLength": lo, "maxLength": lo + span},
            st.integers(0, 30),
            st.integers(0, 5),
        ),
        st.sampled_from(
            [
                {"type": "boolean"},
                {"type": "string", "format": "date-time"},
                {"enum": ["x", "y"]},
                {"type": "integer", "multipleOf": 5, "minimum": 1},
                {"type": ["string", "null"]},
            ]
        ),
    )

    def extend(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
        props = st.dictionaries(st.sampled_from("abcdef"), children, min_size=1, max_size=4)
        return st.one_of(
            props.map(
                lambda p: {
                    "type": "object",
                    "properties": p,
                    "required": sorted(p),
                    "additionalProperties": False,
                }
            ),
            st.builds(
                lambda items, low: {"type": "array", "items": items, "minItems": low},
                children,
                st.integers(0, 3),
            ),
            children.map(lambda c: {"anyOf": [c, {"type": "null"}]}),
        )

    return st.recursive(leaf, extend, max_leaves=8)


@given(schema=_json_schemas())
@settings(max_examples=150)
def test_values_validate_and_violations_do_not(schema: dict[str, Any]) -> None:
    jsonschema.validate(value_for_schema(schema), schema)
    broken = violating_json(schema)
    try:
        value = json.loads(broken)
    except ValueError:
        return  # not even JSON: also a violation
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(value, schema)


def test_openapi_dialect() -> None:
    schema = {
        "type": "OBJECT",
        "properties": {
            "name": {"type": "STRING", "nullable": True},
            "kind": {"type": "STRING", "enum": ["a", "b"]},
            "n": {"type": "INTEGER", "minimum": 3, "maximum": 4},
            "items": {"type": "ARRAY", "items": {"type": "NUMBER"}, "minItems": "2"},
        },
        "required": ["name", "kind", "n", "items"],
        "propertyOrdering": ["n", "name", "kind", "items"],
    }
    value = value_for_schema(schema)
    assert list(value) == ["n", "name", "kind", "items"]
    assert value["kind"] == "a"
    assert len(value["items"]) == 2
    converted = openapi_to_json_schema(schema)
    assert converted["properties"]["name"]["type"] == ["string", "null"]
    jsonschema.validate(value, converted)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(violating_json(schema)), converted)


def test_refs_are_resolved() -> None:
    schema = {
        "$defs": {
            "Leaf": {"type": "object", "properties": {"v": {"type": "integer"}}, "required": ["v"]}
        },
        "type": "object",
        "properties": {
            "leaf": {"$ref": "#/$defs/Leaf"},
            "leaves": {"type": "array", "items": {"$ref": "#/$defs/Leaf"}},
        },
        "required": ["leaf", "leaves"],
    }
    value = value_for_schema(schema)
    jsonschema.validate(value, schema)
    assert value["leaf"] == {"v": 1}


@pytest.mark.parametrize(
    ("seconds", "text", "header"),
    [(12, "12s", "12"), (0.5, "0.5s", "1"), (29.0004, "29.001s", "30"), (0, "0s", "1")],
)
def test_retry_delay_format(seconds: float, text: str, header: str) -> None:
    assert format_retry_delay(seconds) == text
    assert retry_after_header(seconds) == header


def _bucket(rpm: float, quota: str = "minute") -> ActiveFault:
    return ActiveFault.of(
        RateLimitFault.model_validate({"kind": "rate_limit", "rpm": rpm, "quota": quota})
    )


FACTS = RequestFacts(model="m", action="generate")


def test_minute_bucket_refills_continuously() -> None:
    bucket = _bucket(60)  # capacity 60, one token per second
    assert all(bucket.evaluate(FACTS, 100.0, 0.0) is None for _ in range(60))
    limited = bucket.evaluate(FACTS, 100.0, 0.0)
    assert isinstance(limited, ErrorReply)
    assert limited.code == 429
    delay = limited.body["error"]["details"][-1]["retryDelay"]
    assert delay == "1s"
    assert dict(limited.headers)["retry-after"] == "1"
    assert isinstance(bucket.evaluate(FACTS, 100.5, 0.0), ErrorReply)  # half a token
    assert bucket.evaluate(FACTS, 101.0, 0.0) is None
    assert isinstance(bucket.evaluate(FACTS, 101.0, 0.0), ErrorReply)


def test_day_bucket_resets_at_pacific_midnight() -> None:
    bucket = _bucket(2, "day")
    evening = dt.datetime(2025, 3, 1, 23, 59, 30, tzinfo=QUOTA_TIMEZONE).timestamp()
    assert bucket.evaluate(FACTS, 0.0, evening) is None
    assert bucket.evaluate(FACTS, 0.0, evening) is None
    limited = bucket.evaluate(FACTS, 0.0, evening)
    assert isinstance(limited, ErrorReply)
    assert limited.body["error"]["details"][-1]["retryDelay"] == "30s"
    assert limited.headers == ()
    assert bucket.evaluate(FACTS, 0.0, evening + 31) is None  # a new quota day


def test_zero_rpm_always_limits() -> None:
    bucket = _bucket(0)
    limited = bucket.evaluate(FACTS, 0.0, 0.0)
    assert isinstance(limited, ErrorReply)
    assert math.isclose(float(limited.body["error"]["details"][-1]["retryDelay"][:-1]), 60.0)
