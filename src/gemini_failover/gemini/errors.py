"""Normalise SDK, transport and decoding errors into ``google.api_core.exceptions``.

This is the only place that knows google.genai's and httpx2's exception types. The
result always carries an :class:`~gemini_failover.resilience.errors.Upstream` record
(metrics label, Retry-After / RetryInfo.retryDelay, per-minute vs per-day quota).
Imports of the SDK happen inside functions: importing this module stays cheap.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

from google.api_core import exceptions as gexc

from gemini_failover.resilience.errors import QuotaScope, Upstream, attach


def _retry_delay(value: object) -> float | None:
    """Parse a google.protobuf.Duration in JSON form ("12s", "0.5s")."""
    if isinstance(value, str) and value.endswith("s"):
        try:
            seconds = float(value[:-1])
        except ValueError:
            return None
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    return None


def _retry_after_header(headers: Mapping[str, str] | None) -> float | None:
    if not headers:
        return None
    raw = headers.get("retry-after") or headers.get("Retry-After")
    if not raw:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return float(raw)
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def parse_error_details(
    details: Iterable[Mapping[str, Any]],
) -> tuple[float | None, QuotaScope | None, str | None]:
    """RetryInfo.retryDelay, the QuotaFailure scope and the ErrorInfo reason from a
    Gemini error's details."""
    retry_after: float | None = None
    scope: QuotaScope | None = None
    reason: str | None = None
    for detail in details:
        kind = str(detail.get("@type", ""))
        if kind.endswith("google.rpc.ErrorInfo"):
            reason = str(detail.get("reason") or "") or None
        elif kind.endswith("google.rpc.RetryInfo"):
            retry_after = _retry_delay(detail.get("retryDelay"))
        elif kind.endswith("google.rpc.QuotaFailure"):
            for violation in detail.get("violations") or ():
                quota_id = str(violation.get("quotaId", ""))
                if "PerDay" in quota_id:
                    scope = "day"
                elif "PerMinute" in quota_id and scope is None:
                    scope = "minute"
    return retry_after, scope, reason


def from_status(
    code: int,
    message: str,
    *,
    details: list[Mapping[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
    status: str | None = None,
) -> gexc.GoogleAPICallError:
    """Build the api_core exception for an HTTP error (also used for SSE error events)."""
    retry_after, scope, reason = parse_error_details(details or ())
    header_delay = _retry_after_header(headers)
    if header_delay is not None and (retry_after is None or header_delay > retry_after):
        retry_after = header_delay
    exc: gexc.GoogleAPICallError = gexc.from_http_status(code, message, details=list(details or ()))
    upstream = Upstream(status or str(code), retry_after, scope, reason)
    attach(exc, upstream)
    return exc


def transport_error(status: str, message: str) -> gexc.GoogleAPICallError:
    """A failure with no HTTP status: "timeout", "network", "malformed", "truncated"."""
    exc: gexc.GoogleAPICallError
    if status == "timeout":
        exc = gexc.GatewayTimeout(message)
    elif status == "malformed":
        exc = gexc.BadGateway(message)
    else:
        exc = gexc.ServiceUnavailable(message)
    attach(exc, Upstream(status=status))
    return exc


def _body_of(api_error: Any) -> Mapping[str, Any]:
    body = getattr(api_error, "details", None)
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        return inner if isinstance(inner, Mapping) else {}
    return {}


def normalise(exc: BaseException) -> gexc.GoogleAPICallError | None:
    """The api_core equivalent of an SDK / transport / decoding exception, or None
    when ``exc`` is not an upstream failure (a bug in our code: let it propagate)."""
    import httpx2
    from google.genai import errors as genai_errors  # lazy: the SDK is slow to import

    if isinstance(exc, gexc.GoogleAPICallError):
        return exc
    if isinstance(exc, genai_errors.APIError):
        body = _body_of(exc)
        raw_details = body.get("details")
        details = (
            [d for d in raw_details if isinstance(d, Mapping)]
            if isinstance(raw_details, list)
            else []
        )
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
        message = str(exc.message or body.get("message") or exc.status or exc.code)
        return from_status(int(exc.code), message, details=details, headers=headers)
    if isinstance(exc, httpx2.TimeoutException | TimeoutError):
        return transport_error("timeout", f"no answer in time ({type(exc).__name__})")
    if isinstance(exc, (httpx2.TransportError, ConnectionError, *aiohttp_errors())):
        return transport_error("network", f"connection failed: {type(exc).__name__}: {exc}")
    if isinstance(exc, json.JSONDecodeError | genai_errors.UnknownApiResponseError):
        return transport_error("malformed", f"malformed response body: {exc}")
    found = _auth_library_error(exc)
    if found is not None:
        return found
    return None


def aiohttp_errors() -> tuple[type[BaseException], ...]:
    """aiohttp's transport errors. google-genai switches its async transport to aiohttp
    whenever aiohttp is importable (it is not a dependency of ours, but a user's
    environment may have it)."""
    try:
        import aiohttp
    except ImportError:
        return ()
    return (aiohttp.ClientError,)


_CATCHABLE: tuple[type[BaseException], ...] = ()


def catchable() -> tuple[type[BaseException], ...]:
    """The exception types an SDK call raises for upstream trouble, plus our own
    timeouts. Built on first use: it needs the SDK's and httpx2's classes."""
    global _CATCHABLE  # a cache of immutable class references, not configuration
    if not _CATCHABLE:
        import httpx2
        from google.auth import exceptions as auth_errors
        from google.genai import errors as genai_errors

        _CATCHABLE = (
            auth_errors.GoogleAuthError,  # Vertex AI: ADC looked up / refreshed per call
            TimeoutError,
            genai_errors.APIError,
            genai_errors.UnknownApiResponseError,
            httpx2.TransportError,
            json.JSONDecodeError,
            ConnectionError,
            *aiohttp_errors(),
        )
    return _CATCHABLE


def refused(message: str) -> gexc.GoogleAPICallError:
    """A request this backend will not send (a file it cannot read, a file that changed
    since it was checked): 400, status label "refused", so a bad_request."""
    exc = gexc.BadRequest(message)
    attach(exc, Upstream(status="refused"))
    return exc


def no_credentials(exc: BaseException) -> gexc.GoogleAPICallError:
    """Application Default Credentials could not be found or loaded: a credentials
    fault of the endpoint (401, reason CREDENTIALS_MISSING), like a rejected key."""
    result = gexc.Unauthenticated(
        f"no usable Application Default Credentials ({type(exc).__name__}); run "
        "`gcloud auth application-default login` or set access_token"
    )
    attach(result, Upstream(status="401", reason="CREDENTIALS_MISSING"))
    return result


def _auth_library_error(exc: BaseException) -> gexc.GoogleAPICallError | None:
    """google-auth's failures (Vertex AI loads and refreshes its credentials inside
    each call): a network failure while refreshing is a network failure; any other
    is a credentials fault of the endpoint, never a bug of ours."""
    from google.auth import exceptions as auth_errors

    if isinstance(exc, auth_errors.TransportError):
        return transport_error("network", f"credentials refresh failed: {type(exc).__name__}")
    if isinstance(exc, auth_errors.DefaultCredentialsError):
        return no_credentials(exc)
    if isinstance(exc, auth_errors.GoogleAuthError):
        result = gexc.Unauthenticated(
            f"the endpoint's credentials could not be used ({type(exc).__name__}); refresh "
            "them (`gcloud auth application-default login`) or set access_token"
        )
        attach(result, Upstream(status="401", reason="CREDENTIALS_MISSING"))
        return result
    return None


def normalise_upload(exc: BaseException) -> gexc.GoogleAPICallError | None:
    """As :func:`normalise`, plus what ``files.upload`` raises when the resumable
    protocol's answers are not what it expects: ``KeyError`` (no upload URL on the
    start's answer) and ``ValueError`` (a final chunk not answered ``final``)."""
    found = normalise(exc)
    if found is None and isinstance(exc, KeyError | ValueError):
        return transport_error("malformed", f"malformed upload answer: {exc}")
    return found
