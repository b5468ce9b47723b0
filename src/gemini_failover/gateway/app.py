"""The gateway's Gemini endpoints: check the request, map it, call the manager, answer.

``/{version}/models`` (list), ``/{version}/models/{model}`` (get) and
``/{version}/models/{model}:{generateContent | streamGenerateContent | countTokens |
embedContent | batchEmbedContents}``. Requests are checked in the order Gemini checks
them (method, model, body size, JSON, fields) and nothing reaches upstream before all
checks pass. A client that disconnects cancels its manager call (and so the upstream
HTTP request) at once.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gemini_failover.emulator.wire import (
    SSE_HEADERS,
    AsgiReplier,
    BodyTooLarge,
    ClientDisconnected,
    ErrorReply,
    ListModelsQuery,
    count_tokens_response,
    embeddings_response,
    encode_json,
    error_body,
    invalid_argument,
    list_models_response,
    method_not_found,
    model_not_found,
    parse_json_object,
    payload_too_large,
    read_body_limited,
    route_model_path,
    sse_frame,
)
from gemini_failover.gateway import mapping, replies
from gemini_failover.gateway.auth import KeyCheck
from gemini_failover.gateway.disconnect import Watch, until_disconnect
from gemini_failover.gateway.errors import blocked_response, failure_reply
from gemini_failover.gateway.mapping import MappingError
from gemini_failover.gateway.progress import (
    Progress,
    ProgressTracker,
    headers_of,
    provenance_headers,
)
from gemini_failover.gateway.routing import ChainRouter, Target
from gemini_failover.protocol import GenerationRequest, Turn, Usage
from gemini_failover.resilience.errors import Category
from gemini_failover.resilience.results import RequestFailed
from gemini_failover.server.connection import DISCONNECT_SIGNAL
from gemini_failover.server.http import OPEN_PATHS, Security, SecurityMiddleware, probe_routes
from gemini_failover.server.runtime import Runtime
from gemini_failover.tracing_switch import tracing_configured

if TYPE_CHECKING:
    from gemini_failover.gateway.tracing import RequestTracer
    from gemini_failover.resilience.manager import FailoverManager

__all__ = ["API_VERSIONS", "MAX_BODY_BYTES", "GeminiGateway", "build_gateway_app"]

log = logging.getLogger("gemini_failover.gateway")

#: API versions the gateway answers under (the SDKs use v1beta by default).
API_VERSIONS = frozenset({"v1beta", "v1", "v1alpha"})
#: Gemini's own limit on a request (inline data included): nothing larger is read.
MAX_BODY_BYTES = 20 * 1024 * 1024

_ARRAY_HEADERS = ((b"content-type", b"application/json; charset=UTF-8"),)


class _Entry:
    """The gateway's ASGI entry: ``/{version}/models`` and ``/{version}/models/{rest}``
    (what Starlette's routes ``/{version}/models`` and ``/{version}/models/{rest:path}``
    match, found with one split rather than a walk through its router and middleware,
    which cost more than the rest of a request's routing) go to the gateway; anything
    else (the probes, /metrics, the API's 404) to Starlette."""

    __slots__ = ("api", "other")

    def __init__(self, api: GeminiGateway, other: ASGIApp) -> None:
        self.api, self.other = api, other

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            parts = _route_path(scope).split("/", 3)
            if len(parts) > 2 and parts[2] == "models" and parts[1]:
                if len(parts) == 3:
                    scope["path_params"] = {"version": parts[1]}
                    await self.api.list_models(scope, receive, send)
                else:
                    scope["path_params"] = {"version": parts[1], "rest": parts[3]}
                    await self.api.model_endpoint(scope, receive, send)
                return
        await self.other(scope, receive, send)


async def _not_found(request: Request, exc: Exception) -> Response:
    code = exc.status_code if isinstance(exc, HTTPException) else 500
    message = f"The requested URL {request.url.path} was not found on this server."
    return JSONResponse(error_body(code, message if code == 404 else None), status_code=code)


_T = TypeVar("_T")

#: Bodies larger than this are mapped in a worker thread: decoding, hashing and sizing
#: inline data costs ~3 ms per MB, which must not stall every other request.
OFF_LOOP_BYTES = 1024 * 1024


async def _off_loop_if_large(size: int, fn: Callable[..., _T], *args: Any) -> _T:
    if size > OFF_LOOP_BYTES:
        return await asyncio.to_thread(fn, *args)
    return fn(*args)


class GeminiGateway:
    """The Gemini API over one runtime's failover manager."""

    def __init__(
        self,
        runtime: Runtime,
        router: ChainRouter,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        tracer: RequestTracer | None = None,
    ) -> None:
        self.runtime = runtime
        self.tracer = tracer  # None: tracing is off
        self.router = router
        self.max_body_bytes = max_body_bytes
        self.tracker = ProgressTracker()
        self._subscribed = False
        self._id_prefix = f"gw-{uuid.uuid4().hex[:8]}"
        self._ids = itertools.count(1)

    def _new_id(self) -> str:
        return f"{self._id_prefix}-{next(self._ids)}"

    def _manager(self) -> FailoverManager:
        manager = self.runtime.manager
        if not self._subscribed:
            manager.events.subscribe(self.tracker.handle, kinds=ProgressTracker.kinds)
            self._subscribed = True
        return manager

    # -- endpoints -----------------------------------------------------------------------

    async def list_models(self, scope: Scope, receive: Receive, send: Send) -> None:
        replier = AsgiReplier(send)
        version = scope["path_params"]["version"]
        if version not in API_VERSIONS or scope["method"] not in ("GET", "HEAD"):
            await _reply(replier, _url_not_found(scope))
            return
        try:
            query = ListModelsQuery.parse(scope.get("query_string", b""))
        except ValueError:
            await _reply(replier, invalid_argument("Invalid page size or page token."))
            return
        models = self.router.resources(self._manager().model_status(), version)
        offset = max(0, query.offset)
        page = models[offset : offset + max(1, query.page_size)]
        following = offset + len(page)
        token = str(following) if following < len(models) else None
        await replier.json(200, list_models_response(page, token))

    async def model_endpoint(self, scope: Scope, receive: Receive, send: Send) -> None:
        replier = AsgiReplier(send)
        version = scope["path_params"]["version"]
        if version not in API_VERSIONS:
            await _reply(replier, _url_not_found(scope))
            return
        route = route_model_path(scope["method"], scope["path_params"]["rest"])
        if route.action is None:
            await _reply(replier, method_not_found(route.model, route.verb))
            return
        if route.action == "get":
            status = self._manager().model_status()
            resource = self.router.resource(route.model, status, version)
            if resource is None:
                await _reply(replier, model_not_found(route.model, "get", version))
            else:
                await replier.json(200, resource)
            return
        target = self.router.target(route.model, route.action)
        if target is None:
            method = self.router.method_of(route.action)
            await _reply(replier, model_not_found(route.model, method, version))
            return
        if target.start > 0 and target.kind == "embed":
            await _reply(replier, _start_not_supported(target))
            return
        try:
            payload = await read_body_limited(receive, self.max_body_bytes)
        except BodyTooLarge:
            await _reply(replier, payload_too_large(self.max_body_bytes))
            return
        except ClientDisconnected:
            return
        body = parse_json_object(payload)
        if body is None:
            await _reply(replier, invalid_argument("Invalid JSON payload received."))
            return
        verb, model, watch = route.verb, route.model, Watch()
        request: GenerationRequest | None = None
        texts: tuple[str, ...] = ()  # what the span records as input (trace_content)
        try:
            if route.action in ("generate", "stream"):
                request = await _off_loop_if_large(
                    len(payload), mapping.generation_request, body, model
                )
                if route.action == "generate":
                    work = self._generate(replier, request, target)
                else:
                    work = self._stream(replier, request, target, _alt(scope), watch)
            elif route.action == "count_tokens":
                contents = await _off_loop_if_large(
                    len(payload), mapping.count_tokens_contents, body, model
                )
                texts = tuple(turn.text for turn in contents)
                work = self._count(replier, contents, target)
            else:
                call = mapping.embed_call(body, model, batch=verb == "batchEmbedContents")
                texts = call.texts
                work = self._embed(replier, call)
        except MappingError as exc:
            await _reply(replier, exc.reply)
            return
        if self.tracer is not None:
            start, chain = target.first, target.chain
            work = self.tracer.traced(work, route.action, start, chain, request, texts)
        await until_disconnect(receive, work, watch, scope.get(DISCONNECT_SIGNAL))

    # -- the calls -------------------------------------------------------------------------

    async def _generate(
        self, replier: AsgiReplier, request: GenerationRequest, target: Target
    ) -> None:
        rid = self._new_id()
        try:
            result = await self._manager().generate(request, request_id=rid, start_at=target.first)
        except RequestFailed as exc:
            await self._failed(replier, rid, exc, target.first)
            return
        prov = result.provenance
        served = prov.served_by or target.first
        body = replies.generate_response(
            result.text,
            result.finish_reason,
            result.usage,
            model_version=served,
            response_id=rid,
            thoughts=result.thoughts,
            grounding=result.grounding,
        )
        if self.tracer is not None:
            self.tracer.answered(result.usage, result.finish_reason, served, result.text)
        await replier.json(200, body, headers_of(rid, prov))

    async def _failed(
        self, replier: AsgiReplier, rid: str, exc: RequestFailed, first_model: str
    ) -> None:
        headers = headers_of(rid, exc.provenance)
        if exc.category is Category.BLOCKED:
            served = (exc.provenance.served_by if exc.provenance else None) or first_model
            body = blocked_response(exc, model_version=served, response_id=rid)
            await replier.json(200, body, headers)
            return
        reply = failure_reply(exc)
        log.info("gateway request %s failed: %s (%s)", rid, exc.category, reply.code)
        await replier.json(reply.code, reply.body, [*reply.headers, *headers])

    async def _count(
        self, replier: AsgiReplier, contents: tuple[Turn, ...], target: Target
    ) -> None:
        rid = self._new_id()
        try:
            total, prov = await self._manager().count_tokens(
                contents, request_id=rid, start_at=target.first
            )
        except RequestFailed as exc:
            await self._failed(replier, rid, exc, target.first)
            return
        await replier.json(200, count_tokens_response(total), headers_of(rid, prov))

    async def _embed(self, replier: AsgiReplier, call: mapping.EmbedCall) -> None:
        rid = self._new_id()
        try:
            vectors, prov = await self._manager().embed(call.texts, request_id=rid)
        except RequestFailed as exc:
            await self._failed(replier, rid, exc, self.router.embedding_models[0])
            return
        body = embeddings_response(vectors, batch=call.batch)
        await replier.json(200, body, headers_of(rid, prov))

    async def _stream(
        self,
        replier: AsgiReplier,
        request: GenerationRequest,
        target: Target,
        sse: bool,
        watch: Watch,
    ) -> None:
        """Relay the manager's stream: headers and the first chunk once the first text
        exists (a failure before it is a plain error answer), then one chunk per delta,
        whichever model writes it; a failure after it is an error event."""
        rid = self._new_id()
        progress = self.tracker.watch(rid, target.chain)
        stream = self._manager().stream(request, request_id=rid, start_at=target.first)
        deltas: AsyncIterator[str] = aiter(stream)
        frames = _Frames(replier, sse)
        # the answer, for the span (only when it records content)
        seen: list[str] | None = [] if self.tracer and self.tracer.record_content else None
        try:
            try:
                first = await anext(deltas)
            except RequestFailed as exc:
                if exc.category is not Category.BLOCKED:
                    await self._failed(replier, rid, exc, target.first)
                    return
                await self._start_stream(frames, rid, progress)
                await self._end_stream(frames, rid, exc, progress.model, watch)
                return
            except StopAsyncIteration:
                first = ""
            await self._start_stream(frames, rid, progress)
            if first:
                if seen is not None:
                    seen.append(first)
                await frames.send(
                    replies.text_chunk(first, model_version=progress.model, response_id=rid)
                )
            try:
                async for delta in deltas:
                    if seen is not None:
                        seen.append(delta)
                    chunk = replies.text_chunk(delta, model_version=progress.model, response_id=rid)
                    await frames.send(chunk)
            except RequestFailed as exc:
                await self._end_stream(frames, rid, exc, progress.model, watch)
                return
            watch.active = False  # upstream is done: the rest finishes whatever happens
            result = stream.result
            served = (result.provenance.served_by if result else None) or progress.model
            finish, usage = (result.finish_reason, result.usage) if result else ("STOP", None)
            if self.tracer is not None:
                text = "".join(seen) if seen is not None else None
                self.tracer.answered(usage, finish, served, text)
            last = replies.final_chunk(
                finish,
                usage or _NO_USAGE,
                model_version=served,
                response_id=rid,
                text=result.text if result else "",
                thoughts=result.thoughts if result else "",
                grounding=result.grounding if result else None,
            )
            await frames.send(last)
            await frames.end()
        finally:
            self.tracker.forget(rid)
            await stream.aclose()

    @staticmethod
    async def _start_stream(frames: _Frames, rid: str, progress: Progress) -> None:
        # attempts: those finished, and the one streaming now
        extra = provenance_headers(rid, progress.model, progress.failovers, progress.attempts + 1)
        headers = [*(SSE_HEADERS if frames.sse else _ARRAY_HEADERS)]
        headers += [(k.encode(), v.encode()) for k, v in extra]
        await frames.replier.start(200, headers)

    @staticmethod
    async def _end_stream(
        frames: _Frames, rid: str, exc: RequestFailed, model: str, watch: Watch
    ) -> None:
        """A stream that cannot go on: a refusal is its last event (as Gemini sends
        it), anything else an error event (which the SDKs raise)."""
        watch.active = False
        if exc.category is Category.BLOCKED:
            await frames.send(blocked_response(exc, model_version=model, response_id=rid))
        else:
            reply = failure_reply(exc)
            log.info("gateway stream %s broke: %s (%s)", rid, exc.category, reply.code)
            await frames.send(reply.body)
        await frames.end()


class _Frames:
    """Stream events: SSE (``alt=sse``, what the SDKs ask for) or a JSON array."""

    __slots__ = ("first", "replier", "sse")

    def __init__(self, replier: AsgiReplier, sse: bool) -> None:
        self.replier, self.sse, self.first = replier, sse, True

    async def send(self, payload: dict[str, Any]) -> None:
        if self.sse:
            data = sse_frame(payload)
        else:
            data = (b"[" if self.first else b",\r\n") + encode_json(payload)
        self.first = False
        await self.replier.send({"type": "http.response.body", "body": data, "more_body": True})

    async def end(self) -> None:
        tail = b"" if self.sse else (b"[]" if self.first else b"]")
        await self.replier.send({"type": "http.response.body", "body": tail, "more_body": False})


_NO_USAGE = Usage()


def _alt(scope: Scope) -> bool:
    query = scope.get("query_string", b"")
    return b"alt=sse" in query and ("alt", "sse") in parse_qsl(query.decode("latin-1"))


def _route_path(scope: Scope) -> str:
    """The path under the app's mount point, as Starlette's router matches it (uvicorn's
    ``--root-path``, or a ``Mount``, puts a prefix in ``root_path``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("/", ""):
        return path[len(root) :]
    return path


def _url_not_found(scope: Scope) -> ErrorReply:
    path = scope["path"]
    return ErrorReply(
        404, error_body(404, f"The requested URL {path} was not found on this server.")
    )


def _start_not_supported(target: Target) -> ErrorReply:
    return invalid_argument(
        f"models/{target.first} starts the embedding chain part-way, which the failover "
        f"manager does not do for embeddings; use models/{target.chain[0]} or an alias"
    )


async def _reply(replier: AsgiReplier, reply: ErrorReply) -> None:
    await replier.json(reply.code, reply.body, reply.headers)


def build_gateway_app(
    runtime: Runtime,
    security: Security,
    *,
    keys: list[str],
    aliases: list[str] | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> ASGIApp:
    """The gateway's ASGI app: Gemini endpoints, /healthz, /readyz, /metrics, behind
    the Host/Origin guard and the gateway-key check. ``runtime`` must be started
    before the first request (the app never owns the manager)."""
    settings = runtime.settings
    router = ChainRouter(
        settings.models,
        settings.embedding_models,
        aliases if aliases is not None else settings.gateway_aliases,
        settings.default_endpoint_name,
    )
    tracer: RequestTracer | None = None
    if tracing_configured():  # OpenTelemetry: only when the OTEL_* variables ask
        from gemini_failover.gateway.tracing import RequestTracer

        tracer = RequestTracer(record_content=settings.trace_content)
    api = GeminiGateway(runtime, router, max_body_bytes=max_body_bytes, tracer=tracer)
    other = Starlette(routes=probe_routes(runtime), exception_handlers={HTTPException: _not_found})
    app: ASGIApp = KeyCheck(_Entry(api, other), keys)
    if tracer is not None:
        from gemini_failover.gateway.tracing import GatewaySpans

        # inside the Host/Origin guard, outside the key check: refused keys are traced
        app = GatewaySpans(app, skip=OPEN_PATHS | {"/metrics"})
    return SecurityMiddleware(app, security)
