"""HTTP transports (streamable HTTP at /mcp, SSE at /sse), /healthz, /readyz, /metrics,
and the security in front of them.

- Bearer token: when ``GEMINI_FAILOVER_AUTH_TOKEN`` is set, every path except
  ``/healthz`` and ``/readyz`` needs ``Authorization: Bearer <token>`` (compared in
  constant time); otherwise 401 with ``WWW-Authenticate: Bearer``.
- DNS rebinding: Host and Origin must be on the allow-list (loopback names by default,
  plus ``--allowed-host``), else 421 / 403. A non-loopback bind needs a token; without
  an explicit allow-list its Host check is off (the token is what protects it).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gemini_failover.server.runtime import Runtime, StartupError
from gemini_failover.tools.validation import MAX_INPUT_BYTES

HttpTransport = Literal["http", "sse"]

#: Paths that need no token (liveness and readiness probes; no secrets in them).
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
MCP_PATH = "/mcp"
SSE_PATH = "/sse"
SSE_MESSAGES_PATH = "/messages/"
#: Room for a maximal prompt encoded as JSON (escapes) plus the envelope.
MAX_BODY_BYTES = 2 * MAX_INPUT_BYTES + 64 * 1024

_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Security:
    """What the middleware enforces. ``allowed_hosts`` empty: no Host/Origin check."""

    token: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    open_paths: frozenset[str] = field(default=OPEN_PATHS)

    @staticmethod
    def for_bind(host: str, token: str | None, extra_hosts: Sequence[str] = ()) -> Security:
        """The policy for a server bound to ``host``; refuses an open non-loopback bind."""
        if not is_loopback(host) and not token:
            raise StartupError(
                f"refusing to listen on {host} without GEMINI_FAILOVER_AUTH_TOKEN: anyone who "
                "can reach it could spend your Gemini quota. Set a token, or bind 127.0.0.1"
            )
        names = [*(_LOOPBACK_NAMES if is_loopback(host) else ()), *extra_hosts]
        if not names:
            return Security(token=token)
        hosts: list[str] = []
        origins: list[str] = []
        for name in names:
            hosts += [name, f"{name}:*"]
            origins += [
                f"http://{name}",
                f"http://{name}:*",
                f"https://{name}",
                f"https://{name}:*",
            ]
        return Security(token=token, allowed_hosts=tuple(hosts), allowed_origins=tuple(origins))

    def transport_security(self) -> TransportSecuritySettings:
        return TransportSecuritySettings(
            enable_dns_rebinding_protection=bool(self.allowed_hosts),
            allowed_hosts=list(self.allowed_hosts),
            allowed_origins=list(self.allowed_origins),
        )


def _matches(value: str, patterns: Sequence[str]) -> bool:
    for pattern in patterns:
        if pattern.endswith(":*"):
            base = pattern[:-2]
            if value.startswith(base + ":") and value[len(base) + 1 :].isdigit():
                return True
        elif value == pattern:
            return True
    return False


class SecurityMiddleware:
    """Host/Origin allow-lists and the bearer token, for every HTTP path but the probes."""

    def __init__(self, app: ASGIApp, security: Security) -> None:
        self.app = app
        self.security = security
        self._token = security.token.encode() if security.token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.security.open_paths:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        response = self._check_host(headers) or self._check_token(headers)
        if response is not None:
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _check_host(self, headers: Headers) -> Response | None:
        allowed = self.security.allowed_hosts
        if not allowed:
            return None
        if not _matches(headers.get("host", ""), allowed):
            return _error(421, "invalid_host", "Host header not allowed (DNS rebinding guard)")
        origin = headers.get("origin")
        if origin and not _matches(origin, self.security.allowed_origins):
            return _error(403, "invalid_origin", "Origin not allowed (DNS rebinding guard)")
        return None

    def _check_token(self, headers: Headers) -> Response | None:
        if self._token is None:
            return None
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return _unauthorized("missing bearer token", None)
        if not hmac.compare_digest(credentials.strip().encode(), self._token):
            return _unauthorized("invalid bearer token", "invalid_token")
        return None


def _error(status: int, code: str, description: str) -> Response:
    return JSONResponse({"error": code, "error_description": description}, status_code=status)


def _unauthorized(description: str, error: str | None) -> Response:
    challenge = 'Bearer realm="gemini-failover"'
    if error:
        challenge += f', error="{error}", error_description="{description}"'
    response = _error(401, error or "unauthorized", description)
    response.headers["WWW-Authenticate"] = challenge
    return response


# -- probe and metrics endpoints ------------------------------------------------------


def probe_routes(runtime: Runtime) -> list[Route]:
    """/healthz (liveness), /readyz (readiness) and /metrics."""

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(request: Request) -> Response:
        if not runtime.started:
            return JSONResponse({"ready": False, "status": "starting"}, status_code=503)
        status = runtime.health_now()["status"]
        ready = status != "down"
        return JSONResponse(
            {"ready": ready, "status": status, "emulator_mode": runtime.emulator_mode},
            status_code=200 if ready else 503,
        )

    async def metrics(request: Request) -> Response:
        if not runtime.started:
            return Response("starting\n", status_code=503, media_type="text/plain")
        body, content_type = runtime.metrics.render(request.headers.get("accept"))
        return Response(body, media_type=content_type)

    return [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


class _ProbeRouter:
    """Sends the probe and metrics paths to their own app, everything else (MCP, and
    the lifespan) to the SDK's app."""

    def __init__(self, probes: ASGIApp, paths: frozenset[str], app: ASGIApp) -> None:
        self.probes, self.paths, self.app = probes, paths, app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in self.paths:
            await self.probes(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def build_http_app(
    runtime: Runtime,
    server: MCPServer,
    transport: HttpTransport,
    security: Security,
) -> ASGIApp:
    """The ASGI app of an HTTP transport, secured. ``runtime`` must be started before
    the first request: the app never owns the manager."""
    if transport == "http":
        app: Starlette = server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            transport_security=security.transport_security(),
            max_request_body_size=MAX_BODY_BYTES,
        )
    else:
        app = server.sse_app(
            sse_path=SSE_PATH,
            message_path=SSE_MESSAGES_PATH,
            transport_security=security.transport_security(),
            max_request_body_size=MAX_BODY_BYTES,
        )
    routes = probe_routes(runtime)
    probes = Starlette(routes=routes)
    router = _ProbeRouter(probes, frozenset(r.path for r in routes), app)
    return SecurityMiddleware(router, security)


def metrics_app(runtime: Runtime, security: Security) -> ASGIApp:
    """The standalone /metrics (+ probes) app for ``--metrics-port`` next to stdio."""
    return SecurityMiddleware(Starlette(routes=probe_routes(runtime)), security)
