"""The Gemini API endpoints: check a request, run its faults, answer it, log it.

Requests are checked in the order Gemini checks them (API key, JSON body, model, method,
structured output, token limits), then the faults of the model and of ``"*"`` are
considered in order; the first one that fires decides the answer (see
:mod:`.fault_kinds`), else the model answers (see :mod:`.model`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .calls import Call, ConnectionDropped, Interrupted, Interrupts
from .clock import Clock
from .decisions import Decision, Delay, perform
from .fault_kinds import RequestFacts
from .log import RequestLog
from .model import (
    Prompt,
    check_embed,
    check_method,
    check_prompt,
    count_tokens_reply,
    embed_reply,
    list_reply,
    model_json,
)
from .respond import Reply
from .spec import Profile
from .state import ModelTable
from .wire import errors
from .wire.errors import ErrorReply
from .wire.requests import (
    ACTION_METHODS,
    CountTokensRequest,
    EmbedRequest,
    GenerateRequest,
    ListModelsQuery,
    has_api_key,
    parse_json_object,
    route_model_path,
)
from .wire.transport import ClientDisconnected, read_body

__all__ = ["GeminiApi", "not_found_handler"]

logger = logging.getLogger("gemini_failover.emulator")

_DEFAULT_PROFILE = Profile()


class _AsgiEndpoint:
    """Wraps a coroutine ``f(scope, receive, send)`` so Starlette treats it as ASGI."""

    def __init__(self, func: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.func = func

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.func(scope, receive, send)


async def not_found_handler(request: Request, exc: Exception) -> Response:
    """Gemini-style error bodies for URLs that are no endpoint."""
    code = exc.status_code if isinstance(exc, HTTPException) else 500
    body = errors.error_body(
        code,
        f"The requested URL {request.url.path} was not found on this server."
        if code == 404
        else f"HTTP {code}",
    )
    return JSONResponse(body, status_code=code)


class GeminiApi:
    """``/{version}/models`` and ``/{version}/models/{model}[:verb]``."""

    def __init__(
        self, models: ModelTable, log: RequestLog, interrupts: Interrupts, clock: Clock
    ) -> None:
        self._models = models
        self._log = log
        self._interrupts = interrupts
        self._clock = clock
        self._ids = itertools.count(1)

    def routes(self) -> list[Route]:
        return [
            Route("/{version}/models", _AsgiEndpoint(self.list_models), methods=["GET"]),
            Route(
                "/{version}/models/{rest:path}",
                _AsgiEndpoint(self.model_endpoint),
                methods=["GET", "POST"],
            ),
        ]

    async def list_models(self, scope: Scope, receive: Receive, send: Send) -> None:
        call = Call(self._interrupts, scope, receive, send, "", "list", self._clock.time())
        self._log.begin()
        await self._serve(call, b"")

    async def model_endpoint(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        route = route_model_path(method, scope["path_params"]["rest"])
        call = Call(
            self._interrupts,
            scope,
            receive,
            send,
            route.model,
            route.action or "generate",
            self._clock.time(),
        )
        if route.action is None:
            reply = errors.method_not_found(route.model, route.verb)
            await call.replier.json(reply.code, reply.body)
            return
        self._log.begin()
        try:
            payload = await read_body(receive) if method == "POST" else b""
        except ClientDisconnected:
            call.close()
            self._log.add(call.record("client_disconnected"))
            return
        await self._serve(call, payload)

    async def _serve(self, call: Call, payload: bytes) -> None:
        try:
            outcome = await self._dispatch(call, payload)
        except Interrupted as stop:
            outcome = stop.reason
            await call.drop_connection()
        except asyncio.CancelledError:
            self._log.add(call.record("server_shutdown"))
            raise
        except Exception:
            self._log.add(call.record("emulator_error"))  # a bug here: keep the log consistent
            raise
        finally:
            call.close()
        self._log.add(call.record(outcome))
        if call.raise_drop:
            raise ConnectionDropped("emulated connection drop")

    def _new_response_id(self) -> str:
        return f"emu-{next(self._ids)}"

    async def _dispatch(self, call: Call, payload: bytes) -> str:
        """Answer the call; returns its outcome for the request log."""
        reply = Reply(call, _DEFAULT_PROFILE, None, self._new_response_id)
        if not has_api_key(call.scope["headers"], call.scope.get("query_string", b"")):
            return await _reject(reply, errors.missing_api_key())
        body = parse_json_object(payload)
        if body is None:
            return await _reject(reply, errors.invalid_argument("Invalid JSON payload received."))
        problem: ErrorReply | None = None

        action, model = call.action, call.model
        if action != "list":
            profile = self._models.profile_for(model)
            if profile is None:
                method = ACTION_METHODS.get(action, "generateContent")
                return await _reject(reply, errors.model_not_found(model, method))
            reply.profile = profile
            problem = check_method(model, profile, action)
        prompt: Prompt | None = None
        if problem is None and action in ("generate", "stream"):
            prompt = reply.prompt = Prompt.of(GenerateRequest.parse(body))
            problem = check_prompt(model, reply.profile, prompt)
        elif problem is None and action == "embed":
            problem = check_embed(reply.profile, EmbedRequest.parse(body))
        if problem is not None:
            return await _reject(reply, problem)

        facts = RequestFacts(
            model=model,
            action=action,
            continuation=prompt is not None and prompt.continuation_prefix is not None,
            structured=prompt is not None and prompt.request.schema is not None,
        )
        decision = await self._run_faults(call, facts)
        if decision is not None:
            await perform(decision, reply)
            return f"fault:{call.faults[-1]}"
        await self._answer(reply, body)
        return "ok"

    async def _answer(self, reply: Reply, body: dict[str, Any]) -> None:
        action, profile = reply.action, reply.profile
        if action in ("generate", "stream"):
            await reply.answer()
        elif action == "count_tokens":
            await reply.json(count_tokens_reply(CountTokensRequest.parse(body)))
        elif action == "embed":
            await reply.json(embed_reply(profile, EmbedRequest.parse(body)))
        elif action == "get":
            await reply.json(model_json(reply.call.model, profile))
        else:
            query = ListModelsQuery.parse(reply.call.scope.get("query_string", b""))
            await reply.json(list_reply(self._models.listed(), query.page_size, query.offset))

    async def _run_faults(self, call: Call, facts: RequestFacts) -> Decision | None:
        """Consider the faults in order: delays wait and go on, the first other fault that
        fires decides."""
        for fault in self._models.faults_for(facts.model):
            fired = self._models.try_fault(fault, facts)
            if fired is None:
                continue
            call.faults.append(fault.kind)
            logger.debug("fault %s fired on %s/%s", fault.kind, facts.model, facts.action)
            if isinstance(fired, Delay):
                call.per_chunk += fired.per_chunk_seconds
                if fired.seconds > 0:
                    await call.pause(fired.seconds)
                continue
            return fired
        return None


async def _reject(reply: Reply, problem: ErrorReply) -> str:
    await reply.error(problem)
    return f"error:{problem.status}"
