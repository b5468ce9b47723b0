"""JSON on a call's path: strict where input is hostile, complete where ours is odd."""

from __future__ import annotations

import json

import pytest

from gemini_failover import json_codec


def test_what_orjson_will_not_encode_is_still_encoded() -> None:
    odd = {"maximum": 2**70, 1: "a key that is not a string", "schema": {"b": 1, "a": 2}}
    assert json.loads(json_codec.dumps(odd)) == json.loads(json.dumps(odd))


def test_key_order_is_kept() -> None:
    schema = {"z": 1, "a": {"y": 2, "b": 3}}
    assert json_codec.dumps(schema) == b'{"z":1,"a":{"y":2,"b":3}}'


@pytest.mark.parametrize(
    "document",
    [b"[" * 5000 + b"]" * 5000, b"NaN", b'{"t": Infinity}', b'"\xff"', b"{nope"],
    ids=["deep nesting", "NaN", "Infinity", "not UTF-8", "not JSON"],
)
def test_what_is_not_a_json_document_is_a_decode_error(document: bytes) -> None:
    with pytest.raises(json.JSONDecodeError):
        json_codec.loads(document)
