"""What a fired fault makes of a request, and how each decision is carried out.

A fault handler (:mod:`.fault_kinds`) returns one of these values; the Gemini endpoint
carries it out with :func:`perform` through a :class:`Responder`, the small set of
things an answer can do (send an error, hang, send a body without text, send the answer
with a twist). A new kind of answer is a new decision class with its own ``perform``;
the endpoint does not change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from .wire.errors import ErrorReply
from .wire.requests import Action
from .wire.responses import blocked_candidate, blocked_prompt_feedback

__all__ = [
    "Blocked",
    "CutStream",
    "Decision",
    "Delay",
    "Effect",
    "Empty",
    "ErrorReply",
    "Hang",
    "Malformed",
    "Overlap",
    "Responder",
    "SchemaViolation",
    "StreamErrorEvent",
    "TruncateStream",
    "perform",
]


class Responder(Protocol):
    """The ways one Gemini request can be answered (implemented per request by the
    Gemini endpoint)."""

    @property
    def action(self) -> Action: ...

    async def error(self, reply: ErrorReply) -> None:
        """Answer with an HTTP error."""

    async def hang(self) -> None:
        """Never answer: return only by raising, when the client goes or the server
        shuts down."""

    async def single(self, payload: dict[str, Any] | bytes) -> None:
        """Answer 200 with this body (streams: as the one SSE event)."""

    async def without_text(
        self,
        candidates: list[dict[str, Any]] | None,
        prompt_feedback: dict[str, Any] | None = None,
    ) -> None:
        """Answer with a GenerateContentResponse that has no text (usage: prompt only)."""

    async def answer(
        self,
        *,
        overlap_words: int | None = None,
        violate_schema: bool = False,
        stop_after: int | None = None,
        then: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Send the model's answer (``overlap_words``, ``violate_schema``: changed as
        those faults change it). Streams with ``stop_after``: that many chunks, none with
        ``finishReason``, then ``then()`` instead of the clean end."""

    async def end_stream(self) -> None:
        """End an SSE stream cleanly."""

    async def end_stream_with(self, event: dict[str, Any]) -> None:
        """Send one last SSE event, then end the stream."""

    async def drop_connection(self) -> None:
        """Close the TCP connection without finishing the answer."""


class Effect(Protocol):
    """A decision other than an HTTP error: something done to the answer."""

    async def perform(self, responder: Responder) -> None: ...


#: What a fired fault decides (a Delay is not a decision: evaluation goes on after it).
Decision = ErrorReply | Effect


async def perform(decision: Decision, responder: Responder) -> None:
    """Carry out a decision."""
    if isinstance(decision, ErrorReply):
        await responder.error(decision)
    else:
        await decision.perform(responder)


@dataclass(frozen=True, slots=True)
class Delay:
    """Wait ``seconds``, then keep evaluating later faults; streams also wait
    ``per_chunk_seconds`` between chunks."""

    seconds: float
    per_chunk_seconds: float


@dataclass(frozen=True, slots=True)
class Hang:
    """Never answer (streams with ``after``: after that many chunks)."""

    after: int | None

    async def perform(self, responder: Responder) -> None:
        if self.after is None or responder.action != "stream":
            await responder.hang()
        else:
            await responder.answer(stop_after=self.after, then=responder.hang)


@dataclass(frozen=True, slots=True)
class CutStream:
    """Send ``after`` chunks, then close the connection mid-stream."""

    after: int

    async def perform(self, responder: Responder) -> None:
        await responder.answer(stop_after=self.after, then=responder.drop_connection)


@dataclass(frozen=True, slots=True)
class TruncateStream:
    """Send ``after`` chunks, then end the stream cleanly, without a finishReason."""

    after: int

    async def perform(self, responder: Responder) -> None:
        await responder.answer(stop_after=self.after, then=responder.end_stream)


@dataclass(frozen=True, slots=True)
class StreamErrorEvent:
    """Send ``after`` chunks, then an ``{"error": ...}`` event, then end."""

    after: int
    error: dict[str, Any]

    async def perform(self, responder: Responder) -> None:
        async def send_error() -> None:
            await responder.end_stream_with(self.error)

        await responder.answer(stop_after=self.after, then=send_error)


#: Cut-off JSON: for a stream one event of it, else the whole body.
_BROKEN_STREAM_EVENT = b'{"candidates": [{"content": {"parts": [{"text": "'
_BROKEN_BODY = b'{"candidates": [{"content": {"parts": [{"text": '


@dataclass(frozen=True, slots=True)
class Malformed:
    """Answer 200 with a body that is not JSON."""

    async def perform(self, responder: Responder) -> None:
        stream = responder.action == "stream"
        await responder.single(_BROKEN_STREAM_EVENT if stream else _BROKEN_BODY)


@dataclass(frozen=True, slots=True)
class Empty:
    """Answer 200 without text: no ``candidates``, an empty list, or a candidate without
    parts."""

    variant: Literal["no_candidates", "empty_list", "no_parts"]

    async def perform(self, responder: Responder) -> None:
        candidates: list[dict[str, Any]] | None = None
        if self.variant == "empty_list":
            candidates = []
        elif self.variant == "no_parts":
            candidates = [{"content": {"role": "model"}, "finishReason": "STOP", "index": 0}]
        await responder.without_text(candidates)


@dataclass(frozen=True, slots=True)
class Blocked:
    """Answer 200 with a blocked candidate, or (``prompt``) a blocked prompt."""

    prompt: bool
    reason: str

    async def perform(self, responder: Responder) -> None:
        if self.prompt:
            await responder.without_text(None, blocked_prompt_feedback(self.reason))
        else:
            await responder.without_text([blocked_candidate(self.reason)])


@dataclass(frozen=True, slots=True)
class Overlap:
    """Continue an answer starting ``words`` words before the end of what was sent."""

    words: int

    async def perform(self, responder: Responder) -> None:
        await responder.answer(overlap_words=self.words)


@dataclass(frozen=True, slots=True)
class SchemaViolation:
    """Answer JSON that does not validate against the requested schema."""

    async def perform(self, responder: Responder) -> None:
        await responder.answer(violate_schema=True)
