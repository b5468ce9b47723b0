"""Structured output: check the request's JSON Schema once, then validate each answer
against it. Both run in the jsonschema worker processes (see
:mod:`gemini_failover.jsonschema_worker`): nothing is fetched, and a hostile schema
cannot stall the event loop.

Only an answer that is not JSON or violates the schema is the model's fault (a
semantic failure: retried, failed over, counted against its breaker). A schema that
cannot be checked in time (a ``pattern`` that backtracks), a checker busy past the
request's time, or an answer cut off at the output token limit are not: the request
ends with a clear error and no model is blamed, so one caller's schema can never open
the breakers that every caller shares.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from gemini_failover import jsonschema_worker
from gemini_failover.protocol import GenerationRequest
from gemini_failover.resilience.errors import Category, SchemaViolation
from gemini_failover.resilience.results import RequestFailed

#: Checks an answer (its text and finish reason) within a time: returns the JSON value,
#: raises SchemaViolation (the model's fault) or RequestFailed (not the model's fault).
Validator = Callable[[str, str | None, float], Awaitable[Any]]

TRUNCATED = "MAX_TOKENS"


async def validator(request: GenerationRequest, timeout: float) -> Validator | None:
    """None without a schema; else the schema is checked now (within ``timeout`` s,
    queueing for a worker included) and the answer validator is returned. Raises
    RequestFailed: bad_request for a refused schema, timeout when it cannot be checked
    in time."""
    schema = request.response_schema
    if schema is None:
        return None
    try:
        async with asyncio.timeout(timeout):
            await jsonschema_worker.check_schema(schema)
    except TimeoutError:
        raise RequestFailed(
            Category.TIMEOUT, "the JSON Schema could not be checked in time; retry shortly"
        ) from None
    except jsonschema_worker.SchemaRefused as exc:
        raise RequestFailed(Category.BAD_REQUEST, f"invalid JSON Schema: {exc}") from None
    limit = request.max_output_tokens

    async def validate(text: str, finish_reason: str | None, timeout: float) -> Any:
        if finish_reason == TRUNCATED:
            cap = f"max_output_tokens={limit}" if limit else "the model's output limit"
            raise RequestFailed(
                Category.BAD_REQUEST,
                f"the JSON answer was cut off at {cap} before it was complete; "
                "allow more output tokens or ask for a smaller object",
            )
        return await _validate_answer(schema, text, timeout)

    return validate


async def _validate_answer(schema: Mapping[str, Any], text: str, timeout: float) -> Any:
    try:
        async with asyncio.timeout(max(0.0, timeout)):
            return await jsonschema_worker.validate(schema, text)
    except jsonschema_worker.AnswerInvalid as exc:
        raise SchemaViolation(str(exc)) from None
    except jsonschema_worker.SchemaRefused as exc:  # the schema itself: too slow to apply
        raise RequestFailed(
            Category.BAD_REQUEST, f"the answer could not be checked against the schema: {exc}"
        ) from None
    except TimeoutError:
        raise RequestFailed(
            Category.TIMEOUT, "the answer could not be checked against the schema in time"
        ) from None
