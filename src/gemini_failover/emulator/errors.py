"""Gemini-shaped error bodies: ``{"error": {"code", "message", "status", "details"}}``."""

from __future__ import annotations

import math
from typing import Any, Literal

__all__ = [
    "STATUS_NAMES",
    "error_body",
    "format_retry_delay",
    "quota_failure",
    "retry_after_header",
    "retry_info",
    "status_name",
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
