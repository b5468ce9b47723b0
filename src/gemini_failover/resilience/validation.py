"""Structured output: check the request's JSON Schema once, then validate each answer
against it. Both run in the jsonschema worker processes (see
:mod:`gemini_failover.jsonschema_worker`): nothing is fetched, and a hostile schema
cannot stall the event loop."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from gemini_failover import jsonschema_worker
from gemini_failover.protocol import GenerationRequest
from gemini_failover.resilience.errors import Category, SchemaViolation
from gemini_failover.resilience.results import RequestFailed

#: Parses and checks an answer's text: returns the JSON value or raises SchemaViolation.
Validator = Callable[[str], Awaitable[Any]]


async def validator(request: GenerationRequest) -> Validator | None:
    """None without a schema; else the schema is checked now and the answer validator
    is returned. Raises RequestFailed (bad_request) for a schema that is refused."""
    schema = request.response_schema
    if schema is None:
        return None
    try:
        await jsonschema_worker.check_schema(schema)
    except jsonschema_worker.SchemaRefused as exc:
        raise RequestFailed(Category.BAD_REQUEST, f"invalid JSON Schema: {exc}") from None
    return functools.partial(_validate_answer, schema)


async def _validate_answer(schema: Mapping[str, Any], text: str) -> Any:
    """The parsed answer; SchemaViolation when it is not JSON, violates the schema, or
    cannot be checked within the deadline (a semantic failure: retried, failed over)."""
    try:
        return await jsonschema_worker.validate(schema, text)
    except (jsonschema_worker.AnswerInvalid, jsonschema_worker.SchemaRefused) as exc:
        raise SchemaViolation(str(exc)) from None
