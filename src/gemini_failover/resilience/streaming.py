"""Streams through the failover manager: deltas as they arrive, continuation on the
next model when a stream breaks half-way, and upstream connections that close the
moment the consumer stops.

A failure before the first delta is handled like a unary call (the same tenacity
loop, breaker and failover). After text was sent, a break continues on the next
usable model: the original conversation, the partial answer as the model's own turn
and an instruction to continue (no assistant prefill); the overlap it repeats is
trimmed by the Stitcher. Only categories that may fail over continue elsewhere; the
rest end the call with the partial text. Structured output and policy ``restart``
are buffered and regenerated whole.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from gemini_failover.config import Settings
from gemini_failover.protocol import Backend, GenerationRequest, Grounding, Usage
from gemini_failover.resilience import events as ev
from gemini_failover.resilience import grounding as citations
from gemini_failover.resilience.attempt import CooledDown
from gemini_failover.resilience.capabilities import Needs
from gemini_failover.resilience.choice import ANY, ModelChoice
from gemini_failover.resilience.clock import Clock
from gemini_failover.resilience.continuation import Stitcher, continuation_request
from gemini_failover.resilience.errors import Category, EmptyResponse, UpstreamFailure
from gemini_failover.resilience.model import ModelState
from gemini_failover.resilience.profiles import ProfileFetcher
from gemini_failover.resilience.request import BreakerRejected, GiveUp, RequestContext
from gemini_failover.resilience.results import RequestFailed, Result, SpanRecord
from gemini_failover.resilience.retry import Retrier
from gemini_failover.resilience.routing import Route
from gemini_failover.resilience.validation import Validator, validator


@dataclass(frozen=True, slots=True)
class StreamEngine:
    """What a stream needs of the engine: the generation chain's retrier (and through
    it the attempt runner and the chain), the profiles, the backend."""

    retrier: Retrier
    profiles: ProfileFetcher
    backend: Backend
    settings: Settings
    clock: Clock
    events: ev.EventBus


class ManagedStream:
    """An answer streamed through the manager: ``async for delta in stream``; then
    ``stream.result`` holds the whole text and its provenance (spans per model).

    A failure before the first delta is handled like a unary call (retry, breaker,
    failover). A break after text was sent continues on the next capable model with
    the partial answer as its own turn and an instruction to continue; the overlap it
    repeats is trimmed (policy ``continue``), or ends the request with the partial
    text (``fail``). Structured output and policy ``restart`` are buffered and
    regenerated whole instead: nothing is sent until the answer is complete.
    """

    def __init__(
        self,
        engine: StreamEngine,
        request: GenerationRequest,
        req: RequestContext,
        choice: ModelChoice = ANY,
    ) -> None:
        self._e = engine
        self._choice = choice
        self._request = request
        self._req = req
        self._stitcher = Stitcher()
        self._buffered = request.structured or engine.settings.continuation == "restart"
        self._gen: AsyncIterator[str] | None = None
        self.result: Result | None = None
        self._validate: Validator | None = None
        # Search grounding of the stitched text so far, and the open segment's own
        # (offsets from its start; shifted once the segment's overlap trim is known).
        self._grounding: Grounding | None = None
        self._segment_grounding: tuple[int, Grounding] | None = None
        self._thoughts: list[str] = []

    def __aiter__(self) -> AsyncIterator[str]:
        if self._gen is None:
            self._gen = self._run()
        return self._gen

    async def aclose(self) -> None:
        """Stop now: closes the upstream HTTP stream."""
        if self._gen is not None:
            await aclose(self._gen)

    @property
    def text(self) -> str:
        """What the consumer has been sent so far."""
        return self._stitcher.text

    async def _run(self) -> AsyncIterator[str]:
        e, req = self._e, self._req
        started = e.clock.monotonic()
        needs = Needs.of(self._request)
        self._validate = await validator(self._request, req.deadline - e.clock.monotonic())
        prov = req.provenance
        route = Route(e.retrier.runner.chain, req, needs, e.profiles, started, self._choice)
        try:
            while (state := await route.next()) is not None:
                at_char = len(self._stitcher.text)
                continuing = at_char > 0
                broke_on = route.left.name if route.left is not None else state.name
                outcome = _SegmentOutcome()
                try:
                    segment = self._segment(state, outcome)
                    async with contextlib.aclosing(segment):
                        async for delta in segment:
                            yield delta
                except GiveUp as g:
                    if continuing:
                        self._report_continuation(broke_on, state.name, route.left_reason, at_char)
                    route.gave_up(state, g.reason)
                    if self._stitcher.text and e.settings.continuation == "fail":
                        raise RequestFailed(
                            Category.STREAM_BROKEN,
                            f"the stream from {state.name} broke after "
                            f"{len(self._stitcher.text)} characters ({g.reason}); "
                            "continuation policy is 'fail'",
                            partial_text=self._stitcher.text,
                        ) from None
                    continue
                if continuing:
                    self._report_continuation(broke_on, state.name, route.left_reason, at_char)
                if self._buffered:
                    text = outcome.buffer
                    parsed = outcome.parsed  # validated inside the attempt
                    if text:
                        yield text
                else:
                    tail = self._stitcher.finish()
                    self._settle_grounding()
                    if tail:
                        yield tail
                    text, parsed = self._stitcher.text, None
                spans = self._stitcher.spans if not self._buffered else []
                prov.spans.extend(SpanRecord(s.model, s.start, s.end) for s in spans)
                if self._buffered:
                    prov.spans.append(SpanRecord(state.name, 0, len(text)))
                self.result = Result(
                    text,
                    outcome.finish_reason or "STOP",
                    outcome.usage or Usage(),
                    prov,
                    parsed,
                    grounding=outcome.grounding if self._buffered else self._grounding,
                    thoughts="".join(self._thoughts),
                )
                route.served(state)
                return
        except RequestFailed as exc:
            route.failed(exc)
            exc.partial_text = exc.partial_text or self._stitcher.text
            raise
        failed = route.exhausted()
        failed.partial_text = self._stitcher.text
        raise failed

    def _settle_grounding(self) -> None:
        """The closed segment's grounding, shifted into the stitched text's offsets by
        where the segment starts and what the Stitcher trimmed from its head."""
        pending, self._segment_grounding = self._segment_grounding, None
        if pending is None:
            return
        seg_start, raw = pending
        stitcher = self._stitcher
        shifted = citations.shift(raw, seg_start, stitcher.last_trim, len(stitcher.text))
        self._grounding = citations.merge(self._grounding, shifted)

    def _report_continuation(
        self, from_model: str, to_model: str, reason: str, at_char: int
    ) -> None:
        self._e.events.publish(
            ev.ContinuationEvent(
                self._req.id,
                from_model,
                to_model,
                at_char,
                reason,
                self._stitcher.last_trim,
            )
        )

    async def _segment(
        self, state: ModelState, outcome: _SegmentOutcome
    ) -> AsyncGenerator[str, None]:
        """Stream from one model, with the unary retry loop (tenacity) and the unary
        rate-limit policy: a 429 (or a cool-down that began while the request queued
        for a slot) sends the request back to the model's release gate, which waits it
        out, paces it, or moves it on to the next model (not a retry: no retry budget
        spent). A break after this model sent text continues on the next usable model
        (GiveUp), or, when it is the last one, is retried here as a continuation of
        what was sent."""
        retrier, req = self._e.retrier, self._req
        while True:
            usable_after = retrier.runner.chain.usable_after(state, req.stop)
            await retrier.wait_out_rate_limit(req, state, usable_after)
            try:
                async for attempt in retrier.retrying(req, state, rate_limits=False):
                    with attempt:
                        sent = self._stitcher.text
                        request = self._request
                        if sent and not self._buffered:
                            request = continuation_request(self._request, sent)
                        emitted = False
                        try:
                            deltas = self._attempt_stream(state, request, outcome)
                            async with contextlib.aclosing(deltas):
                                async for delta in deltas:
                                    emitted = True
                                    yield delta
                        except UpstreamFailure as failure:
                            if emitted and failure.action.fail_over and usable_after:
                                raise GiveUp(failure.classification.category.value) from None
                            raise  # tenacity decides: retry here (continuing), or give up
                return
            except CooledDown:
                continue
            except UpstreamFailure as failure:
                if failure.classification.category is Category.RATE_LIMITED:
                    continue  # back to the release gate (continuing what was sent)
                retrier.conclude(req, state, failure)
            except BreakerRejected:
                raise GiveUp("breaker_open") from None

    async def _attempt_stream(
        self, state: ModelState, request: GenerationRequest, outcome: _SegmentOutcome
    ) -> AsyncGenerator[str, None]:
        e = self._e
        stitcher = self._stitcher
        buffer: list[str] = []
        upstream: AsyncIterator[Any] | None = None
        try:
            async with e.retrier.runner.attempt(self._req, state) as attempt:
                if not self._buffered:
                    stitcher.start(state.name)
                seg_start = len(stitcher.text)
                outcome.grounding = None
                # No asyncio.timeout around the yields below (it would cancel the
                # consumer's code): the backend bounds each chunk's wait by the idle
                # timeout and by the request's deadline, in event-loop time.
                deadline = asyncio.get_running_loop().time() + attempt.remaining
                upstream = e.backend.stream(
                    state.name, request, timeout=e.settings.stream_idle_timeout, deadline=deadline
                )
                first = True
                async for chunk in upstream:
                    if first:
                        attempt.first_output()
                        first = False
                    if chunk.finish_reason:
                        outcome.finish_reason = chunk.finish_reason
                    if chunk.usage:
                        outcome.usage = chunk.usage
                    if chunk.thoughts:
                        self._thoughts.append(chunk.thoughts)
                    if chunk.grounding is not None:
                        outcome.grounding = citations.merge(outcome.grounding, chunk.grounding)
                        if not self._buffered and outcome.grounding is not None:
                            self._segment_grounding = (seg_start, outcome.grounding)
                    if self._buffered:
                        buffer.append(chunk.text)
                        continue
                    out = stitcher.feed(chunk.text)
                    if out:
                        yield out
                text = "".join(buffer)
                if self._buffered:
                    if not text:
                        raise EmptyResponse(f"{state.name} streamed no text")
                    if self._validate is not None:
                        outcome.parsed = await self._validate(
                            text, outcome.finish_reason, attempt.remaining
                        )
                elif not stitcher.text:
                    raise EmptyResponse(f"{state.name} streamed no text")
        except UpstreamFailure:
            if not self._buffered:
                stitcher.abandon()
                self._settle_grounding()
            raise
        finally:
            if upstream is not None:
                await aclose(upstream)
        outcome.buffer = text


@dataclass(slots=True)
class _SegmentOutcome:
    finish_reason: str | None = None
    usage: Usage | None = None
    buffer: str = ""
    parsed: Any = None  # the validated JSON value of a structured answer
    grounding: Grounding | None = None


async def aclose(iterator: AsyncIterator[Any]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()
