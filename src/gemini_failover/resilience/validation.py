"""Structured output: check that an answer is JSON that validates against the
request's JSON Schema (jsonschema, compiled once per schema)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from jsonschema import SchemaError
from jsonschema.validators import validator_for

from gemini_failover.protocol import GenerationRequest
from gemini_failover.resilience.errors import Category, SchemaViolation
from gemini_failover.resilience.results import RequestFailed

#: Parses and checks an answer's text: returns the JSON value (None without a schema)
#: or raises SchemaViolation.
Validator = Callable[[str], Any]


def validator(request: GenerationRequest) -> Validator:
    """The answer check for ``request``. Raises RequestFailed (bad_request) for an
    invalid schema."""
    schema = request.response_schema
    if schema is None:
        return _no_validation
    try:
        compiled = _schema_validator(json.dumps(schema, sort_keys=True))
    except SchemaError as exc:
        raise RequestFailed(Category.BAD_REQUEST, f"invalid JSON Schema: {exc.message}") from None

    def validate(text: str) -> Any:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SchemaViolation(f"structured output is not JSON: {exc.msg}") from None
        error = next(iter(compiled.iter_errors(value)), None)
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            raise SchemaViolation(
                f"structured output violates the schema at {where}: {error.message}"
            )
        return value

    return validate


@functools.lru_cache(maxsize=256)
def _schema_validator(schema_json: str) -> Any:
    """A compiled validator per schema (a pure function of it, so cached process-wide).
    Raises SchemaError for an invalid schema."""
    schema = json.loads(schema_json)
    cls = validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _no_validation(text: str) -> None:
    return None
