"""Answering one generate / stream / other Gemini request: the emulator's
:class:`~.decisions.Responder`, used for plain answers and by every fault decision."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from .calls import Call
from .model import Prompt, shaped_answer
from .spec import Profile
from .text import stream_chunks_for
from .wire.errors import ErrorReply
from .wire.requests import Action
from .wire.responses import (
    generate_content_response,
    stream_chunk,
    text_candidate,
    usage_metadata,
)

__all__ = ["Reply"]


class Reply:
    """Answers a call for the model ``call.model`` with this profile; ``prompt`` is set
    for generate and stream requests. ``new_response_id()`` names each answer."""

    __slots__ = ("call", "new_response_id", "profile", "prompt")

    def __init__(
        self,
        call: Call,
        profile: Profile,
        prompt: Prompt | None,
        new_response_id: Callable[[], str],
    ) -> None:
        self.call = call
        self.profile = profile
        self.prompt = prompt
        self.new_response_id = new_response_id

    @property
    def action(self) -> Action:
        return self.call.action

    async def error(self, reply: ErrorReply) -> None:
        await self.call.replier.json(reply.code, reply.body, reply.headers)

    async def json(self, payload: dict[str, Any]) -> None:
        await self.call.replier.json(200, payload)

    async def hang(self) -> None:
        await self.call.hang()

    async def single(self, payload: dict[str, Any] | bytes) -> None:
        replier = self.call.replier
        if self.action == "stream":
            await replier.start_sse()
            await replier.sse_event(payload)
            self.call.chunks_sent = 1
            await replier.sse_end()
        else:
            await replier.json(200, payload)

    async def without_text(
        self,
        candidates: list[dict[str, Any]] | None,
        prompt_feedback: dict[str, Any] | None = None,
    ) -> None:
        tokens = self.prompt.tokens if self.prompt is not None else 0
        details = dict(self.prompt.token_details) if self.prompt is not None else None
        reply = generate_content_response(
            model_version=self.call.model,
            response_id=self.new_response_id(),
            candidates=candidates,
            usage=usage_metadata(tokens, prompt_details=details or None),
            prompt_feedback=prompt_feedback,
        )
        await self.single(reply)

    async def answer(
        self,
        *,
        overlap_words: int | None = None,
        violate_schema: bool = False,
        stop_after: int | None = None,
        then: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        assert self.prompt is not None, "answer() is for generate and stream requests"
        call = self.call
        answer = shaped_answer(
            self.profile, self.prompt, overlap_words=overlap_words, violate_schema=violate_schema
        )
        model, response_id = call.model, self.new_response_id()
        extras: dict[str, Any] = {
            "grounding_metadata": answer.grounding,
            "url_context_metadata": answer.url_context,
        }
        if call.action == "generate":
            await self.json(
                generate_content_response(
                    model_version=model,
                    response_id=response_id,
                    candidates=[
                        text_candidate(
                            answer.text, answer.finish_reason, thought=answer.thought, **extras
                        )
                    ],
                    usage=answer.usage,
                )
            )
            return
        # A thought summary streams first, in a chunk of its own; the last chunk carries
        # finishReason, usage and the answer's metadata.
        pieces: list[tuple[str, str | None]] = []
        if answer.thought is not None:
            pieces.append(("", answer.thought))
        pieces += [(c, None) for c in stream_chunks_for(answer.text, self.profile.stream_chunks)]
        if not pieces:
            pieces = [("", None)]
        last = len(pieces) - 1 if stop_after is None else -1  # -1: no final chunk
        count = len(pieces) if stop_after is None else min(stop_after, len(pieces))
        await call.replier.start_sse()
        for i in range(count):
            if i and call.per_chunk > 0:
                await call.pause(call.per_chunk)
            text, thought = pieces[i]
            final = i == last
            await call.replier.sse_event(
                stream_chunk(
                    text,
                    model_version=model,
                    response_id=response_id,
                    finish_reason=answer.finish_reason if final else None,
                    usage=answer.usage if final else None,
                    thought=thought,
                    **(extras if final else {}),
                )
            )
            call.chunks_sent += 1
        if then is None:
            await call.replier.sse_end()
        else:
            await then()

    async def end_stream(self) -> None:
        await self.call.replier.sse_end()

    async def end_stream_with(self, event: dict[str, Any]) -> None:
        await self.call.replier.sse_event(event)
        await self.call.replier.sse_end()

    async def drop_connection(self) -> None:
        await self.call.drop_connection()
