"""Gemini API errors: ``{"error": {"code", "message", "status", "details"}}`` and the
google.rpc details Gemini attaches (RetryInfo, QuotaFailure, Help, ErrorInfo).

Also the errors Gemini itself answers for a bad request (invalid argument, unknown model
or method, input over the token limit, missing or invalid API key), as
:class:`ErrorReply` values a server sends as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "DEFAULT_MESSAGES",
    "QUOTA_IDS",
    "QUOTA_METRIC",
    "STATUS_NAMES",
    "ErrorReply",
    "auth_error",
    "bad_request",
    "error_body",
    "error_info",
    "format_retry_delay",
    "input_too_long",
    "invalid_argument",
    "method_not_found",
    "missing_api_key",
    "model_not_found",
    "payload_too_large",
    "quota_failure",
    "quota_help",
    "rate_limited",
    "retry_after_header",
    "retry_info",
    "status_name",
    "unknown_field",
]

#: HTTP status -> google.rpc.Code name, as Google APIs report them.
STATUS_NAMES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    412: "FAILED_PRECONDITION",
    416: "OUT_OF_RANGE",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

DEFAULT_MESSAGES: dict[int, str] = {
    400: "Request contains an invalid argument.",
    401: (
        "Request is missing required authentication credential. Expected OAuth 2 access "
        "token, login cookie or other valid authentication credential. See "
        "https://developers.google.com/identity/sign-in/web/devconsole-project."
    ),
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    429: (
        "You exceeded your current quota, please check your plan and billing details. For "
        "more information on this error, head to: "
        "https://ai.google.dev/gemini-api/docs/rate-limits."
    ),
    500: (
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting"
    ),
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}

QUOTA_METRIC = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
QUOTA_IDS: dict[str, str] = {
    "minute": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
    "day": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
}


def status_name(code: int) -> str:
    """The google.rpc status name for an HTTP code (UNKNOWN when there is none)."""
    return STATUS_NAMES.get(code, "UNKNOWN")


def error_body(
    code: int,
    message: str | None = None,
    *,
    status: str | None = None,
    details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Gemini error body. ``details`` is left out when empty, as Gemini does."""
    error: dict[str, Any] = {
        "code": code,
        "message": message if message is not None else DEFAULT_MESSAGES.get(code, "Error."),
        "status": status or status_name(code),
    }
    if details:
        error["details"] = details
    return {"error": error}


def format_retry_delay(seconds: float) -> str:
    """A google.protobuf.Duration in JSON form: "12s", "0.5s" (millisecond precision)."""
    millis = max(0, math.ceil(seconds * 1000 - 1e-6))
    whole, frac = divmod(millis, 1000)
    if frac == 0:
        return f"{whole}s"
    return f"{whole}.{frac:03d}".rstrip("0") + "s"


def retry_after_header(seconds: float) -> str:
    """Retry-After header value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds - 1e-9)))


def retry_info(seconds: float) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": format_retry_delay(seconds),
    }


def quota_failure(
    model: str,
    quota: Literal["minute", "day"],
    value: str,
    *,
    quota_id: str | None = None,
    quota_metric: str | None = None,
) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [
            {
                "quotaMetric": quota_metric or QUOTA_METRIC,
                "quotaId": quota_id or QUOTA_IDS[quota],
                "quotaDimensions": {"location": "global", "model": model},
                "quotaValue": value,
            }
        ],
    }


def quota_help() -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.Help",
        "links": [
            {
                "description": "Learn more about Gemini API quotas",
                "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
            }
        ],
    }


def error_info(reason: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """An HTTP error answer: status code, Gemini error body and extra headers."""

    code: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def status(self) -> str:
        """The body's status name (``RESOURCE_EXHAUSTED``, ...)."""
        return str(self.body["error"]["status"])


def invalid_argument(message: str) -> ErrorReply:
    """``400 INVALID_ARGUMENT`` with that message."""
    return ErrorReply(400, error_body(400, message))


def input_too_long(tokens: int, limit: int) -> ErrorReply:
    """Gemini's 400 for a prompt over the model's input token limit."""
    return invalid_argument(
        f"The input token count ({tokens}) exceeds the maximum number of tokens allowed ({limit})."
    )


def model_not_found(model: str, method: str, api_version: str = "v1beta") -> ErrorReply:
    """Gemini's 404 for an unknown model, or a model that does not support ``method``."""
    return ErrorReply(
        404,
        error_body(
            404,
            f"models/{model} is not found for API version {api_version}, or is not supported "
            f"for {method}. Call ListModels to see the list of available models and their "
            f"supported methods.",
        ),
    )


def method_not_found(model: str, verb: str) -> ErrorReply:
    """404 for a path that names no Gemini method (``models/m:frobnicate``)."""
    return ErrorReply(404, error_body(404, f"Method {verb} is not found on models/{model}."))


def auth_error(code: int, message: str | None = None) -> ErrorReply:
    """Gemini's answer for a credential problem, with the ErrorInfo reason it carries.

    400 ``API_KEY_INVALID`` (what Gemini answers for a wrong key), 403
    ``API_KEY_SERVICE_BLOCKED``, anything else 401 ``CREDENTIALS_MISSING``.
    """
    if code == 400:
        reason, default = "API_KEY_INVALID", "API key not valid. Please pass a valid API key."
    elif code == 403:
        reason, default = "API_KEY_SERVICE_BLOCKED", "The caller does not have permission"
    else:
        reason, default = "CREDENTIALS_MISSING", DEFAULT_MESSAGES[401]
    return ErrorReply(code, error_body(code, message or default, details=[error_info(reason)]))


def missing_api_key() -> ErrorReply:
    """The 401 for a request without an API key."""
    return auth_error(401)


def rate_limited(
    model: str,
    quota: Literal["minute", "day"],
    quota_value: str,
    retry_after: float,
    *,
    quota_id: str | None = None,
    quota_metric: str | None = None,
    header: bool = True,
) -> ErrorReply:
    """Gemini's 429: QuotaFailure, Help and RetryInfo details, and (``header``) a
    ``Retry-After`` header (Gemini sends none for per-day quotas)."""
    details = [
        quota_failure(model, quota, quota_value, quota_id=quota_id, quota_metric=quota_metric),
        quota_help(),
        retry_info(retry_after),
    ]
    headers = (("retry-after", retry_after_header(retry_after)),) if header else ()
    return ErrorReply(429, error_body(429, details=details), headers)


def bad_request(violations: list[tuple[str, str]]) -> dict[str, Any]:
    """A google.rpc.BadRequest detail: ``(field, description)`` per violation (``field``
    empty: left out)."""
    return {
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [
            {"field": f, "description": d} if f else {"description": d} for f, d in violations
        ],
    }


def unknown_field(name: str, at: str = "") -> ErrorReply:
    """Gemini's 400 for a JSON field its request message does not have (``at``: the
    enclosing field's path in snake_case, e.g. ``generation_config``)."""
    where = f" at '{at}'" if at else ""
    message = f'Invalid JSON payload received. Unknown name "{name}"{where}: Cannot find field.'
    return ErrorReply(400, error_body(400, message, details=[bad_request([(at, message)])]))


def payload_too_large(limit: int) -> ErrorReply:
    """The 400 Google's front end answers for a request body over its size limit."""
    return invalid_argument(f"Request payload size exceeds the limit: {limit} bytes.")
