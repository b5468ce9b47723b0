"""HTTP transports (streamable HTTP at /mcp, SSE at /sse), /healthz, /readyz, /metrics,
and the security in front of them.

- Bearer token: when ``GEMINI_FAILOVER_AUTH_TOKEN`` is set, every path except
  ``/healthz`` and ``/readyz`` needs ``Authorization: Bearer <token>`` (compared in
  constant time); otherwise 401 with ``WWW-Authenticate: Bearer``.
- DNS rebinding: Host and Origin must be on the allow-list (loopback names by default,
  plus ``--allowed-host``), else 421 / 403. A non-loopback bind needs a token of at
  least MIN_PUBLIC_TOKEN_CHARS characters; without an explicit allow-list its Host
  check is off (the token is what protects it).
- Only HTTP reaches the app: a WebSocket scope is closed (HTTP 403) before any of it
  runs, other scope types are ignored; the lifespan passes through.
- Limits (settings ``http.*``): request headers must arrive within ``header_timeout``
  (uvicorn only times out idle keep-alive connections, so :func:`guarded_h11` adds
  it), idle keep-alive connections close after ``idle_timeout``, connections beyond
  ``max_connections`` are closed as they are accepted, and at most ``max_sessions``
  MCP sessions (streamable HTTP: the SDK's cap; SSE: :class:`SessionCap`) are open.
  Bodies are capped at MAX_BODY_BYTES, derived from the tool limits.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import h11
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from gemini_failover.jsonschema_guard import MAX_SCHEMA_BYTES
from gemini_failover.server.connection import DISCONNECT_SIGNAL, CorkedTransport, DisconnectSignal
from gemini_failover.server.runtime import Runtime, StartupError
from gemini_failover.tools.validation import MAX_INPUT_BYTES
from gemini_failover.tracing_switch import tracing_configured

if TYPE_CHECKING:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from gemini_failover.config import HttpSettings

log = logging.getLogger("gemini_failover.server")

HttpTransport = Literal["http", "sse"]

#: Paths that need no token (liveness and readiness probes; no secrets in them).
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
MCP_PATH = "/mcp"
SSE_PATH = "/sse"
SSE_MESSAGES_PATH = "/messages/"
#: JSON may write any character as ``\\uXXXX``: 6 bytes for a 1-byte UTF-8 character
#: (the worst ratio; 2-byte characters: 3x, 3-byte: 2x, 4-byte as a surrogate pair: 3x).
JSON_ESCAPE_FACTOR = 6
#: JSON-RPC envelope, argument names, chat turn objects (1000 of them), options.
ENVELOPE_BYTES = 256 * 1024
#: Every call the tool limits admit fits: the whole input (4 MiB of UTF-8) and the
#: schema (64 KiB), each fully escaped, plus the envelope: about 24.6 MiB.
MAX_BODY_BYTES = JSON_ESCAPE_FACTOR * (MAX_INPUT_BYTES + MAX_SCHEMA_BYTES) + ENVELOPE_BYTES
#: Shortest bearer token accepted on a non-loopback bind.
MIN_PUBLIC_TOKEN_CHARS = 16

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
        """The policy for a server bound to ``host``; refuses an open non-loopback bind
        (no token, a blank one, or one shorter than MIN_PUBLIC_TOKEN_CHARS)."""
        token = token.strip() if token else None  # compared with the header's, stripped
        if not is_loopback(host) and not token:
            raise StartupError(
                f"refusing to listen on {host} without GEMINI_FAILOVER_AUTH_TOKEN (it is unset "
                "or blank): anyone who can reach it could spend your Gemini quota. Set a "
                "token, or bind 127.0.0.1"
            )
        if not is_loopback(host) and token and len(token) < MIN_PUBLIC_TOKEN_CHARS:
            raise StartupError(
                f"refusing to listen on {host} with a GEMINI_FAILOVER_AUTH_TOKEN of "
                f"{len(token)} characters: use at least {MIN_PUBLIC_TOKEN_CHARS} random "
                "characters (e.g. `openssl rand -hex 32`), or bind 127.0.0.1"
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
        kind = scope["type"]
        if kind == "lifespan" or (kind == "http" and scope["path"] in self.security.open_paths):
            await self.app(scope, receive, send)
            return
        if kind != "http":
            await _refuse_scope(scope, receive, send)
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


async def _refuse_scope(scope: Scope, receive: Receive, send: Send) -> None:
    """Everything but HTTP: a WebSocket handshake is refused (the server answers 403),
    anything else is dropped. Neither reaches the app nor skips the checks above."""
    if scope["type"] == "websocket":
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.close", "code": 1008, "reason": "HTTP only"})
        return
    log.warning("ignored an ASGI %r scope: only HTTP is served", scope["type"])


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


class SessionCap:
    """At most ``limit`` SSE sessions: a session lives as long as its GET /sse
    request, so the excess is answered 503 before the SDK opens one."""

    def __init__(self, app: ASGIApp, limit: int, path: str = SSE_PATH) -> None:
        self.app, self.limit, self.path = app, limit, path
        self.open = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        if self.open >= self.limit:
            response = _error(503, "too_many_sessions", f"{self.limit} SSE sessions are open")
            response.headers["Retry-After"] = "5"
            await response(scope, receive, send)
            return
        self.open += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.open -= 1


def build_http_app(
    runtime: Runtime,
    server: MCPServer,
    transport: HttpTransport,
    security: Security,
) -> ASGIApp:
    """The ASGI app of an HTTP transport, secured. ``runtime`` must be started before
    the first request: the app never owns the manager."""
    max_sessions = runtime.settings.http.max_sessions
    if transport == "http":
        app: ASGIApp = server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            transport_security=security.transport_security(),
            max_request_body_size=MAX_BODY_BYTES,
            max_sessions=max_sessions,
        )
    else:
        sse = server.sse_app(
            sse_path=SSE_PATH,
            message_path=SSE_MESSAGES_PATH,
            transport_security=security.transport_security(),
            max_request_body_size=MAX_BODY_BYTES,
        )
        app = SessionCap(sse, max_sessions)
    routes = probe_routes(runtime)
    probes = Starlette(routes=routes)
    router: ASGIApp = _ProbeRouter(probes, frozenset(r.path for r in routes), app)
    if tracing_configured():  # each request in the trace context of its traceparent
        from gemini_failover.observability.tracing import TraceContextASGI

        router = TraceContextASGI(router)
    return SecurityMiddleware(router, security)


def metrics_app(runtime: Runtime, security: Security) -> ASGIApp:
    """The standalone /metrics (+ probes) app for ``--metrics-port`` next to stdio."""
    return SecurityMiddleware(Starlette(routes=probe_routes(runtime)), security)


# -- connection limits (uvicorn's h11 protocol, guarded) ----------------------------------


def guarded_h11(limits: HttpSettings) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a header timeout and a connection cap.

    uvicorn times out a keep-alive connection only once a response has been sent: a
    client that connects and sends nothing, or half a request line, holds a file
    descriptor for ever. Here every request's headers must be complete within
    ``limits.header_timeout`` seconds of the connection opening (or of the first byte
    of the next request on a kept-alive one), and a connection accepted while
    ``limits.max_connections`` are open is closed at once.
    """

    class GuardedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            if len(self.connections) > limits.max_connections:
                log.warning("connection refused: %d connections open", limits.max_connections)
                self.transport.close()
                return
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._header_timer is None and self.conn.their_state is h11.IDLE:
                self._arm()
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._header_timer = self.loop.call_later(limits.header_timeout, self._expired)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _expired(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return GuardedH11Protocol


#: The largest request head (request line and headers) the httptools protocol reads,
#: as large as h11's limit (h11 answers 400 past it).
MAX_HEAD_BYTES = 16 * 1024
_HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-length: 0\r\nconnection: close\r\n\r\n"
)


def guarded_httptools(limits: HttpSettings) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol (its parser is C: several times cheaper per request
    than h11) with the same header timeout and connection cap as :func:`guarded_h11`."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        # One timer per connection, moved only when it fires: arming and disarming for
        # each request on a kept-alive connection just sets the deadline (a timer
        # scheduled and cancelled per request costs more than the check itself).
        _header_timer: asyncio.TimerHandle | None = None
        _head_deadline: float | None = None  # when the head being read must be complete
        _awaiting_headers = True  # no request's headers are being read: the next one's
        _head_bytes = 0  # bytes received of the request head being read

        _signal: DisconnectSignal
        _corked: CorkedTransport

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            # an answer's head and body leave in one write (see CorkedTransport)
            self._corked = CorkedTransport(transport, self.loop)
            super().connection_made(self._corked)
            self._signal = DisconnectSignal()
            if len(self.connections) > limits.max_connections:
                log.warning("connection refused: %d connections open", limits.max_connections)
                self.transport.close()
                return
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._head_deadline is None and self._awaiting_headers:
                self._arm()
            super().data_received(data)
            # llhttp and uvicorn keep every header line: bound a request's head as h11
            # does (checked after feeding: a chunk that ends the head is not counted)
            if self._awaiting_headers and not self.transport.is_closing():
                self._head_bytes += len(data)
                if self._head_bytes > MAX_HEAD_BYTES:
                    log.warning("request head over %d bytes: refused", MAX_HEAD_BYTES)
                    self.transport.write(_HEAD_TOO_LARGE)
                    self.transport.close()

        def eof_received(self) -> None:
            # the client half-closed: uvicorn lets asyncio close the transport, which
            # then drops any write, so an answer already written must leave now. (An
            # answer still being made is not sent: end-of-stream is taken as the
            # client leaving, as nginx takes it, so that its upstream call stops.)
            self._corked.flush()
            super().eof_received()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.scope[DISCONNECT_SIGNAL] = self._signal  # type: ignore[literal-required]

        def on_headers_complete(self) -> None:
            self._awaiting_headers = False
            self._head_bytes = 0
            self._disarm()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            # the answer is whole: it leaves now, not after the rest of this loop step
            # (the request's clean-up, uvicorn's bookkeeping) and the next poll
            self._corked.flush()
            self._awaiting_headers = not self.pipeline
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            self._corked.lost()
            super().connection_lost(exc)
            self._signal.fire()

        def _arm(self) -> None:
            self._head_deadline = self.loop.time() + limits.header_timeout
            if self._header_timer is None:
                self._header_timer = self.loop.call_at(self._head_deadline, self._expired)

        def _disarm(self) -> None:
            self._head_deadline = None

        def _expired(self) -> None:
            self._header_timer = None
            deadline = self._head_deadline
            if deadline is None:  # no head being read: the next one arms the timer again
                return
            if self.loop.time() < deadline:  # a later request's head: wait for its deadline
                self._header_timer = self.loop.call_at(deadline, self._expired)
            elif self._awaiting_headers and not self.transport.is_closing():
                self.transport.close()

    return GuardedHttpToolsProtocol


def uvicorn_limits(
    limits: HttpSettings, parser: Literal["h11", "httptools"] = "h11"
) -> dict[str, Any]:
    """uvicorn.Config arguments for the HTTP limits (and HTTP only: no WebSocket);
    ``parser``: uvicorn's h11 or httptools protocol, guarded alike."""
    protocol = guarded_h11(limits) if parser == "h11" else guarded_httptools(limits)
    return {
        "http": protocol,
        "ws": "none",
        "timeout_keep_alive": limits.idle_timeout,
        # uvicorn answers 503 to a request while this many connections or tasks are
        # open; one more than the cap, which guarded_h11 enforces at accept.
        "limit_concurrency": limits.max_connections + 1,
    }
