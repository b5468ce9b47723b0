"""Sending Gemini API answers over ASGI: JSON bodies, SSE frames, reading request bodies.

Hand-written on the raw ASGI interface rather than with Starlette's responses because a
stream must be able to stop anywhere (cut mid-stream, end without its terminator event,
wait between frames while watching for the client to go away), which a
``StreamingResponse`` hides.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.types import Message, Receive, Send

from gemini_failover import json_codec

__all__ = [
    "JSON_HEADERS",
    "SSE_HEADERS",
    "AsgiReplier",
    "BodyTooLarge",
    "ClientDisconnected",
    "encode_json",
    "read_body",
    "read_body_limited",
    "sse_frame",
]

JSON_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-type", b"application/json; charset=UTF-8"),
)
#: ``streamGenerateContent?alt=sse``: one ``data:`` event per chunk, no ``[DONE]``.
SSE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
)


class ClientDisconnected(Exception):
    """The client went away before its request body was read."""


def encode_json(payload: Any) -> bytes:
    """JSON bytes (``bytes`` are passed through as they are: already encoded, or
    deliberately broken)."""
    return payload if isinstance(payload, bytes) else json_codec.dumps(payload)


def sse_frame(payload: Any) -> bytes:
    """One server-sent event as Gemini frames it: ``data: {json}\\r\\n\\r\\n``."""
    return b"data: " + encode_json(payload) + b"\r\n\r\n"


class BodyTooLarge(Exception):
    """The request body is over the limit given to :func:`read_body_limited`."""


async def read_body_limited(receive: Receive, limit: int) -> bytes:
    """The whole request body, at most ``limit`` bytes: raises BodyTooLarge as soon as
    more arrive (without reading the rest), ClientDisconnected if the client goes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def read_body(receive: Receive) -> bytes:
    """The whole request body; raises ClientDisconnected if the client goes first."""
    chunks: list[bytes] = []
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


class AsgiReplier:
    """Writes one HTTP answer to an ASGI ``send``; ``status`` is what was sent (0: none)."""

    __slots__ = ("send", "status")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.status = 0

    async def start(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> None:
        self.status = status
        await self.send({"type": "http.response.start", "status": status, "headers": list(headers)})

    async def json(
        self, status: int, payload: Any, extra_headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        """A complete JSON answer (an error body, a response, or raw bytes)."""
        body = encode_json(payload)
        headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
        headers += [(k.encode(), v.encode()) for k, v in extra_headers]
        await self.start(status, headers)
        await self.send({"type": "http.response.body", "body": body})

    async def start_sse(self) -> None:
        await self.start(200, SSE_HEADERS)

    async def sse_event(self, payload: Any) -> None:
        await self.send(
            {"type": "http.response.body", "body": sse_frame(payload), "more_body": True}
        )

    async def sse_end(self) -> None:
        """End the stream cleanly (the chunked-encoding terminator)."""
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})
