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
    [
        b"[" * 5000 + b"]" * 5000,
        b"NaN",
        b'{"t": Infinity}',
        b'"\xff"',
        b"{nope",
        b"\xef\xbb\xbf{}",
        "{}".encode("utf-16"),
    ],
    ids=["deep nesting", "NaN", "Infinity", "not UTF-8", "not JSON", "a BOM", "UTF-16"],
)
def test_what_is_not_a_json_document_is_a_decode_error(document: bytes) -> None:
    with pytest.raises(json.JSONDecodeError):
        json_codec.loads(document)


def test_an_integer_beyond_64_bits_is_read_as_the_nearest_float() -> None:
    """As the Gemini API reads a JSON-Schema value's numbers (doubles); within 64 bits
    integers stay exact."""
    value = json_codec.loads(b'{"maximum": 99999999999999999999, "u64": 18446744073709551615}')
    assert value == {"maximum": 1e20, "u64": 2**64 - 1}
    assert isinstance(value["u64"], int)
