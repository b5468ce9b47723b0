"""A client's JSON Schema, made safe to check and to validate answers against.

The ``schema`` argument of gemini_generate_json is hostile input. Three rules hold for it:

- **Nothing is fetched.** Every reference (``$ref``, ``$dynamicRef``, ``$recursiveRef``,
  relative to whatever ``$id`` is in scope) is resolved in a ``referencing.Registry`` that
  holds the schema's own resources and whose retrieve function refuses every URI. The
  same registry is the validator's, so no keyword, present or future, can reach the
  network or the file system. A reference that does not resolve inside the schema is a
  ``SchemaRefused`` naming the argument, the keyword and where it is.
- **Work is bounded before it starts.** Size, nesting depth and *reference expansion*
  (how many subschemas one value of the answer can be checked against, refs followed,
  see :func:`expansion`) have documented limits, computed statically: a nested
  ``allOf`` of ``$ref`` pairs is refused in microseconds instead of validated for a
  minute.
- **It runs somewhere that can be stopped.** This module is pure and synchronous; the
  server calls it through :mod:`gemini_failover.jsonschema_worker`, in a separate
  process with a deadline (a regular expression in ``pattern`` can still backtrack for
  ever, and Python cannot interrupt ``re``).

It imports neither the MCP SDK nor the failover manager: the worker process loads only
this module, jsonschema and referencing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import referencing.jsonschema
from jsonschema import SchemaError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable

#: Largest schema, as compact JSON in UTF-8.
MAX_SCHEMA_BYTES: Final = 64 * 1024
#: Deepest nesting of objects and arrays in the schema document.
MAX_SCHEMA_DEPTH: Final = 32
#: Most subschema evaluations one value of the answer can cost, references followed
#: (see :func:`expansion`). Real schemas stay under ~50; 2^11 nested allOf pairs do not.
MAX_SCHEMA_EXPANSION: Final = 2_000
#: Deepest nesting of objects and arrays in the model's answer.
MAX_ANSWER_DEPTH: Final = 64

#: The dialects whose applicator keywords :func:`expansion` models (the default: 2020-12).
DIALECTS: Final = (
    "https://json-schema.org/draft/2020-12/schema",
    "https://json-schema.org/draft/2019-09/schema",
    "http://json-schema.org/draft-07/schema",
    "http://json-schema.org/draft-06/schema",
)
DEFAULT_DIALECT: Final = DIALECTS[0]

REF_KEYWORDS: Final = ("$ref", "$dynamicRef", "$recursiveRef")


class SchemaRefused(ValueError):
    """The schema cannot be used; the message names the argument and says why."""


class AnswerInvalid(ValueError):
    """The answer is not JSON, is nested too deeply, or violates the schema."""


def _refuse(uri: str) -> Resource[Any]:
    """The registry's retrieve function: nothing outside the schema exists."""
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]  # attrs field, untyped


# -- cheap checks, safe on any thread ------------------------------------------------------


def encode(schema: Mapping[str, Any]) -> str:
    """The schema as compact JSON, after the size and depth limits. Costs O(limit),
    whatever the input: the walk stops at the first node past a limit."""
    _check_shape(schema)
    try:
        encoded = json.dumps(schema, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        raise SchemaRefused("schema must be plain JSON (no NaN or Infinity)") from None
    size = len(encoded)  # ASCII: json.dumps escapes everything else
    if size > MAX_SCHEMA_BYTES:
        raise SchemaRefused(f"schema is {size:,} bytes; the limit is {MAX_SCHEMA_BYTES:,} bytes")
    return encoded


def _check_shape(schema: Any) -> None:
    # Iterative, so a hostile nesting cannot overflow the stack. A lower bound of the
    # JSON size is charged as nodes are pushed (an item: 2 bytes with its comma; a
    # member: 4 plus its key; a string: its length), so the walk stops, after at most
    # ~MAX_SCHEMA_BYTES / 2 pushes, as soon as the argument is too large: json.dumps
    # never sees a huge one.
    too_large = SchemaRefused(f"schema is larger than the limit of {MAX_SCHEMA_BYTES:,} bytes")
    budget = MAX_SCHEMA_BYTES
    stack: list[tuple[Any, int]] = [(schema, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Mapping):
            for key in node:
                budget -= 4 + (len(key) if isinstance(key, str) else 0)
                if budget < 0:
                    raise too_large
            children: Any = node.values()
        elif isinstance(node, list | tuple):
            budget -= 2 * len(node)
            if budget < 0:
                raise too_large
            children = node
        else:  # pragma: no cover - only containers are pushed
            continue
        if depth > MAX_SCHEMA_DEPTH:
            raise SchemaRefused(
                f"schema is nested more than {MAX_SCHEMA_DEPTH} levels deep; flatten it "
                "(move repeated parts to $defs)"
            )
        for child in children:
            if isinstance(child, str):
                budget -= len(child)
            elif isinstance(child, Mapping | list | tuple):
                stack.append((child, depth + 1))
        if budget < 0:
            raise too_large


def answer_depth_ok(value: Any) -> bool:
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth >= MAX_ANSWER_DEPTH:
                return False
            children = node.values() if isinstance(node, dict) else node
            stack.extend((c, depth + 1) for c in children)
    return True


# -- the full check (in the worker process) ------------------------------------------------


@dataclass(slots=True)
class Prepared:
    """A checked schema and its validator (whose registry refuses remote references)."""

    schema: dict[str, Any] | bool
    validator: Validator
    expansion: int


def prepare(encoded: str) -> Prepared:
    """Check a schema produced by :func:`encode`: dialect, meta-schema, every reference
    resolvable inside it, reference expansion within the limit. Raises SchemaRefused."""
    schema: Any = json.loads(encoded)
    if not isinstance(schema, dict):
        raise SchemaRefused("schema must be a JSON object")
    dialect = schema.get("$schema", DEFAULT_DIALECT)
    if not isinstance(dialect, str) or dialect.rstrip("#") not in DIALECTS:
        raise SchemaRefused(
            f"schema has $schema {dialect!r}; use one of {', '.join(DIALECTS)} (or leave it out)"
        )
    cls: Any = validator_for({"$schema": dialect})
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "(root)"
        message = f"schema is not a valid JSON Schema at {where}: {exc.message}"
        raise SchemaRefused(message) from None
    spec = referencing.jsonschema.specification_with(dialect.rstrip("#") + _hash(dialect))
    resource = spec.create_resource(schema)
    registry: Registry[Any] = Registry(retrieve=_refuse)  # type: ignore[call-arg]
    registry = registry.with_resource(resource.id() or "", resource).crawl()
    graph = _Graph(spec, registry)
    graph.walk(schema, registry.resolver_with_root(resource))
    cost = expansion(graph, id(schema))
    return Prepared(schema, cls(schema, registry=registry), cost)


def _hash(dialect: str) -> str:
    # referencing knows draft-06/07 by their URIs with the trailing '#'.
    return "#" if dialect.rstrip("#").startswith("http://") else ""


def validate_answer(prepared: Prepared, text: str) -> Any:
    """The answer parsed and checked against the prepared schema. Raises AnswerInvalid;
    a reference that fails at validation time (it cannot, after prepare) SchemaRefused."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnswerInvalid(f"structured output is not JSON: {exc.msg}") from None
    except RecursionError:
        raise AnswerInvalid(
            f"structured output is nested more than {MAX_ANSWER_DEPTH} levels deep"
        ) from None
    if not answer_depth_ok(value):
        raise AnswerInvalid(f"structured output is nested more than {MAX_ANSWER_DEPTH} levels deep")
    try:
        error = next(iter(prepared.validator.iter_errors(value)), None)
    except Unresolvable as exc:
        raise SchemaRefused(f"schema has a reference that cannot be resolved: {exc}") from None
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise AnswerInvalid(f"structured output violates the schema at {where}: {error.message}")
    return value


# -- static reference resolution and expansion ---------------------------------------------

# Which keywords apply a subschema to the same value ("in place") and which to a member
# or an item of it, per JSON Schema 2020-12 / 2019-09 / draft-07 / draft-06. Written out
# here because no library computes expansion statically; a keyword missing from these
# tables is one the validator does not apply either (or applies to the same value: the
# default below treats unknown schema-valued keywords as in place, the costlier case).
_IN_PLACE_ONE = ("not", "if", "then", "else")
_IN_PLACE_LIST = ("allOf", "anyOf", "oneOf")
_IN_PLACE_MAP = ("dependentSchemas", "dependencies")
# (keyword, group): "max" members of a group are alternatives for one member/item
# (at most one applies), "sum" ones apply on top.
_MEMBER_ONE = {
    "additionalProperties": "max",
    "unevaluatedProperties": "sum",
    "propertyNames": "sum",
}
_MEMBER_MAP = {"properties": "max", "patternProperties": "sum"}
_ITEM_ONE = {"additionalItems": "max", "contains": "sum", "unevaluatedItems": "sum"}
_DEFINITIONS = ("$defs", "definitions")
#: A schema with unevaluated* re-walks its in-place subschemas to collect annotations
#: (jsonschema validates anyOf/oneOf/if branches again): count its subtree three times.
_UNEVALUATED_FACTOR = 3


@dataclass(slots=True)
class _Node:
    in_place: list[int] = field(default_factory=list)
    member_max: list[int] = field(default_factory=list)
    member_sum: list[int] = field(default_factory=list)
    item_max: list[int] = field(default_factory=list)
    item_sum: list[int] = field(default_factory=list)
    #: Groups of possible targets of one dynamic reference: exactly one applies.
    alternatives: list[list[int]] = field(default_factory=list)
    factor: int = 1

    def children(self) -> list[int]:
        return self.in_place + [c for group in self.alternatives for c in group]

    def in_place_cost(self, cost: Mapping[int, int]) -> int:
        return sum(cost[c] for c in self.in_place) + sum(
            max(cost[c] for c in group) for group in self.alternatives
        )


class _Graph:
    """Every subschema the validator can apply (by ``id``), with its edges; every
    reference resolved in the refusing registry (an Unresolvable is a SchemaRefused)."""

    def __init__(self, spec: Any, registry: Registry[Any]) -> None:
        self.spec, self.registry = spec, registry
        self.nodes: dict[int, _Node] = {}
        self._keep: list[Any] = []  # the subschemas, alive while their ids are keys
        self._dynamic: dict[str, list[int]] = {}
        self._recursive: list[int] = []
        self._pending_dynamic: list[tuple[list[int], str]] = []
        self._pending_recursive: list[list[int]] = []

    def walk(self, root: Any, resolver: Any) -> None:
        todo: list[tuple[Any, Any, str]] = [(root, resolver, "#")]
        while todo:
            schema, resolver, where = todo.pop()
            if id(schema) in self.nodes:
                continue
            self.nodes[id(schema)] = _Node()
            self._keep.append(schema)
            if not isinstance(schema, dict):
                continue
            resolver = resolver.in_subresource(self.spec.create_resource(schema))
            todo.extend(self._edges(schema, id(schema), resolver, where))
        for group, name in self._pending_dynamic:
            group.extend(n for n in self._dynamic.get(name, ()) if n not in group)
        for group in self._pending_recursive:
            group.extend(n for n in self._recursive if n not in group)

    def _edges(
        self, schema: dict[str, Any], nid: int, resolver: Any, where: str
    ) -> Iterator[tuple[Any, Any, str]]:
        node = self.nodes[nid]

        def child(target: Any, into: list[int], path: str) -> tuple[Any, Any, str]:
            into.append(id(target))
            return target, resolver, f"{where}/{path}"

        if isinstance(schema.get("$dynamicAnchor"), str):
            self._dynamic.setdefault(schema["$dynamicAnchor"], []).append(nid)
        if schema.get("$recursiveAnchor") is True:
            self._recursive.append(nid)
        if "unevaluatedProperties" in schema or "unevaluatedItems" in schema:
            node.factor = _UNEVALUATED_FACTOR
        for keyword, value in schema.items():
            if keyword in REF_KEYWORDS:
                yield self._reference(keyword, value, nid, resolver, where)
            elif keyword in _IN_PLACE_ONE:
                yield child(value, node.in_place, keyword)
            elif keyword in _IN_PLACE_LIST and isinstance(value, list):
                yield from (child(v, node.in_place, f"{keyword}/{i}") for i, v in enumerate(value))
            elif keyword in _IN_PLACE_MAP and isinstance(value, dict):
                for k, v in value.items():
                    if isinstance(v, dict | bool):  # draft-07 dependencies: or a list
                        yield child(v, node.in_place, f"{keyword}/{k}")
            elif keyword in _MEMBER_ONE:
                group = node.member_max if _MEMBER_ONE[keyword] == "max" else node.member_sum
                yield child(value, group, keyword)
            elif keyword in _MEMBER_MAP and isinstance(value, dict):
                group = node.member_max if _MEMBER_MAP[keyword] == "max" else node.member_sum
                yield from (child(v, group, f"{keyword}/{k}") for k, v in value.items())
            elif keyword in ("items", "prefixItems"):
                values = value if isinstance(value, list) else [value]
                yield from (child(v, node.item_max, f"{keyword}/{i}") for i, v in enumerate(values))
            elif keyword in _ITEM_ONE:
                group = node.item_max if _ITEM_ONE[keyword] == "max" else node.item_sum
                yield child(value, group, keyword)
            elif keyword in _DEFINITIONS and isinstance(value, dict):
                # Not applied unless referenced, but every reference in them must resolve.
                yield from (child(v, [], f"{keyword}/{k}") for k, v in value.items())

    def _reference(
        self, keyword: str, ref: Any, nid: int, resolver: Any, where: str
    ) -> tuple[Any, Any, str]:
        try:
            if keyword == "$recursiveRef":
                resolved = referencing.jsonschema.lookup_recursive_ref(resolver)
            else:
                resolved = resolver.lookup(ref)
        # referencing walks a JSON pointer into whatever it finds: a pointer through a
        # boolean or a string ('#/$defs/a/items' with a: false) fails with the
        # container's own error rather than Unresolvable.
        except (Unresolvable, TypeError, KeyError, IndexError):
            raise SchemaRefused(
                f"schema has {keyword} {ref!r} at {where}, which points nowhere inside the "
                "schema; only references to the schema's own parts (such as '#/$defs/item') "
                "are allowed, and nothing is ever fetched"
            ) from None
        target = resolved.contents
        if not isinstance(target, dict | bool):
            raise SchemaRefused(f"schema has {keyword} {ref!r} at {where}, which is not a schema")
        node = self.nodes[nid]
        if keyword == "$ref":
            node.in_place.append(id(target))
        else:
            # Resolved at validation time against the dynamic scope: any subschema with
            # the same $dynamicAnchor ($recursiveAnchor) may be the target, one of them.
            group = [id(target)]
            node.alternatives.append(group)
            if keyword == "$recursiveRef":
                self._pending_recursive.append(group)
            elif isinstance(ref, str):
                self._pending_dynamic.append((group, ref.partition("#")[2]))
        return target, resolved.resolver, f"{where}/{keyword}"


def expansion(graph: _Graph, root: int) -> int:
    """The most subschema evaluations any one value of an answer (at any depth up to
    MAX_ANSWER_DEPTH) can cost against the schema rooted at ``root``; raises
    SchemaRefused beyond MAX_SCHEMA_EXPANSION or for an in-place reference cycle.

    Level 0 (the value itself) costs the schema's in-place closure: the schema, its
    allOf/anyOf/oneOf/not/if/then/else/dependentSchemas, the targets of its
    references, recursively. A member or item of a value is checked against the
    member (item) subschemas of every schema in the closure of its parent: the
    alternatives of one group (properties/additionalProperties; items/prefixItems)
    count once, the others add up. Levels are computed until they stop changing,
    exceed the limit, or reach MAX_ANSWER_DEPTH.
    """
    order = _topological(graph)
    limit = MAX_SCHEMA_EXPANSION + 1
    nodes = graph.nodes
    level: dict[int, int] = {}
    for n in order:  # children before parents
        node = nodes[n]
        level[n] = min(limit, node.factor * (1 + node.in_place_cost(level)))
    worst = level[root]
    for _ in range(MAX_ANSWER_DEPTH):
        if worst > MAX_SCHEMA_EXPANSION:
            break
        members: dict[int, int] = {}
        items: dict[int, int] = {}
        for n in order:
            node = nodes[n]
            own_m = max((level.get(c, 0) for c in node.member_max), default=0) + sum(
                level.get(c, 0) for c in node.member_sum
            )
            own_i = max((level.get(c, 0) for c in node.item_max), default=0) + sum(
                level.get(c, 0) for c in node.item_sum
            )
            members[n] = min(limit, node.factor * (own_m + node.in_place_cost(members)))
            items[n] = min(limit, node.factor * (own_i + node.in_place_cost(items)))
        following = {n: max(members[n], items[n]) for n in order}
        if following == level:
            break
        level = following
        worst = max(worst, level[root])
    if worst > MAX_SCHEMA_EXPANSION:
        raise SchemaRefused(
            "schema expands to more than "
            f"{MAX_SCHEMA_EXPANSION:,} subschema checks per value of the answer (nested "
            "allOf/anyOf/oneOf over $ref multiply); simplify it"
        )
    return worst


def _topological(graph: _Graph) -> list[int]:
    """Every node, children (in place) before parents; an in-place cycle is refused."""
    nodes = graph.nodes
    state: dict[int, int] = {}  # 1: on the stack, 2: done
    order: list[int] = []
    for start in nodes:
        if start in state:
            continue
        stack: list[tuple[int, Iterator[int]]] = [(start, iter(nodes[start].children()))]
        state[start] = 1
        while stack:
            n, children = stack[-1]
            for c in children:
                if state.get(c) == 1:
                    raise SchemaRefused(
                        "schema refers to itself without end (a reference cycle that "
                        "never enters a property or an item); give every recursion a base case"
                    )
                if c not in state:
                    state[c] = 1
                    stack.append((c, iter(nodes[c].children())))
                    break
            else:
                stack.pop()
                state[n] = 2
                order.append(n)
    return order
