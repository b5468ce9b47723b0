"""The JSON Schema guard: no reference ever leaves the schema (a real HTTP listener on
loopback records every connection: there must be none), hostile expansion is refused
statically, and the worker process stops what runs past its deadline."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from jsonschema.validators import Draft202012Validator

from gemini_failover import jsonschema_worker
from gemini_failover.jsonschema_guard import (
    MAX_SCHEMA_DEPTH,
    MAX_SCHEMA_EXPANSION,
    AnswerInvalid,
    SchemaRefused,
    encode,
    prepare,
    validate_answer,
)


class Listener:
    """An HTTP server on loopback that answers every GET with a schema and records
    every connection it accepts."""

    def __init__(self) -> None:
        connections: list[str] = []
        self.connections = connections

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = b'{"type": "string"}'
                self.send_response(200)
                self.send_header("content-type", "application/schema+json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        class Server(ThreadingHTTPServer):
            def verify_request(self, request: Any, client_address: Any) -> bool:
                connections.append(str(client_address))
                return True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Listener:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    with Listener() as srv:
        yield srv


def check(schema: Any) -> Any:
    """prepare(encode(schema)): the whole check, synchronously."""
    return prepare(encode(schema))


def allof_bomb(levels: int) -> dict[str, Any]:
    """~1.5 KB at 20 levels, 2**20 evaluations of the innermost schema per value."""
    defs: dict[str, Any] = {"a0": {"type": "string"}}
    for i in range(1, levels + 1):
        defs[f"a{i}"] = {"allOf": [{"$ref": f"#/$defs/a{i - 1}"}, {"$ref": f"#/$defs/a{i - 1}"}]}
    return {"$defs": defs, "$ref": f"#/$defs/a{levels}"}


# -- the listener is real: an unguarded validator does connect -------------------------------


def test_the_listener_sees_an_unguarded_validator_fetch(listener: Listener) -> None:
    before = len(listener.connections)
    with pytest.warns(DeprecationWarning, match="remote"):  # jsonschema's own warning
        Draft202012Validator({"$dynamicRef": f"{listener.base}/s.json"}).is_valid("x")
    assert len(listener.connections) == before + 1


# -- references: every keyword, every way of getting a base URI -------------------------------


def remote_cases(base: str) -> list[dict[str, Any]]:
    return [
        {"$ref": f"{base}/a.json"},
        {"$dynamicRef": f"{base}/a.json#node"},
        {"$dynamicRef": f"{base}/a.json"},
        {
            "$schema": "https://json-schema.org/draft/2019-09/schema",
            "$id": f"{base}/root.json",
            "properties": {"a": {"$recursiveRef": "#", "$ref": "other.json"}},
        },
        {"$id": f"{base}/root.json", "properties": {"a": {"$ref": "other.json"}}},
        {"$id": f"{base}/dir/", "items": {"$id": "sub/", "$ref": "../x.json"}},
        # Reached only lazily: the $ref is in the anyOf branch a string never takes.
        {
            "anyOf": [
                {"type": "string"},
                {"type": "object", "additionalProperties": {"$ref": f"{base}/b"}},
            ]
        },
        {"$defs": {"x": {"$ref": f"{base}/unused.json"}}, "type": "string"},
        {"$ref": "file:///etc/passwd"},
        {"$ref": "other.json"},
        {"$ref": "https://json-schema.org/draft/2020-12/schema"},
    ]


def test_no_reference_keyword_reaches_the_network(listener: Listener) -> None:
    before = len(listener.connections)
    for schema in remote_cases(listener.base):
        with pytest.raises(
            SchemaRefused, match=r"^schema has \$\w*[rR]ef '.*' at #[^,]*, which points nowhere"
        ):
            check(schema)
    assert len(listener.connections) == before


def test_an_unresolvable_dynamic_ref_is_a_clear_error() -> None:
    with pytest.raises(SchemaRefused, match=r"schema has \$dynamicRef '#missing' at #/items"):
        check({"items": {"$dynamicRef": "#missing"}})


def test_local_references_of_every_kind_are_accepted() -> None:
    tree = {
        "$dynamicAnchor": "node",
        "type": "object",
        "properties": {"kids": {"type": "array", "items": {"$dynamicRef": "#node"}}},
    }
    legacy = {
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "$recursiveAnchor": True,
        "type": "object",
        "additionalProperties": {"$recursiveRef": "#"},
    }
    embedded = {
        "$id": "https://example.invalid/root.json",
        "$defs": {"item": {"$id": "item.json", "$anchor": "it", "type": "integer"}},
        "properties": {"a": {"$ref": "item.json"}, "b": {"$ref": "item.json#it"}},
    }
    draft7 = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "definitions": {"x": {"type": "integer"}},
        "items": {"$ref": "#/definitions/x"},
    }
    for schema, good, bad in (
        (tree, {"kids": [{"kids": []}]}, {"kids": [1]}),
        (legacy, {"a": {"b": {}}}, {"a": 1}),
        (embedded, {"a": 1, "b": 2}, {"a": "x"}),
        (draft7, [1, 2], ["x"]),
    ):
        prepared = check(schema)
        assert validate_answer(prepared, _json(good)) == good
        with pytest.raises(AnswerInvalid, match="violates the schema"):
            validate_answer(prepared, _json(bad))


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


# -- static limits --------------------------------------------------------------------------


def test_nested_allof_of_refs_is_refused_before_any_validation() -> None:
    schema = allof_bomb(20)
    assert len(encode(schema)) < 2_000
    with pytest.raises(SchemaRefused, match=f"more than {MAX_SCHEMA_EXPANSION:,} subschema"):
        check(schema)
    # Every schema object counts: a_i and its two {"$ref"} wrappers, L(a_i) = 3 + 2 L(a_i-1).
    assert check(allof_bomb(5)).expansion == 2**7 - 2


def test_multiplying_through_items_is_refused_too() -> None:
    # Each level is cheap; the answer's nesting multiplies: [[[[...]]]] costs 2**depth.
    schema = {
        "$defs": {
            "r": {"allOf": [{"items": {"$ref": "#/$defs/r"}}, {"items": {"$ref": "#/$defs/r"}}]}
        },
        "$ref": "#/$defs/r",
    }
    with pytest.raises(SchemaRefused, match="subschema checks"):
        check(schema)


def test_recursive_schemas_that_do_not_multiply_are_accepted() -> None:
    any_json = {
        "$defs": {
            "v": {
                "anyOf": [
                    {"type": ["string", "number", "boolean", "null"]},
                    {"type": "array", "items": {"$ref": "#/$defs/v"}},
                    {"type": "object", "additionalProperties": {"$ref": "#/$defs/v"}},
                ]
            }
        },
        "$ref": "#/$defs/v",
    }
    binary_tree = {"type": "object", "properties": {"left": {"$ref": "#"}, "right": {"$ref": "#"}}}
    assert check(any_json).expansion < 10
    assert check(binary_tree).expansion < 10


def test_an_in_place_cycle_is_refused() -> None:
    for schema in ({"$ref": "#"}, {"allOf": [{"not": {"$ref": "#"}}]}, {"$ref": ""}):
        with pytest.raises(SchemaRefused, match="refers to itself without end"):
            check(schema)


def test_size_depth_and_dialect_limits() -> None:
    deep: dict[str, Any] = {"type": "object"}
    for _ in range(MAX_SCHEMA_DEPTH):
        deep = {"properties": {"a": deep}}
    with pytest.raises(SchemaRefused, match="nested more than"):
        encode(deep)
    with pytest.raises(SchemaRefused, match="bytes"):
        encode({"enum": ["x" * 70_000]})
    with pytest.raises(SchemaRefused, match=r"\$schema"):
        check({"$schema": "http://json-schema.org/draft-04/schema#"})
    very_deep: dict[str, Any] = {}
    for _ in range(100_000):  # far past the recursion limit: refused, not a crash
        very_deep = {"not": very_deep}
    with pytest.raises(SchemaRefused, match="nested more than"):
        encode(very_deep)


def test_answer_nesting_is_bounded() -> None:
    prepared = check({})
    with pytest.raises(AnswerInvalid, match="nested more than"):
        validate_answer(prepared, "[" * 100 + "]" * 100)
    with pytest.raises(AnswerInvalid, match="not JSON"):
        validate_answer(prepared, "{")


# -- property: generated schemas, refs and URLs included --------------------------------------


def ref_values(base: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["#", "#/$defs/a", "#/$defs/b", "#/properties/p", "#a", "#node", ""]),
        st.sampled_from(["a.json", "../x", "a.json#/$defs/a", "urn:x:y", "file:///etc/hosts"]),
        st.sampled_from(["/x.json", "#/$defs/a/items", "#/items", "//127.0.0.1:1/x"]),
        st.text(alphabet="ab#/.:", max_size=6),
        st.builds(lambda p: f"{base}/{p}", st.text(alphabet="abc/#", max_size=5)),
    )


def schemas(base: str) -> st.SearchStrategy[Any]:
    refs = ref_values(base)
    ids = st.one_of(
        st.builds(lambda p: f"{base}/{p}", st.sampled_from(["", "r.json", "d/"])),
        st.sampled_from(["sub.json", "urn:example:s", "https://example.invalid/s"]),
    )
    leaf = st.one_of(
        st.booleans(),
        st.fixed_dictionaries({"type": st.sampled_from(["string", "object", "array", "integer"])}),
        st.fixed_dictionaries({}, optional={"$ref": refs}),
        st.fixed_dictionaries({}, optional={"$dynamicRef": refs}),
    )

    def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.fixed_dictionaries(
            {},
            optional={
                "$id": ids,
                "$anchor": st.sampled_from(["a", "node"]),
                "$dynamicAnchor": st.sampled_from(["a", "node"]),
                "$ref": refs,
                "$dynamicRef": refs,
                "$defs": st.fixed_dictionaries({}, optional={"a": children, "b": children}),
                "properties": st.fixed_dictionaries({}, optional={"p": children}),
                "items": children,
                "allOf": st.lists(children, min_size=1, max_size=3),
                "anyOf": st.lists(children, min_size=1, max_size=3),
                "not": children,
                "additionalProperties": children,
            },
        )

    return st.recursive(leaf, extend, max_leaves=12)


instances = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=3)),
    lambda c: st.one_of(
        st.lists(c, max_size=3), st.dictionaries(st.sampled_from("pq"), c, max_size=2)
    ),
    max_leaves=6,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_property_no_schema_connects_or_escapes_as_an_unexpected_error(
    listener: Listener, data: st.DataObject
) -> None:
    before = len(listener.connections)
    schema = data.draw(schemas(listener.base))
    if not isinstance(schema, dict):
        schema = {"allOf": [schema]}
    dialect = data.draw(st.sampled_from([None, "https://json-schema.org/draft/2019-09/schema"]))
    if dialect is not None:
        schema["$schema"] = dialect
    refused: list[str] = []
    try:
        prepared = check(schema)
    except SchemaRefused as exc:
        refused.append(str(exc))
        event("refused: " + str(exc).split(" at ")[0][:40])
    else:
        event("accepted")
        for instance in data.draw(st.lists(instances, max_size=3)):
            with contextlib.suppress(AnswerInvalid):
                validate_answer(prepared, _json(instance))
    assert all(message.startswith("schema ") for message in refused), refused
    assert len(listener.connections) == before


# -- the worker process ----------------------------------------------------------------------


async def test_the_worker_refuses_and_accepts_like_the_guard(listener: Listener) -> None:
    before = len(listener.connections)
    with pytest.raises(SchemaRefused, match="points nowhere"):
        await jsonschema_worker.check_schema({"$dynamicRef": f"{listener.base}/s.json#x"})
    with pytest.raises(SchemaRefused, match="subschema checks"):
        await jsonschema_worker.check_schema(allof_bomb(20))
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert await jsonschema_worker.validate(schema, '{"n": 3}') == {"n": 3}
    with pytest.raises(AnswerInvalid, match="at n"):
        await jsonschema_worker.validate(schema, '{"n": "x"}')
    assert len(listener.connections) == before


async def test_a_backtracking_pattern_is_stopped_and_the_loop_stays_free(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(jsonschema_worker, "ANSWER_CHECK_SECONDS", 0.5)
    schema = {"type": "string", "pattern": "^(.+)+!$"}
    job = asyncio.create_task(jsonschema_worker.validate(schema, '"' + "a" * 64 + '"'))
    # The event loop keeps running other work while the worker backtracks.
    ticks = 0
    while not job.done() and ticks < 50:
        await asyncio.sleep(0)
        ticks += 1
    assert ticks == 50 and not job.done()
    with pytest.raises(jsonschema_worker.SchemaTimeout, match=r"took longer than 0\.5 s"):
        await job
    # The killed worker is replaced: the next job is served.
    assert await jsonschema_worker.validate(schema, '"ab!"') == "ab!"


# -- property: the static expansion bounds the validator's real work ---------------------------


def applicator_schemas() -> st.SearchStrategy[Any]:
    local = st.sampled_from(["#", "#/$defs/a", "#/$defs/b", "#node"])
    leaf = st.one_of(
        st.booleans(),
        st.fixed_dictionaries({"type": st.sampled_from(["string", "object", "array"])}),
        st.fixed_dictionaries({"$ref": local}),
        st.fixed_dictionaries({"$dynamicRef": local}),
        st.fixed_dictionaries({"minLength": st.integers(0, 2)}),
    )

    def extend(c: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        some = st.lists(c, min_size=1, max_size=3)
        return st.fixed_dictionaries(
            {},
            optional={
                "$ref": local,
                "$dynamicAnchor": st.just("node"),
                "$defs": st.fixed_dictionaries({}, optional={"a": c, "b": c}),
                "allOf": some,
                "anyOf": some,
                "oneOf": some,
                "not": c,
                "if": c,
                "then": c,
                "else": c,
                "dependentSchemas": st.fixed_dictionaries({}, optional={"p": c}),
                "properties": st.fixed_dictionaries({}, optional={"p": c, "q": c}),
                "patternProperties": st.fixed_dictionaries({}, optional={"^p": c}),
                "additionalProperties": c,
                "unevaluatedProperties": c,
                "propertyNames": c,
                "prefixItems": some,
                "items": c,
                "contains": c,
                "unevaluatedItems": c,
            },
        )

    return st.recursive(leaf, extend, max_leaves=10)


def nodes_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + sum(1 + nodes_of(v) for v in value.values())  # a key is a value too
    if isinstance(value, list):
        return 1 + sum(nodes_of(v) for v in value)
    return 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=applicator_schemas(), instance=instances)
def test_property_static_expansion_bounds_the_real_work(schema: Any, instance: Any) -> None:
    if not isinstance(schema, dict):
        schema = {"allOf": [schema]}
    try:
        prepared = check(schema)
    except SchemaRefused:
        event("refused")
        return
    event("accepted")
    cls = type(prepared.validator)
    evaluations = 0
    descend, iter_errors = cls.descend, cls.iter_errors

    def counted_descend(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal evaluations
        evaluations += 1
        return descend(self, *args, **kwargs)

    def counted_iter_errors(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal evaluations
        evaluations += 1
        return iter_errors(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cls, "descend", counted_descend)
        mp.setattr(cls, "iter_errors", counted_iter_errors)
        with contextlib.suppress(AnswerInvalid):
            validate_answer(prepared, _json(instance))
    assert evaluations <= nodes_of(instance) * prepared.expansion


def test_a_pointer_through_a_boolean_schema_is_refused_not_a_crash() -> None:
    """Found by the property test: '#/$defs/a/items' where a is `false` made the
    reference library fail with TypeError (an unexpected error for the client)."""
    schema = {"$defs": {"a": False}, "anyOf": [{"$ref": "#/$defs/a/items"}]}
    with pytest.raises(SchemaRefused, match="points nowhere inside the schema"):
        check(schema)
