"""A lean HTTP/1.1 client for the direct path (:mod:`.wire`): keep-alive connections
to one origin, responses parsed by httptools (llhttp, the parser of Node.js and
uvicorn), nothing else per call.

Why not httpx2 (the SDK's client): on a gateway's short calls its request, response,
auth, redirect and transport layers cost ~0.5 ms of CPU per call, half of everything
the gateway process spends; this client does the same exchange in a tenth of that.
It speaks only what the Gemini API needs: one request at a time per connection,
``Content-Length`` request bodies, answers framed by ``Content-Length``, chunks or the
connection's close, TLS for ``https`` (the system's CA bundle, or ``SSL_CERT_FILE`` /
``SSL_CERT_DIR``). Proxies are not spoken: :func:`proxied` tells the backend to keep
the SDK path when a proxy variable is set; redirects are not followed here: the
backend hands a redirected call to the SDK, which follows them.

Failures are ``ConnectionError`` (refused, reset, closed early, an unparseable
answer), which the error table reads as a network failure, as it does httpx2's
transport errors. A call cancelled half-way (its timeout, a client that went away)
closes its connection: only a connection whose answer was read to the end is reused.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import re
import ssl
from collections.abc import AsyncGenerator, Mapping
from typing import cast
from urllib.parse import urlsplit

import httptools

__all__ = ["Origin", "Response", "proxied"]

_PROXY_VARIABLES = ("https_proxy", "http_proxy", "all_proxy")
#: Unread answer bytes a connection buffers before it stops reading the socket.
_HIGH_WATER = 256 * 1024
#: What httpx2 (the SDK's client) leaves as it is in a URL path: visible ASCII but
#: " # < > ? ` { } (so "%" too: an escape in a model name is kept, as there).
_PATH_SAFE = frozenset(map(chr, range(0x21, 0x7F))) - frozenset('"#<>?`{}')
_PLAIN_PATH = re.compile("[" + re.escape("".join(sorted(_PATH_SAFE))) + "]*")
#: The largest answer body read whole (a 65k-token answer is well under 1 MB).
MAX_BODY = 64 * 1024 * 1024


def proxied(environ: Mapping[str, str] | None = None) -> bool:
    """Whether a proxy variable is set (this client would not honour it)."""
    env = os.environ if environ is None else environ
    return any(env.get(name) or env.get(name.upper()) for name in _PROXY_VARIABLES)


def _ssl_context() -> ssl.SSLContext:
    cafile = os.environ.get("SSL_CERT_FILE") or None
    capath = os.environ.get("SSL_CERT_DIR") or None
    if cafile is None and capath is None:
        try:
            import certifi  # what httpx2 (and so the SDK) trusts by default

            cafile = certifi.where()
        except ImportError:  # pragma: no cover - certifi comes with httpx2
            pass
    return ssl.create_default_context(cafile=cafile, capath=capath)


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one exchange at a time."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()  # its transport works in this loop only
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.status = 0
        self.reason = ""
        self.headers: dict[str, str] = {}
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.paused = False
        self.complete = False
        self.headers_done = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport: no isinstance check
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"malformed HTTP answer: {exc}"))
            self.abort()

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete and exc is None and self._ends_at_close():
            self.complete = True  # its body was everything up to the close
            self._wake()
        if not self.complete:
            detail = f": {exc}" if exc else ""
            self._fail(ConnectionError(f"connection closed before the answer ended{detail}"))

    def _ends_at_close(self) -> bool:
        """An answer with neither a length nor chunks: its body ends when the connection
        does (RFC 9112, section 6.3). httptools exposes no llhttp_finish, so the end of
        such a body is recognised here."""
        if not self.headers_done or "content-length" in self.headers:
            return False
        return "chunked" not in self.headers.get("transfer-encoding", "").lower()

    # -- httptools callbacks -------------------------------------------------------------

    def on_status(self, status: bytes) -> None:
        self.reason = status.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        known = self.headers.get(key)
        self.headers[key] = text if known is None else f"{known}, {text}"

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        if not self.parser.should_keep_alive():
            self.closed = True
            if self.transport is not None:
                self.transport.close()
        self._wake()

    # -- the client's side -----------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self._wake()

    def start(self, request: bytes) -> None:
        """Send one request (head and body) on an idle connection."""
        self.status, self.reason, self.headers = 0, "", {}
        self.chunks = collections.deque()
        self.buffered, self.complete, self.headers_done, self.error = 0, False, False, None
        assert self.transport is not None
        self.transport.write(request)

    async def wait(self) -> None:
        """Until something new arrived (headers, a body chunk, the end, a failure)."""
        if self.error is not None:
            raise self.error
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None
        if self.error is not None:
            raise self.error

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class Response:
    """An answer whose headers have arrived; read its body once (:meth:`read` or
    :meth:`stream`), or :meth:`close` it."""

    __slots__ = ("_conn", "_origin", "headers", "reason_phrase", "status")

    def __init__(self, origin: Origin, conn: _Connection) -> None:
        self._origin, self._conn = origin, conn
        self.status = conn.status
        self.reason_phrase = conn.reason
        self.headers: Mapping[str, str] = conn.headers

    async def read(self) -> bytes:
        """The whole body, drained as it arrives (the connection pauses reading past
        its high-water mark until it is taken); more than MAX_BODY bytes fail."""
        conn = self._conn
        parts: list[bytes] = []
        size = 0
        try:
            while True:
                if conn.chunks:
                    part = conn.take()
                    size += len(part)
                    if size > MAX_BODY:
                        raise ConnectionError(f"answer body over {MAX_BODY} bytes")
                    parts.append(part)
                    continue
                if conn.complete:
                    break
                await conn.wait()
        except BaseException:
            conn.abort()
            raise
        self._origin.release(conn)
        return b"".join(parts)

    async def stream(self) -> AsyncGenerator[bytes, None]:
        """The body as it arrives (closing the iterator early closes the connection)."""
        conn = self._conn
        finished = False
        try:
            while True:
                if conn.chunks:
                    yield conn.take()
                    continue
                if conn.complete:
                    finished = True
                    break
                await conn.wait()
        finally:
            if finished:
                self._origin.release(conn)
            else:
                conn.abort()

    def close(self) -> None:
        """Done with the answer: the connection is reused only if it was read out."""
        if self._conn.complete and not self._conn.chunks:
            self._origin.release(self._conn)
        else:
            self._conn.abort()


def _target(path: str) -> str:
    """The request target for ``path``: its path part percent-encoded as httpx2 encodes
    it (non-ASCII as UTF-8, a space, " < > ` { }), control characters refused as httpx2
    refuses them (nothing can split the request head)."""
    head, mark, query = path.partition("?")
    if _PLAIN_PATH.fullmatch(head):
        return path
    if any(char.isascii() and not char.isprintable() for char in path):
        raise ValueError("a control character in the request URL")
    encoded = "".join(
        char if char in _PATH_SAFE else "".join(f"%{byte:02X}" for byte in char.encode())
        for char in head
    )
    return encoded + mark + query


class Origin:
    """Keep-alive connections to the origin of ``base_url``, sending ``headers`` with
    every request."""

    def __init__(self, base_url: str, headers: Mapping[str, str], *, max_idle: int = 256) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.prefix = parts.path.rstrip("/")
        default_port = self.port == (443 if self.tls else 80)
        authority = self.host if ":" not in self.host else f"[{self.host}]"
        if not default_port:
            authority = f"{authority}:{self.port}"
        lines = [f"Host: {authority}", *(f"{k}: {v}" for k, v in headers.items())]
        self._head = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        self._idle: list[_Connection] = []
        self._max_idle = max_idle
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        if self.tls and self._ssl is None:
            self._ssl = _ssl_context()
        try:
            _, conn = await loop.create_connection(
                _Connection,
                self.host,
                self.port,
                ssl=self._ssl if self.tls else None,
                server_hostname=self.host if self.tls else None,
            )
        except ConnectionError:
            raise
        except (OSError, ssl.SSLError) as exc:  # no such host, unreachable, TLS refused
            raise ConnectionError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        return conn

    def release(self, conn: _Connection) -> None:
        if self._closed or conn.closed or not conn.complete or len(self._idle) >= self._max_idle:
            conn.abort()
        else:
            self._idle.append(conn)

    async def post(self, path: str, body: bytes) -> Response:
        """POST ``body`` (JSON) to ``path`` (under the base URL's path; a query after
        "?" is sent as it is); the answer once its headers have arrived."""
        target = _target(path)  # before a connection is taken: a bad path raises
        conn = None
        loop = asyncio.get_running_loop()
        while self._idle:
            idle = self._idle.pop()
            if idle.loop is not loop:  # left by another event loop (closed, perhaps)
                with contextlib.suppress(RuntimeError):
                    idle.abort()
            elif not idle.closed:
                conn = idle
                break
        if conn is None:
            conn = await self._connect()
        request = b"".join(
            (
                f"POST {self.prefix}{target} HTTP/1.1\r\n".encode("latin-1"),
                self._head,
                b"Content-Length: %d\r\n\r\n" % len(body),
                body,
            )
        )
        try:
            conn.start(request)
            while not conn.headers_done:
                await conn.wait()
        except BaseException:
            conn.abort()
            raise
        return Response(self, conn)

    def close(self) -> None:
        """Close the idle connections; those still in use are closed when released."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(RuntimeError):  # its event loop may be closed
                conn.abort()
