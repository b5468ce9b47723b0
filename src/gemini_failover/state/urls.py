"""A Redis URL without its password: for logs, ``health()`` and error text.

Standard library only, so that settings, health and the CLI can mask a URL without
importing the Redis client."""

from __future__ import annotations

import contextlib
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

__all__ = ["redact_url", "scrub", "secrets_of"]


def redact_url(url: str) -> str:
    """``redis://user:secret@host/0`` -> ``redis://user:***@host/0`` (also a
    ``password=`` query parameter); a URL without a password is returned unchanged.
    Unparseable input is replaced entirely."""
    try:
        parts = urlsplit(url)
        redacted = url
        if parts.password is not None:
            userinfo, _, hostinfo = parts.netloc.rpartition("@")
            user = userinfo.partition(":")[0]
            redacted = redacted.replace(parts.netloc, f"{user}:***@{hostinfo}", 1)
        if parts.query:
            pairs = parse_qsl(parts.query, keep_blank_values=True)
            if any(k.lower() == "password" for k, _ in pairs):
                query = urlencode(
                    [(k, "***" if k.lower() == "password" else v) for k, v in pairs], safe="*"
                )
                redacted = redacted.replace(f"?{parts.query}", f"?{query}", 1)
        return redacted
    except ValueError:
        return "<redis url>"


def secrets_of(url: str) -> list[str]:
    """The password(s) in a URL, raw and percent-decoded, longest first: what to
    scrub from error text (and what a log redactor should know as secrets, rather
    than the whole URL)."""
    found: set[str] = set()
    with contextlib.suppress(ValueError):
        parts = urlsplit(url)
        if parts.password:
            found.update({parts.password, unquote(parts.password), quote(parts.password)})
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key.lower() == "password" and value:
                found.add(value)
    return sorted((s for s in found if s), key=len, reverse=True)


def scrub(exc: BaseException, secrets: list[str]) -> str:
    """``Type: message`` of an exception with every secret masked, at most 300 chars."""
    text = str(exc) or type(exc).__name__
    for secret in secrets:
        text = text.replace(secret, "***")
    return f"{type(exc).__name__}: {text}"[:300]
