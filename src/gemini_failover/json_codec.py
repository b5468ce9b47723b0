"""JSON on a call's path: request bodies in, Gemini requests out, answers in and out.

orjson, because a gateway call decodes and encodes four documents and the standard
library's codec, with its Python wrappers, costs several microseconds each where orjson
costs a fraction of one. It is also the stricter parser, which is what hostile input
wants: nesting deeper than 1024 levels is a decode error (the standard library raises
``RecursionError`` instead, which escaped as a 500), and so are ``NaN`` and
``Infinity``, which are not JSON and which the Gemini API refuses too.

Both functions raise what the standard library's do: :func:`loads` a
``json.JSONDecodeError`` (a ``ValueError``) for anything that is not a JSON document in
UTF-8 (RFC 8259: no byte-order mark, not UTF-16). An integer beyond 64 bits is read as
the nearest float, as the Gemini API reads every number of a JSON-Schema value (a
``google.protobuf.Value`` holds doubles) and as its integer fields refuse it; the
answers it sends have none (proto3 JSON writes 64-bit integers as strings).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["dumps", "loads"]


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    return orjson.loads(data)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, keys in their order. What orjson will not encode (an integer
    beyond 64 bits, a key that is not a string) is encoded by the standard library."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value).encode()
