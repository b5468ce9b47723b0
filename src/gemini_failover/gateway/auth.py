"""Who may use the gateway: gateway keys, and the bind / Host / Origin rules of the
HTTP MCP transport (reused from :mod:`gemini_failover.server.http`).

A client sends its gateway key as the SDKs send an API key: the ``x-goog-api-key``
header or the ``key`` query parameter (``Authorization: Bearer <key>`` is accepted too,
for Prometheus). Keys are compared in constant time, each against every configured
key, and are never forwarded: upstream calls carry the gateway's own Gemini key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Sequence
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from gemini_failover.emulator.wire import (
    AsgiReplier,
    ErrorReply,
    auth_error,
    error_body,
    error_info,
)
from gemini_failover.server.http import (
    MIN_PUBLIC_TOKEN_CHARS,
    OPEN_PATHS,
    Security,
    is_loopback,
)
from gemini_failover.server.runtime import StartupError

__all__ = ["KeyCheck", "gateway_security", "presented_key"]

_MISSING = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
_WRONG = "API key not valid. Please pass a valid API key."
_MISSING_REPLY = auth_error(401, _MISSING)
_WRONG_REPLY = ErrorReply(403, error_body(403, _WRONG, details=[error_info("API_KEY_INVALID")]))


def gateway_security(host: str, keys: Sequence[str], extra_hosts: Sequence[str] = ()) -> Security:
    """The Host/Origin policy for a gateway bound to ``host`` (the MCP transport's).
    Refuses a non-loopback bind without gateway keys."""
    if not is_loopback(host) and not keys:
        raise StartupError(
            f"refusing to listen on {host} without GEMINI_FAILOVER_GATEWAY_KEYS: anyone who "
            "can reach the gateway could spend your Gemini quota. Set gateway keys, or bind "
            "127.0.0.1"
        )
    short = [k for k in keys if len(k) < MIN_PUBLIC_TOKEN_CHARS]
    if not is_loopback(host) and short:
        raise StartupError(
            f"refusing to listen on {host} with a gateway key of {len(short[0])} characters: "
            f"use at least {MIN_PUBLIC_TOKEN_CHARS} random characters (e.g. `openssl rand "
            "-hex 24`), or bind 127.0.0.1"
        )
    # for_bind's token only decides the public-bind refusal (settled above); the
    # bearer-token check is not the gateway's: KeyCheck does its own.
    policy = Security.for_bind(host, keys[0] if keys else None, extra_hosts)
    return dataclasses.replace(policy, token=None)


def presented_key(scope: Scope) -> str | None:
    """The key the request carries (header first, then ``key=``, then a bearer token)."""
    bearer = None
    for name, value in scope["headers"]:
        if name == b"x-goog-api-key":
            return str(value.decode("latin-1"))
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                bearer = credentials.strip()
    query = scope.get("query_string", b"")
    if b"key=" in query:
        for name, value in parse_qsl(query.decode("latin-1")):
            if name == "key":
                return str(value)
    return bearer


class KeyCheck:
    """ASGI middleware: every path but the probes needs a configured gateway key.

    401 UNAUTHENTICATED without a key, 403 PERMISSION_DENIED with a wrong one, in the
    Gemini error shape (ErrorInfo reason CREDENTIALS_MISSING / API_KEY_INVALID). No keys
    configured: no check (the bind rules then allow loopback only).
    """

    def __init__(self, app: ASGIApp, keys: Sequence[str]) -> None:
        self.app = app
        # Digests: compare_digest then always compares 32 bytes, whatever the lengths.
        self._digests = [hashlib.sha256(k.encode()).digest() for k in keys]

    def allows(self, key: str | None) -> bool:
        if key is None:
            return False
        digest = hashlib.sha256(key.encode()).digest()
        match = False
        for known in self._digests:  # no early exit: the time says nothing of which key
            match |= hmac.compare_digest(digest, known)
        return match

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._digests or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        key = presented_key(scope)
        if self.allows(key):
            await self.app(scope, receive, send)
            return
        reply = _MISSING_REPLY if key is None else _WRONG_REPLY
        await AsgiReplier(send).json(reply.code, reply.body)
