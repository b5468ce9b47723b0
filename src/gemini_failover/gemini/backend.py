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
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from google.api_core import exceptions as gexc

from gemini_failover.gemini import errors, wire
from gemini_failover.gemini.answers import grounding_of
from gemini_failover.gemini.clients import ClientSpec, NoUploads, make_client
from gemini_failover.gemini.content import render_contents, thinking_config
from gemini_failover.gemini.uploads import DEFAULT_REUSE_MARGIN, FileCache, Opener
from gemini_failover.protocol import (
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    StreamChunk,
    Turn,
    Usage,
)
from gemini_failover.resilience.errors import EmptyResponse

log = structlog.get_logger(__name__)

if TYPE_CHECKING:
    from google import genai
    from google.genai import types as genai_types

_T = TypeVar("_T")


@functools.lru_cache(maxsize=256)
def _sdk_config(
    system_instruction: str | None,
    temperature: float | None,
    top_p: float | None,
    max_output_tokens: int | None,
    stop_sequences: tuple[str, ...],
    schema_json: str | None,
    google_search: bool = False,
    url_context: bool = False,
    thinking_json: str | None = None,
) -> genai_types.GenerateContentConfig:
    from google.genai import types

    tools: list[types.Tool] = []
    if google_search:
        tools.append(types.Tool(google_search=types.GoogleSearch()))
    if url_context:
        tools.append(types.Tool(url_context=types.UrlContext()))
    config = types.GenerateContentConfig(
        system_instruction=system_instruction,
        temperature=temperature,
        top_p=top_p,
        max_output_tokens=max_output_tokens,
        stop_sequences=list(stop_sequences) or None,
        tools=tools or None,
        thinking_config=(
            types.ThinkingConfig(**json.loads(thinking_json)) if thinking_json else None
        ),
        automatic_continuation=False,
        # no function tools are passed; skip the SDK's function-calling loop entirely
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


#: Pydantic models the SDK completes on first use (~0.2 s of schema building inside the
#: first calls): warm_up() completes them instead.
_REQUEST_PATH_TYPES = (
    "_GenerateContentParameters",
    "GenerateContentConfig",
    "GenerateContentResponse",
    "_EmbedContentParametersPrivate",
    "EmbedContentResponse",
    "_CountTokensParameters",
    "CountTokensResponse",
    "Content",
    "UserContent",
    "Part",
    "Candidate",
    "ContentEmbedding",
    "AutomaticFunctionCallingConfig",
    "GenerateContentResponseUsageMetadata",
    "ModalityTokenCount",
)


def _import_sdk() -> None:
    from google.genai import types

    for name in _REQUEST_PATH_TYPES:
        model = getattr(types, name, None)  # private names: absent in another release
        if model is not None:
            model.model_rebuild()


class GeminiBackend:
    """A Gemini endpoint reached through google-genai. Cheap to construct."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        api_version: str = "v1beta",
        opener: Opener | None = None,
        upload_reuse_margin: float = DEFAULT_REUSE_MARGIN,
        spool_dir: str | None = None,
        spec: ClientSpec | None = None,
        direct: bool = True,
    ) -> None:
        """``opener`` reads a path-only ``Media`` for the Files API (without one such
        media are refused); an upload is reused until ``upload_reuse_margin`` seconds
        before it expires; content to upload is spooled to a private temporary file in
        ``spool_dir`` (default: the system's temporary directory) while it is sent.
        ``spec`` (an endpoint: Vertex AI, say) replaces api_key/base_url/api_version.
        ``direct``: plain text requests to a Gemini API endpoint with an API key skip
        the SDK's models (:mod:`.wire`)."""
        if spec is None:
            spec = ClientSpec(api_key=api_key, base_url=base_url, api_version=api_version)
        self._spec = spec
        self._client: genai.Client | None = None
        self._connecting: asyncio.Lock | None = None
        self._info_cache: dict[str, ModelInfo] = {}
        self._wire = (
            wire.WireClient(
                api_key=spec.api_key,
                base_url=spec.base_url,
                api_version=spec.api_version or "v1beta",
            )
            if direct and not spec.vertex and spec.api_key is not None and wire.available()
            else None
        )
        files = FileCache if spec.uploads else NoUploads
        self._files = files(
            self._sdk_client, opener, reuse_margin=upload_reuse_margin, spool_dir=spool_dir
        )

    def __repr__(self) -> str:  # never show the key
        spec = self._spec
        return f"GeminiBackend({spec.kind}, base_url={spec.base_url!r}, project={spec.project!r})"

    @property
    def spec(self) -> ClientSpec:
        return self._spec

    async def _connect(self) -> None:
        """Make the client now, in a worker thread, when that means looking up
        Application Default Credentials (else it is made on first use)."""
        if self._client is not None or not self._spec.blocking:
            return
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._client is None:
                try:
                    client = await asyncio.to_thread(make_client, self._spec)
                except Exception as exc:  # google.auth: no usable default credentials
                    raise errors.no_credentials(exc) from exc
                self._client = self._client or client

    async def warm_up(self) -> None:
        """Import the SDK in a worker thread so the first request does not pay for it."""
        await asyncio.to_thread(_import_sdk)

    @property
    def _aio(self) -> Any:
        return self._sdk_client().aio

    def _sdk_client(self) -> genai.Client:
        if self._client is None:
            self._client = make_client(self._spec)
        return self._client

    async def _leave_direct_path(self) -> None:
        """The endpoint redirects: from now on every call takes the SDK path (it follows)."""
        direct, self._wire = self._wire, None
        if direct is not None:
            log.info("gemini.direct_path_off", reason="the endpoint redirects")
            await direct.aclose()

    async def aclose(self) -> None:
        await self._files.aclose()
        if self._wire is not None:
            await self._wire.aclose()
        if self._client is not None:
            await self._client.aio.aclose()
            self._client = None

    # -- request building -------------------------------------------------------

    async def _with_contents(
        self,
        turns: tuple[Turn, ...],
        urls: tuple[str, ...],
        call: Callable[[list[dict[str, Any]]], Awaitable[_T]],
        *,
        timeout: float,
        urls_turn: int | None = None,
    ) -> _T:
        """Render ``turns`` (uploading files as needed) and ``call`` with them. When the
        call fails with 403/404 and an uploaded file it referenced is gone upstream
        (deleted, expired), upload it again and call once more."""
        contents, referenced = await render_contents(turns, urls, urls_turn, self._files)
        try:
            return await call(contents)
        except errors.catchable() as exc:
            normalised = errors.normalise(exc)
            if (
                not referenced
                or normalised is None
                or normalised.code not in (403, 404)
                or not await self._files.forget_missing(referenced, timeout=timeout)
            ):
                raise
        contents, _ = await render_contents(turns, urls, urls_turn, self._files)
        return await call(contents)

    @staticmethod
    def _config(model: str, request: GenerationRequest) -> genai_types.GenerateContentConfig:
        """The SDK config for a request (cached by its values: building and validating
        the pydantic model costs more than the rest of our per-call work together)."""
        schema = request.response_schema
        thinking = thinking_config(model, request.thinking)
        return _sdk_config(
            request.system_instruction,
            request.temperature,
            request.top_p,
            request.max_output_tokens,
            request.stop_sequences,
            json.dumps(schema) if schema is not None else None,  # key order kept: it matters
            request.google_search,
            request.uses_url_context,
            json.dumps(thinking, sort_keys=True) if thinking is not None else None,
        )

    # -- operations -------------------------------------------------------------

    async def generate(
        self, model: str, request: GenerationRequest, *, timeout: float
    ) -> GenerationResult:
        if self._wire is not None and wire.is_plain(request):
            started = asyncio.get_running_loop().time()
            try:
                async with asyncio.timeout(timeout):
                    return await self._wire.generate(model, request)
            except wire.Redirected:
                await self._leave_direct_path()
                # the SDK path gets what is left of the attempt's time
                timeout = max(0.0, timeout - (asyncio.get_running_loop().time() - started))
            except errors.catchable() as exc:
                raise _normalised(exc) from exc
        config = self._config(model, request)

        async def call(contents: list[dict[str, Any]]) -> genai_types.GenerateContentResponse:
            response: genai_types.GenerateContentResponse
            response = await self._aio.models.generate_content(
                model=model, contents=contents, config=config
            )
            return response

        try:
            async with asyncio.timeout(timeout):
                await self._connect()
                response = await self._with_contents(
                    request.contents,
                    request.urls,
                    call,
                    timeout=timeout,
                    urls_turn=request.urls_turn,
                )
        except errors.catchable() as exc:
            raise _normalised(exc) from exc
        read = wire.sdk_chunk(response)  # first: a blocked prompt has no text
        if not read.text:
            raise EmptyResponse(f"{model} returned an empty answer (finish {read.reason})")
        return GenerationResult(
            text=read.text,
            finish_reason=read.reason or "STOP",
            usage=read.usage or Usage(),
            model_version=response.model_version,
            grounding=grounding_of(read.grounding, read.text),
            thoughts=read.thoughts,
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
        # upload failures arrive already normalised
        catchable: tuple[type[BaseException], ...] = (
            *errors.catchable(),
            gexc.GoogleAPICallError,
        )
        config = self._config(model, request)

        async def first(contents: list[dict[str, Any]]) -> tuple[Any, Any]:
            # An HTTP error (such as 403 for a file that is gone) comes with the first
            # chunk, so the file check around it covers the first chunk too.
            upstream = await self._aio.models.generate_content_stream(
                model=model, contents=contents, config=config
            )
            iterator = aiter(upstream)
            try:
                return iterator, await anext(iterator)
            except StopAsyncIteration:
                return iterator, None

        async def read() -> None:
            try:
                if self._wire is not None and wire.is_plain(request):
                    try:
                        async for event in self._wire.stream(model, request):
                            queue.put_nowait(event)
                        return
                    except wire.Redirected:  # raised before any event
                        await self._leave_direct_path()
                await self._connect()
                iterator, head = await self._with_contents(
                    request.contents,
                    request.urls,
                    first,
                    timeout=timeout,
                    urls_turn=request.urls_turn,
                )
                if head is not None:
                    queue.put_nowait(head)
                    async for response in iterator:
                        queue.put_nowait(response)
            except catchable as exc:
                queue.put_nowait(_Failed(exc))
            finally:
                queue.put_nowait(_END)

        from google.genai import types as sdk_types  # loaded by now: its errors are used

        reader = asyncio.create_task(read(), name=f"gemini-stream-{model}")
        finished = False
        answered = False  # did any chunk carry a candidate?
        streamed: list[str] = []  # the text so far: grounding offsets count from its start
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
                try:  # decoded events (the direct path) or the SDK's responses
                    sdk = isinstance(item, sdk_types.GenerateContentResponse)
                    read_one = wire.sdk_chunk if sdk else wire.read_chunk
                    chunk = read_one(item)
                except errors.catchable() as exc:
                    raise _normalised(exc) from exc
                answered = answered or chunk.answered
                if chunk.reason is not None:
                    finished = True
                streamed.append(chunk.text)
                metadata = chunk.grounding
                grounding = grounding_of(metadata, "".join(streamed)) if metadata else None
                if chunk.text or chunk.thoughts or grounding or chunk.reason is not None:
                    yield StreamChunk(
                        text=chunk.text,
                        finish_reason=chunk.reason,
                        usage=chunk.usage,
                        grounding=grounding,
                        thoughts=chunk.thoughts,
                    )
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
        """Tokens of ``contents`` as the model counts them, files included (path-only
        media are uploaded: Gemini counts what it reads)."""

        async def call(rendered: list[dict[str, Any]]) -> genai_types.CountTokensResponse:
            response: genai_types.CountTokensResponse
            response = await self._aio.models.count_tokens(model=model, contents=rendered)
            return response

        try:
            async with asyncio.timeout(timeout):
                await self._connect()
                response = await self._with_contents(contents, (), call, timeout=timeout)
        except errors.catchable() as exc:
            raise _normalised(exc) from exc
        return int(response.total_tokens or 0)

    async def embed(
        self, model: str, texts: tuple[str, ...], *, timeout: float
    ) -> list[list[float]]:
        try:
            async with asyncio.timeout(timeout):
                await self._connect()
                response = await self._aio.models.embed_content(model=model, contents=list(texts))
        except errors.catchable() as exc:
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
                await self._connect()
                raw = await self._aio.models.get(model=model)
        except errors.catchable() as exc:
            raise _normalised(exc) from exc
        info = ModelInfo(
            name=model,
            input_token_limit=raw.input_token_limit,
            output_token_limit=raw.output_token_limit,
            supported_methods=tuple(raw.supported_actions or ()),
            thinking=raw.thinking,
        )
        self._info_cache[model] = info
        return info


def _normalised(exc: BaseException) -> gexc.GoogleAPICallError:
    result = errors.normalise(exc)
    if result is None:  # pragma: no cover - _catchable and normalise agree
        raise exc
    return result


def estimate_tokens(text: str) -> int:
    """A cheap upper-ish estimate (4 chars a token) for routing decisions; the
    authoritative count is ``count_tokens``."""
    return max(1, math.ceil(len(text) / 4))
