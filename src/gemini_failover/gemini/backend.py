"""GeminiBackend: one google-genai client per instance, created on first use.

No module-level configuration, no network and no SDK import in the constructor:
``google.genai`` costs ~0.5 s to import, so it is imported the first time a call
needs it (or in a worker thread by :meth:`GeminiBackend.warm_up`).

SDK retries are off (``HttpRetryOptions(attempts=1)``: left unset, the SDK still
retries a refused connection once after 1-10 s) and so is automatic continuation:
retries, timeouts and continuation belong to the failover manager. Every failure
leaves this module as a ``google.api_core.exceptions`` class (see ``errors.py``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from google.api_core import exceptions as gexc

from gemini_failover.gemini import errors
from gemini_failover.protocol import (
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    StreamChunk,
    Turn,
    Usage,
)
from gemini_failover.resilience.errors import EmptyResponse, ResponseBlocked

if TYPE_CHECKING:
    from google import genai
    from google.genai import types as genai_types

#: finish reasons that mean "the model refused", not "the model finished".
_BLOCK_REASONS = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
)


@functools.lru_cache(maxsize=256)
def _sdk_config(
    system_instruction: str | None,
    temperature: float | None,
    top_p: float | None,
    max_output_tokens: int | None,
    stop_sequences: tuple[str, ...],
    schema_json: str | None,
) -> genai_types.GenerateContentConfig:
    from google.genai import types

    config = types.GenerateContentConfig(
        system_instruction=system_instruction,
        temperature=temperature,
        top_p=top_p,
        max_output_tokens=max_output_tokens,
        stop_sequences=list(stop_sequences) or None,
        automatic_continuation=False,
        # no tools are passed; skip the SDK's function-calling loop entirely
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    if schema_json is not None:
        config.response_mime_type = "application/json"
        config.response_json_schema = json.loads(schema_json)
    return config


class _Failed:
    """An SDK failure carried from the stream-reading task to the consumer."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = object()


def _import_sdk() -> None:
    from google import genai  # noqa: F401


class GeminiBackend:
    """A Gemini endpoint reached through google-genai. Cheap to construct."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        api_version: str = "v1beta",
    ) -> None:
        self._api_key = api_key
        self._base_url = base_url
        self._api_version = api_version
        self._client: genai.Client | None = None
        self._info_cache: dict[str, ModelInfo] = {}

    def __repr__(self) -> str:  # never show the key
        return f"GeminiBackend(base_url={self._base_url!r}, api_version={self._api_version!r})"

    async def warm_up(self) -> None:
        """Import the SDK in a worker thread so the first request does not pay for it."""
        await asyncio.to_thread(_import_sdk)

    @property
    def _aio(self) -> Any:
        return self._sdk_client().aio

    def _sdk_client(self) -> genai.Client:
        if self._client is None:
            from google import genai
            from google.genai import types

            self._client = genai.Client(
                api_key=self._api_key,
                http_options=types.HttpOptions(
                    base_url=self._base_url,
                    api_version=self._api_version,
                    retry_options=types.HttpRetryOptions(attempts=1),
                ),
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aio.aclose()
            self._client = None

    # -- request building -------------------------------------------------------

    @staticmethod
    def _contents(turns: tuple[Turn, ...]) -> list[dict[str, Any]]:
        return [{"role": t.role, "parts": [{"text": t.text}]} for t in turns]

    @staticmethod
    def _config(request: GenerationRequest) -> genai_types.GenerateContentConfig:
        """The SDK config for a request (cached by its values: building and validating
        the pydantic model costs more than the rest of our per-call work together)."""
        schema = request.response_schema
        return _sdk_config(
            request.system_instruction,
            request.temperature,
            request.top_p,
            request.max_output_tokens,
            request.stop_sequences,
            json.dumps(schema, sort_keys=True) if schema is not None else None,
        )

    # -- response reading -------------------------------------------------------

    @staticmethod
    def _usage(response: genai_types.GenerateContentResponse) -> Usage | None:
        meta = response.usage_metadata
        if meta is None:
            return None
        prompt = meta.prompt_token_count or 0
        output = meta.candidates_token_count or 0
        return Usage(prompt, output, meta.total_token_count or prompt + output)

    @staticmethod
    def _read(response: genai_types.GenerateContentResponse) -> tuple[str, str | None]:
        """(text, finish_reason) of the first candidate; raises for blocks."""
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason is not None:
            raise ResponseBlocked(f"prompt blocked: {feedback.block_reason.value}")
        if not response.candidates:
            return "", None
        candidate = response.candidates[0]
        reason = candidate.finish_reason.value if candidate.finish_reason else None
        parts = candidate.content.parts if candidate.content and candidate.content.parts else []
        text = "".join(p.text for p in parts if p.text and not p.thought)
        if reason in _BLOCK_REASONS:
            raise ResponseBlocked(reason or "unknown")
        return text, reason

    # -- operations -------------------------------------------------------------

    async def generate(
        self, model: str, request: GenerationRequest, *, timeout: float
    ) -> GenerationResult:
        try:
            async with asyncio.timeout(timeout):
                response = await self._aio.models.generate_content(
                    model=model,
                    contents=self._contents(request.contents),
                    config=self._config(request),
                )
        except _catchable() as exc:
            raise _normalised(exc) from exc
        text, reason = self._read(response)  # first: a blocked prompt has no candidates
        if not text:
            raise EmptyResponse(f"{model} returned an empty answer (finish {reason})")
        return GenerationResult(
            text=text,
            finish_reason=reason or "STOP",
            usage=self._usage(response) or Usage(),
            model_version=response.model_version,
        )

    async def stream(
        self,
        model: str,
        request: GenerationRequest,
        *,
        timeout: float,
        deadline: float | None = None,
    ) -> AsyncIterator[StreamChunk]:
        """Yield text deltas. Each chunk's wait is bounded by ``timeout`` (idle) and by
        ``deadline`` (event-loop time) for the whole stream. The last chunk of a
        complete stream has a finish_reason; a stream that ends without one raises a
        ``truncated`` ServiceUnavailable instead of passing for a success."""
        loop = asyncio.get_running_loop()

        def wait_until() -> float:
            idle = loop.time() + timeout
            return idle if deadline is None else min(idle, deadline)

        # The SDK's stream is a chain of nested async generators; closing the outer
        # one leaves the HTTP response open until the garbage collector finalises the
        # inner ones. Reading it in a task of its own lets us cancel that task, which
        # unwinds every generator and closes the connection at once.
        queue: asyncio.Queue[Any] = asyncio.Queue()
        catchable = _catchable()

        async def read() -> None:
            try:
                upstream = await self._aio.models.generate_content_stream(
                    model=model,
                    contents=self._contents(request.contents),
                    config=self._config(request),
                )
                async for response in upstream:
                    queue.put_nowait(response)
            except catchable as exc:
                queue.put_nowait(_Failed(exc))
            finally:
                queue.put_nowait(_END)

        reader = asyncio.create_task(read(), name=f"gemini-stream-{model}")
        finished = False
        answered = False  # did any chunk carry a candidate?
        try:
            while True:
                try:
                    async with asyncio.timeout_at(wait_until()):
                        item = await queue.get()
                except TimeoutError as exc:
                    raise _normalised(exc) from exc
                if item is _END:
                    await asyncio.wait([reader])
                    bug = reader.exception()
                    if bug is not None:  # not an upstream failure: propagate it
                        raise bug
                    break
                if isinstance(item, _Failed):
                    raise _normalised(item.exc) from item.exc
                text, reason = self._read(item)
                answered = answered or bool(item.candidates)
                if reason is not None:
                    finished = True
                if text or reason is not None:
                    yield StreamChunk(text=text, finish_reason=reason, usage=self._usage(item))
        finally:
            reader.cancel()
            await asyncio.wait([reader])
        if not answered:
            raise EmptyResponse(f"{model} streamed no candidates")
        if not finished:
            raise errors.transport_error(
                "truncated", f"{model} ended its stream without a finish reason"
            )

    async def count_tokens(self, model: str, contents: tuple[Turn, ...], *, timeout: float) -> int:
        try:
            async with asyncio.timeout(timeout):
                response = await self._aio.models.count_tokens(
                    model=model, contents=self._contents(contents)
                )
        except _catchable() as exc:
            raise _normalised(exc) from exc
        return int(response.total_tokens or 0)

    async def embed(
        self, model: str, texts: tuple[str, ...], *, timeout: float
    ) -> list[list[float]]:
        try:
            async with asyncio.timeout(timeout):
                response = await self._aio.models.embed_content(model=model, contents=list(texts))
        except _catchable() as exc:
            raise _normalised(exc) from exc
        vectors = [list(e.values or ()) for e in response.embeddings or ()]
        if len(vectors) != len(texts) or any(not v for v in vectors):
            raise EmptyResponse(f"{model} returned {len(vectors)} embeddings for {len(texts)}")
        return vectors

    async def model_info(self, model: str, *, timeout: float) -> ModelInfo:
        cached = self._info_cache.get(model)
        if cached is not None:
            return cached
        try:
            async with asyncio.timeout(timeout):
                raw = await self._aio.models.get(model=model)
        except _catchable() as exc:
            raise _normalised(exc) from exc
        info = ModelInfo(
            name=model,
            input_token_limit=raw.input_token_limit,
            output_token_limit=raw.output_token_limit,
            supported_methods=tuple(raw.supported_actions or ()),
        )
        self._info_cache[model] = info
        return info


_CATCHABLE: tuple[type[BaseException], ...] = ()


def _catchable() -> tuple[type[BaseException], ...]:
    """The exception types an SDK call raises for upstream trouble, plus our own
    timeouts. Built on first use: it needs the SDK's and httpx2's classes."""
    global _CATCHABLE  # a cache of immutable class references, not configuration
    if not _CATCHABLE:
        import json

        import httpx2
        from google.genai import errors as genai_errors

        _CATCHABLE = (
            TimeoutError,
            genai_errors.APIError,
            genai_errors.UnknownApiResponseError,
            httpx2.TransportError,
            json.JSONDecodeError,
            ConnectionError,
            *errors.aiohttp_errors(),
        )
    return _CATCHABLE


def _normalised(exc: BaseException) -> gexc.GoogleAPICallError:
    result = errors.normalise(exc)
    if result is None:  # pragma: no cover - _catchable and normalise agree
        raise exc
    return result


def estimate_tokens(text: str) -> int:
    """A cheap upper-ish estimate (4 chars a token) for routing decisions; the
    authoritative count is ``count_tokens``."""
    return max(1, math.ceil(len(text) / 4))
