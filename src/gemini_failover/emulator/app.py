"""The emulator: Gemini REST endpoints with fault injection, a request log and a control API.

One :class:`Emulator` holds all state (model settings, fault state, request log) and
exposes a Starlette app (``emulator.app``). Run it with
:class:`~gemini_failover.emulator.server.EmulatorServer` (in the current event loop),
:class:`~gemini_failover.emulator.server.EmulatorThread` (in a background thread) or
``gemini-failover emulate``. State is guarded by a lock so that a test thread can
reconfigure an emulator served from another thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from . import errors
from .faults import (
    ActiveFault,
    Delay,
    ErrorReply,
    Hang,
    RequestFacts,
    Reshape,
    StreamFailure,
    missing_key_error,
)
from .schema import value_for_schema, violating_json
from .spec import (
    Action,
    Fault,
    ModelSettings,
    Profile,
    Scenario,
    parse_fault,
)
from .text import count_tokens, embedding_for, expected_text, overlap_start, stream_chunks_for

__all__ = ["ABORT_SCOPE_KEY", "ConnectionDropped", "Emulator", "RequestRecord"]

logger = logging.getLogger("gemini_failover.emulator")

#: A server running the emulator may put a callable ``abort(scope) -> bool`` under this
#: ASGI scope key; it closes the request's TCP connection at once (EmulatorServer does).
ABORT_SCOPE_KEY = "gemini_failover.emulator.abort"

_VERBS: dict[str, Action] = {
    "generateContent": "generate",
    "streamGenerateContent": "stream",
    "countTokens": "count_tokens",
    "batchEmbedContents": "embed",
    "embedContent": "embed",
}
_METHOD_OF: dict[str, str] = {
    "generate": "generateContent",
    "stream": "streamGenerateContent",
    "count_tokens": "countTokens",
    "embed": "batchEmbedContents",
}
_JSON_HEADERS = [(b"content-type", b"application/json; charset=UTF-8")]
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
]
_STAR = "*"
_DEFAULT_PROFILE = Profile()


class ConnectionDropped(Exception):
    """Raised to make the ASGI server drop a connection when no abort hook is available."""


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One Gemini API request the emulator answered (or did not).

    ``status`` is the HTTP status sent (0 when none was). ``outcome`` is ``"ok"``,
    ``"fault:<kind>"`` (the fault that decided the answer), ``"error:<STATUS>"`` (the
    emulated model rejected the request, e.g. ``error:INVALID_ARGUMENT``),
    ``"client_disconnected"``, ``"server_shutdown"`` or ``"emulator_error"`` (a bug in
    the emulator). ``faults`` lists every fault that fired, in order, including latency.
    """

    model: str
    action: str
    status: int
    time: float
    outcome: str
    chunks_sent: int = 0
    faults: tuple[str, ...] = ()
    duration: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["faults"] = list(self.faults)
        return data


@dataclass(slots=True)
class _Live:
    profile: Profile
    faults: list[ActiveFault]


class _Interrupted(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class _Analysis:
    first_user: str
    prompt_tokens: int
    continuation_prefix: str | None
    schema: dict[str, Any] | None
    json_mode: bool
    max_output_tokens: int | None


class _Call:
    """Per-request state: the ASGI triple plus what the request log needs."""

    __slots__ = (
        "_disconnect",
        "_shutdown",
        "action",
        "chunks_sent",
        "emulator",
        "faults",
        "model",
        "per_chunk",
        "raise_drop",
        "receive",
        "scope",
        "send",
        "started",
        "started_perf",
        "status",
    )

    def __init__(
        self,
        emulator: Emulator,
        scope: Scope,
        receive: Receive,
        send: Send,
        model: str,
        action: Action,
    ) -> None:
        self.emulator = emulator
        self.scope = scope
        self.receive = receive
        self.send = send
        self.model = model
        self.action: Action = action
        self.started = time.time()
        self.started_perf = time.perf_counter()
        self.status = 0
        self.chunks_sent = 0
        self.faults: list[str] = []
        self.per_chunk = 0.0
        self.raise_drop = False
        self._disconnect: asyncio.Future[None] | None = None
        self._shutdown: asyncio.Future[None] | None = None

    async def _await_disconnect(self) -> None:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                return

    async def pause(self, seconds: float | None) -> None:
        """Wait; raise _Interrupted if the client goes away or the server shuts down."""
        if self._disconnect is None:
            self._disconnect = asyncio.ensure_future(self._await_disconnect())
        if self._shutdown is None:
            self._shutdown = self.emulator._register_interruptible()
        done, _ = await asyncio.wait(
            (self._disconnect, self._shutdown),
            timeout=seconds,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if self._disconnect in done:
            raise _Interrupted("client_disconnected")
        if self._shutdown in done:
            raise _Interrupted("server_shutdown")

    async def drop_connection(self) -> None:
        """Close the TCP connection without finishing the response.

        Uses the server's abort hook (see ABORT_SCOPE_KEY); without one, marks the call
        so that the handler raises ConnectionDropped once the request is logged, which
        makes any ASGI server close the connection.
        """
        if self._disconnect is not None and self._disconnect.done():
            return  # the client is gone already
        abort = self.scope.get(ABORT_SCOPE_KEY)
        if abort is not None and abort(self.scope):
            # Wait until the server has seen the connection go, so that it neither logs
            # an unfinished response nor tries to send a 500 on it.
            if self._disconnect is None:
                self._disconnect = asyncio.ensure_future(self._await_disconnect())
            await asyncio.wait((self._disconnect,), timeout=2.0)
            return
        self.raise_drop = True

    def close(self) -> None:
        if self._disconnect is not None and not self._disconnect.done():
            self._disconnect.cancel()
        if self._shutdown is not None:
            self.emulator._unregister_interruptible(self._shutdown)

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.status = status
        await self.send({"type": "http.response.start", "status": status, "headers": headers})

    async def reply_json(
        self, status: int, payload: Any, extra: Iterable[tuple[str, str]] = ()
    ) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
        headers += [(k.encode(), v.encode()) for k, v in extra]
        await self.start(status, headers)
        await self.send({"type": "http.response.body", "body": body})

    async def sse_event(self, payload: Any) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        await self.send(
            {
                "type": "http.response.body",
                "body": b"data: " + data + b"\r\n\r\n",
                "more_body": True,
            }
        )

    async def sse_end(self) -> None:
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})


class _AsgiEndpoint:
    """Wraps a coroutine ``f(scope, receive, send)`` so Starlette treats it as ASGI."""

    def __init__(self, func: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self._func = func

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._func(scope, receive, send)


def _content_text(content: Any) -> str:
    if not isinstance(content, dict):
        return ""
    parts = content.get("parts")
    if not isinstance(parts, list):
        return ""
    return "".join(
        p["text"]
        for p in parts
        if isinstance(p, dict) and isinstance(p.get("text"), str) and not p.get("thought")
    )


def _all_text_chars(contents: Any, system: Any) -> int:
    total = len(_content_text(system))
    if isinstance(contents, list):
        for content in contents:
            total += len(_content_text(content))
    return total


def _normalise_model(name: str) -> str:
    return name[len("models/") :] if name.startswith("models/") else name


def _has_api_key(scope: Scope) -> bool:
    for key, value in scope["headers"]:
        if (key == b"x-goog-api-key" or key == b"authorization") and value:
            return True
    query: bytes = scope.get("query_string", b"")
    return b"key=" in query


def _as_scenario(scenario: Scenario | Mapping[str, Any] | None) -> Scenario:
    if scenario is None:
        return Scenario()
    if isinstance(scenario, Scenario):
        return scenario
    return Scenario.model_validate(dict(scenario))


def _validation_error(exc: ValidationError) -> JSONResponse:
    problems = json.loads(exc.json(include_url=False))
    summary = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in problems
    )
    body = errors.error_body(
        422, f"Invalid emulator settings: {summary}", status="INVALID_ARGUMENT", details=problems
    )
    return JSONResponse(body, status_code=422)


class Emulator:
    """A Gemini REST API emulator with per-model profiles and fault injection.

    ``Emulator(scenario)`` takes a :class:`~gemini_failover.emulator.spec.Scenario` or its
    dict form (``{"models": {name: {"profile": {...}, "faults": [...]}}}``). The settings
    of the model ``"*"`` are the defaults: its profile serves every model that is not
    configured, and its faults apply to every model after the model's own faults.
    """

    def __init__(
        self,
        scenario: Scenario | Mapping[str, Any] | None = None,
        *,
        max_records: int = 100_000,
    ) -> None:
        self._lock = threading.Lock()
        self._scenario = _as_scenario(scenario)
        self._models: dict[str, _Live] = {}
        self._serve_unknown = True
        self._records: deque[RequestRecord] = deque(maxlen=max_records)
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._interruptible: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()
        self._ids = itertools.count(1)
        self._in_flight = 0
        self._apply_scenario(self._scenario)
        self.app: Starlette = self._build_app()

    # ------------------------------------------------------------------ configuration

    def _apply_scenario(self, scenario: Scenario) -> None:
        with self._lock:
            self._models = {
                _normalise_model(name): _Live(
                    settings.profile.model_copy(deep=True),
                    [ActiveFault.of(f) for f in settings.faults],
                )
                for name, settings in scenario.models.items()
            }
            self._serve_unknown = scenario.serve_unknown_models

    def configure(
        self,
        model: str,
        profile: Profile | Mapping[str, Any] | None = None,
        faults: Iterable[Fault | Mapping[str, Any]] | None = None,
    ) -> None:
        """Replace one model's settings (``"*"`` for the defaults). Raises ValueError
        (pydantic ValidationError) for an invalid profile or fault."""
        if isinstance(profile, Profile):
            prof = profile.model_copy(deep=True)
        else:
            prof = Profile.model_validate(dict(profile or {}))
        active = [ActiveFault.of(parse_fault(f)) for f in faults or ()]
        with self._lock:
            self._models[_normalise_model(model)] = _Live(prof, active)

    def remove(self, model: str) -> bool:
        """Forget one model's settings; returns whether it was configured."""
        with self._lock:
            return self._models.pop(_normalise_model(model), None) is not None

    def reset(self) -> None:
        """Restore the scenario the emulator was built with and clear the request log."""
        self._apply_scenario(self._scenario)
        with self._lock:
            self._records.clear()
        self._notify()

    def clear_requests(self) -> None:
        """Clear the request log only."""
        with self._lock:
            self._records.clear()
        self._notify()

    def settings(self) -> dict[str, Any]:
        """Current profiles and faults (with remaining counts), as the control API shows."""
        with self._lock:
            return {
                "serve_unknown_models": self._serve_unknown,
                "models": {
                    name: {
                        "profile": live.profile.model_dump(),
                        "faults": [f.to_dict() for f in live.faults],
                    }
                    for name, live in self._models.items()
                },
            }

    def profile_for(self, model: str) -> Profile | None:
        """The profile serving this model, or None when the model is not served."""
        with self._lock:
            live = self._models.get(_normalise_model(model))
            if live is not None:
                return live.profile
            if not self._serve_unknown:
                return None
            star = self._models.get(_STAR)
            return star.profile if star is not None else _DEFAULT_PROFILE

    def _faults_for(self, model: str) -> list[ActiveFault]:
        own = self._models.get(model)
        star = self._models.get(_STAR) if model != _STAR else None
        if own is None or not own.faults:
            return list(star.faults) if star is not None and star.faults else []
        if star is None or not star.faults:
            return list(own.faults)
        return [*own.faults, *star.faults]

    def _consume(self, fault: ActiveFault) -> bool:
        """Use one of the fault's counts (lock held); False when already used up."""
        if fault.remaining is None:
            return True
        if fault.remaining <= 0:
            return False
        fault.remaining -= 1
        if fault.remaining == 0:
            for live in self._models.values():
                for i, other in enumerate(live.faults):
                    if other is fault:
                        del live.faults[i]
                        break
        return True

    # ------------------------------------------------------------------ request log

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the request log, oldest first."""
        with self._lock:
            return list(self._records)

    @property
    def in_flight(self) -> int:
        """Requests received and not answered yet (hanging ones included)."""
        return self._in_flight

    def count(
        self,
        model: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        status: int | None = None,
    ) -> int:
        """How many logged requests match all the given fields."""
        if model is not None:
            model = _normalise_model(model)
        with self._lock:
            return sum(
                1
                for r in self._records
                if (model is None or r.model == model)
                and (action is None or r.action == action)
                and (outcome is None or r.outcome == outcome)
                and (status is None or r.status == status)
            )

    async def wait_for(
        self,
        predicate: Callable[[list[RequestRecord]], bool],
        timeout: float = 5.0,
    ) -> list[RequestRecord]:
        """Wait until predicate(request log) is true; return that log snapshot.

        Wakes whenever a request starts or is logged (no polling), so a predicate may
        also look at ``in_flight``. Works from any event loop or
        thread. Raises TimeoutError when the predicate is still false after timeout.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            with self._lock:
                snapshot = list(self._records)
                if predicate(snapshot):
                    return snapshot
                waiter: asyncio.Future[None] = loop.create_future()
                entry = (loop, waiter)
                self._waiters.append(entry)
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                with self._lock:
                    snapshot = list(self._records)
                if predicate(snapshot):
                    return snapshot
                tail = ", ".join(
                    f"{r.model}/{r.action}:{r.status}:{r.outcome}" for r in snapshot[-10:]
                )
                raise TimeoutError(
                    f"request log condition not met within {timeout}s "
                    f"({len(snapshot)} requests; last: {tail or 'none'})"
                ) from None
            finally:
                with self._lock:
                    if entry in self._waiters:
                        self._waiters.remove(entry)

    def _notify(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, []
        _wake_all(waiters)

    def _record(self, call: _Call, outcome: str) -> None:
        record = RequestRecord(
            model=call.model,
            action=call.action,
            status=call.status,
            time=call.started,
            outcome=outcome,
            chunks_sent=call.chunks_sent,
            faults=tuple(call.faults),
            duration=time.perf_counter() - call.started_perf,
        )
        with self._lock:
            self._records.append(record)
            self._in_flight -= 1
            waiters, self._waiters = self._waiters, []
        if waiters:
            _wake_all(waiters)

    def _begin(self) -> None:
        with self._lock:
            self._in_flight += 1
            waiters, self._waiters = self._waiters, []
        if waiters:
            _wake_all(waiters)

    # ------------------------------------------------------------------ shutdown

    def _register_interruptible(self) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._interruptible.add((loop, fut))
        return fut

    def _unregister_interruptible(self, fut: asyncio.Future[None]) -> None:
        with self._lock:
            self._interruptible = {e for e in self._interruptible if e[1] is not fut}

    def release_hung_requests(self) -> int:
        """End every request that is hanging or waiting on a latency fault.

        Such a request's connection is closed without an answer and logged as
        ``fault:hang`` (hang) or ``server_shutdown`` (latency). Servers call this when
        they shut down; returns how many requests were released.
        """
        with self._lock:
            entries, self._interruptible = self._interruptible, set()
        _wake_all(list(entries))
        return len(entries)

    # ------------------------------------------------------------------ app

    def _build_app(self) -> Starlette:
        routes = [
            Route("/_emulator/models", self._ctl_list, methods=["GET"]),
            Route(
                "/_emulator/models/{model:path}", self._ctl_model, methods=["GET", "PUT", "DELETE"]
            ),
            Route("/_emulator/requests", self._ctl_requests, methods=["GET"]),
            Route("/_emulator/reset", self._ctl_reset, methods=["POST"]),
            Route("/{version}/models", _AsgiEndpoint(self._list_models), methods=["GET"]),
            Route(
                "/{version}/models/{rest:path}",
                _AsgiEndpoint(self._model_endpoint),
                methods=["GET", "POST"],
            ),
        ]
        return Starlette(
            routes=routes,
            exception_handlers={HTTPException: _http_exception},
        )

    # ---- control API

    async def _ctl_list(self, request: Request) -> Response:
        return JSONResponse(self.settings())

    async def _ctl_model(self, request: Request) -> Response:
        model = _normalise_model(request.path_params["model"])
        if request.method == "DELETE":
            return JSONResponse({"deleted": self.remove(model)})
        if request.method == "PUT":
            try:
                raw = await request.json()
                settings = ModelSettings.model_validate(raw if raw is not None else {})
            except ValidationError as exc:
                return _validation_error(exc)
            except ValueError as exc:
                body = errors.error_body(400, f"Invalid JSON body: {exc}")
                return JSONResponse(body, status_code=400)
            self.configure(model, settings.profile, settings.faults)
        current = self.settings()["models"].get(model)
        if current is None:
            body = errors.error_body(404, f"Model {model} is not configured.")
            return JSONResponse(body, status_code=404)
        return JSONResponse({"model": model, **current})

    async def _ctl_requests(self, request: Request) -> Response:
        q = request.query_params
        records = [
            r.to_dict()
            for r in self.requests
            if ("model" not in q or r.model == _normalise_model(q["model"]))
            and ("action" not in q or r.action == q["action"])
            and ("outcome" not in q or r.outcome == q["outcome"])
        ]
        return JSONResponse({"requests": records})

    async def _ctl_reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"reset": True})

    # ---- Gemini API

    async def _list_models(self, scope: Scope, receive: Receive, send: Send) -> None:
        call = _Call(self, scope, receive, send, "", "list")
        self._begin()
        await self._serve(call, b"")

    async def _model_endpoint(self, scope: Scope, receive: Receive, send: Send) -> None:
        rest: str = scope["path_params"]["rest"]
        name, _, verb = rest.partition(":")
        method: str = scope["method"]
        action: Action | None
        if not verb and method in ("GET", "HEAD"):
            action = "get"
        elif method == "POST":
            action = _VERBS.get(verb)
        else:
            action = None
        model = _normalise_model(name)
        call = _Call(self, scope, receive, send, model, action or "generate")
        if action is None:
            body = errors.error_body(
                404, f"Method {verb or method} is not found on models/{model}."
            )
            await call.reply_json(404, body)
            return
        self._begin()
        try:
            payload = await _read_body(receive) if method == "POST" else b""
        except _Interrupted:
            call.close()
            self._record(call, "client_disconnected")
            return
        await self._serve(call, payload)

    async def _serve(self, call: _Call, payload: bytes) -> None:
        try:
            outcome = await self._dispatch(call, payload)
        except _Interrupted as stop:
            outcome = stop.reason
            await call.drop_connection()
        except asyncio.CancelledError:
            self._record(call, "server_shutdown")
            raise
        except Exception:
            self._record(call, "emulator_error")  # a bug here: keep the log consistent
            raise
        finally:
            call.close()
        self._record(call, outcome)
        if call.raise_drop:
            raise ConnectionDropped("emulated connection drop")

    async def _reject(self, call: _Call, reply: ErrorReply) -> str:
        await call.reply_json(reply.code, reply.body, reply.headers)
        return f"error:{reply.body['error']['status']}"

    async def _dispatch(self, call: _Call, payload: bytes) -> str:
        if not _has_api_key(call.scope):
            return await self._reject(call, missing_key_error())
        body: Any = {}
        if payload:
            try:
                body = json.loads(payload)
            except ValueError:
                return await self._reject(call, _invalid("Invalid JSON payload received."))
        if not isinstance(body, dict):
            return await self._reject(call, _invalid("Invalid JSON payload received."))
        action = call.action
        model = call.model
        profile: Profile | None = _DEFAULT_PROFILE
        if action != "list":
            profile = self.profile_for(model)
            if profile is None:
                return await self._reject(call, _not_found(model, action))
            method = _METHOD_OF.get(action)
            if method is not None and not _supports(profile, method):
                return await self._reject(call, _not_found(model, action))
        assert profile is not None
        analysis: _Analysis | None = None
        if action in ("generate", "stream"):
            analysis = _analyse(body)
            if analysis.schema is not None and not profile.json_schema:
                return await self._reject(
                    call,
                    _invalid(
                        f"Structured output (responseSchema / responseJsonSchema) is not "
                        f"supported by models/{model}."
                    ),
                )
            if analysis.prompt_tokens > profile.input_token_limit:
                return await self._reject(
                    call, _too_long(analysis.prompt_tokens, profile.input_token_limit)
                )
        elif action == "embed":
            problem = _check_embed(body, profile)
            if problem is not None:
                return await self._reject(call, problem)

        facts = RequestFacts(
            model=model,
            action=action,
            continuation=analysis is not None and analysis.continuation_prefix is not None,
            structured=analysis is not None and analysis.schema is not None,
        )
        decision = await self._evaluate_faults(call, facts)
        if isinstance(decision, ErrorReply):
            await call.reply_json(decision.code, decision.body, decision.headers)
            return f"fault:{call.faults[-1]}"
        if isinstance(decision, Hang) and (decision.after is None or action != "stream"):
            await self._hang(call)
        if isinstance(decision, Reshape) and decision.kind == "malformed":
            await self._malformed(call)
            return "fault:malformed"

        if action == "generate" or action == "stream":
            assert analysis is not None
            return await self._answer(call, profile, analysis, decision)
        if action == "count_tokens":
            await call.reply_json(200, _count_tokens_reply(body))
        elif action == "embed":
            await call.reply_json(200, _embed_reply(body, profile))
        elif action == "get":
            await call.reply_json(200, _model_json(model, profile))
        else:
            await call.reply_json(200, self._list_reply(call.scope))
        return "ok"

    async def _evaluate_faults(
        self, call: _Call, facts: RequestFacts
    ) -> ErrorReply | Hang | StreamFailure | Reshape | None:
        with self._lock:
            faults = self._faults_for(facts.model)
        for fault in faults:
            with self._lock:
                if not fault.applies(facts) or not self._consume(fault):
                    continue
                result = fault.evaluate(facts, time.monotonic(), time.time())
            if result is None:
                continue
            call.faults.append(fault.kind)
            logger.debug("fault %s fired on %s/%s", fault.kind, facts.model, facts.action)
            if isinstance(result, Delay):
                call.per_chunk += result.per_chunk_seconds
                if result.seconds > 0:
                    await call.pause(result.seconds)
                continue
            return result
        return None

    async def _hang(self, call: _Call) -> None:
        try:
            await call.pause(None)
        except _Interrupted as stop:
            if stop.reason == "server_shutdown":
                raise _Interrupted("fault:hang") from None
            raise

    async def _malformed(self, call: _Call) -> None:
        if call.action == "stream":
            await call.start(200, _SSE_HEADERS)
            await call.sse_event(b'{"candidates": [{"content": {"parts": [{"text": "')
            call.chunks_sent = 1
            await call.sse_end()
        else:
            await call.reply_json(200, b'{"candidates": [{"content": {"parts": [{"text": ')

    def _list_reply(self, scope: Scope) -> dict[str, Any]:
        params = dict(
            pair.split("=", 1) if "=" in pair else (pair, "")
            for pair in scope.get("query_string", b"").decode().split("&")
            if pair
        )
        with self._lock:
            names = [(n, live.profile) for n, live in self._models.items() if n != _STAR]
        size = int(params.get("pageSize") or 50)
        start = int(params.get("pageToken") or 0)
        page = names[start : start + size]
        reply: dict[str, Any] = {"models": [_model_json(n, p) for n, p in page]}
        if start + size < len(names):
            reply["nextPageToken"] = str(start + size)
        return reply

    # ---- generation

    async def _answer(
        self,
        call: _Call,
        profile: Profile,
        analysis: _Analysis,
        decision: ErrorReply | Hang | StreamFailure | Reshape | None,
    ) -> str:
        model = call.model
        response_id = f"emu-{next(self._ids)}"
        prompt_tokens = analysis.prompt_tokens
        reshape = decision if isinstance(decision, Reshape) else None
        outcome = "ok" if decision is None else f"fault:{call.faults[-1]}"

        if reshape is not None and reshape.kind in ("empty", "blocked"):
            reply = _special_reply(reshape, model, response_id, prompt_tokens)
            if call.action == "stream":
                await call.start(200, _SSE_HEADERS)
                await call.sse_event(reply)
                call.chunks_sent = 1
                await call.sse_end()
            else:
                await call.reply_json(200, reply)
            return outcome

        text = _answer_text(analysis, reshape)
        finish = "STOP"
        limit = profile.output_token_limit
        if analysis.max_output_tokens is not None:
            limit = min(limit, max(1, analysis.max_output_tokens))
        if text and count_tokens(len(text)) > limit:
            text = _truncate(text, limit)
            finish = "MAX_TOKENS"
        usage = _usage(prompt_tokens, count_tokens(len(text)) if text else 0)

        if call.action == "generate":
            await call.reply_json(
                200,
                {
                    "candidates": [
                        {
                            "content": {"parts": [{"text": text}], "role": "model"},
                            "finishReason": finish,
                            "index": 0,
                        }
                    ],
                    "usageMetadata": usage,
                    "modelVersion": model,
                    "responseId": response_id,
                },
            )
            return outcome

        chunks = stream_chunks_for(text, profile.stream_chunks) or [""]
        failure = decision if isinstance(decision, StreamFailure) else None
        hang_after = decision.after if isinstance(decision, Hang) else None
        stop_after = len(chunks)
        if failure is not None:
            stop_after = min(failure.after, len(chunks))
        elif hang_after is not None:
            stop_after = min(hang_after, len(chunks))
        final = failure is None and hang_after is None

        await call.start(200, _SSE_HEADERS)
        for i in range(stop_after):
            if i and call.per_chunk > 0:
                await call.pause(call.per_chunk)
            candidate: dict[str, Any] = {
                "content": {"parts": [{"text": chunks[i]}], "role": "model"},
                "index": 0,
            }
            event: dict[str, Any] = {"candidates": [candidate]}
            if final and i == len(chunks) - 1:
                candidate["finishReason"] = finish
                event["usageMetadata"] = usage
            event["modelVersion"] = model
            event["responseId"] = response_id
            await call.sse_event(event)
            call.chunks_sent += 1
        if hang_after is not None:
            await self._hang(call)
        if failure is not None:
            if failure.mode == "cut":
                await call.drop_connection()
                return outcome
            if failure.mode == "error":
                await call.sse_event(failure.error)
        await call.sse_end()
        return outcome


# ---------------------------------------------------------------------- helpers


def _wake_all(entries: Iterable[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]) -> None:
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    for loop, fut in entries:
        if loop is running:
            _set_done(fut)
        else:
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(_set_done, fut)


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise _Interrupted("client_disconnected")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _http_exception(request: Request, exc: Exception) -> Response:
    code = exc.status_code if isinstance(exc, HTTPException) else 500
    body = errors.error_body(
        code,
        f"The requested URL {request.url.path} was not found on this server."
        if code == 404
        else f"HTTP {code}",
    )
    return JSONResponse(body, status_code=code)


def _supports(profile: Profile, method: str) -> bool:
    methods = profile.methods
    if method in methods:
        return True
    return method == "batchEmbedContents" and "embedContent" in methods


def _invalid(message: str) -> ErrorReply:
    return ErrorReply(400, errors.error_body(400, message))


def _too_long(tokens: int, limit: int) -> ErrorReply:
    return _invalid(
        f"The input token count ({tokens}) exceeds the maximum number of tokens allowed ({limit})."
    )


def _not_found(model: str, action: str) -> ErrorReply:
    method = _METHOD_OF.get(action, "generateContent")
    return ErrorReply(
        404,
        errors.error_body(
            404,
            f"models/{model} is not found for API version v1beta, or is not supported for "
            f"{method}. Call ListModels to see the list of available models and their "
            f"supported methods.",
        ),
    )


def _analyse(body: dict[str, Any]) -> _Analysis:
    contents = body.get("contents")
    contents = contents if isinstance(contents, list) else []
    first_user = ""
    for content in contents:
        if isinstance(content, dict) and content.get("role", "user") == "user":
            first_user = _content_text(content)
            break
    prompt_tokens = count_tokens(_all_text_chars(contents, body.get("systemInstruction")))
    config = body.get("generationConfig")
    config = config if isinstance(config, dict) else {}
    json_mode = config.get("responseMimeType") == "application/json"
    schema: dict[str, Any] | None = None
    for key in ("responseJsonSchema", "responseSchema"):
        candidate = config.get(key)
        if isinstance(candidate, dict):
            schema = candidate
            break
    prefix: str | None = None
    if (
        len(contents) >= 3
        and isinstance(contents[-1], dict)
        and isinstance(contents[-2], dict)
        and contents[-1].get("role", "user") == "user"
        and contents[-2].get("role") == "model"
    ):
        candidate_prefix = _content_text(contents[-2])
        if candidate_prefix and expected_text(first_user).startswith(candidate_prefix):
            prefix = candidate_prefix
    max_tokens = config.get("maxOutputTokens")
    return _Analysis(
        first_user=first_user,
        prompt_tokens=prompt_tokens,
        continuation_prefix=prefix,
        schema=schema,
        json_mode=json_mode,
        max_output_tokens=_as_int(max_tokens),
    )


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _answer_text(analysis: _Analysis, reshape: Reshape | None) -> str:
    if analysis.schema is not None:
        if reshape is not None and reshape.kind == "schema_violation":
            return violating_json(analysis.schema)
        return json.dumps(value_for_schema(analysis.schema))
    expected = expected_text(analysis.first_user)
    if analysis.json_mode:
        return json.dumps({"text": expected})
    prefix = analysis.continuation_prefix
    if prefix is None:
        return expected
    rest = expected[len(prefix) :]
    if reshape is not None and reshape.kind == "overlap":
        return prefix[overlap_start(prefix, reshape.words) :] + rest
    return rest


def _truncate(text: str, max_tokens: int) -> str:
    cut = max_tokens * 4
    space = text.rfind(" ", 0, cut + 1)
    return text[:space] if space > 0 else text[:cut]


def _usage(prompt: int, output: int) -> dict[str, Any]:
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": output,
        "totalTokenCount": prompt + output,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }


_SAFETY_CATEGORIES = (
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
)


def _safety_ratings() -> list[dict[str, Any]]:
    ratings: list[dict[str, Any]] = [
        {"category": c, "probability": "NEGLIGIBLE"} for c in _SAFETY_CATEGORIES[:-1]
    ]
    ratings.append({"category": _SAFETY_CATEGORIES[-1], "probability": "HIGH", "blocked": True})
    return ratings


def _special_reply(
    reshape: Reshape, model: str, response_id: str, prompt_tokens: int
) -> dict[str, Any]:
    reply: dict[str, Any] = {}
    if reshape.kind == "empty":
        if reshape.variant == "empty_list":
            reply["candidates"] = []
        elif reshape.variant == "no_parts":
            reply["candidates"] = [
                {"content": {"role": "model"}, "finishReason": "STOP", "index": 0}
            ]
    elif reshape.variant == "prompt":
        reply["promptFeedback"] = {
            "blockReason": reshape.reason or "SAFETY",
            "safetyRatings": _safety_ratings(),
        }
    else:
        reply["candidates"] = [
            {
                "finishReason": reshape.reason or "SAFETY",
                "index": 0,
                "safetyRatings": _safety_ratings(),
            }
        ]
    reply["usageMetadata"] = {
        "promptTokenCount": prompt_tokens,
        "totalTokenCount": prompt_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
    }
    reply["modelVersion"] = model
    reply["responseId"] = response_id
    return reply


def _count_tokens_reply(body: dict[str, Any]) -> dict[str, Any]:
    request = body.get("generateContentRequest")
    source = request if isinstance(request, dict) else body
    tokens = count_tokens(_all_text_chars(source.get("contents"), source.get("systemInstruction")))
    return {
        "totalTokens": tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}],
    }


def _embed_requests(body: dict[str, Any]) -> list[dict[str, Any]]:
    requests = body.get("requests")
    if isinstance(requests, list):
        return [r for r in requests if isinstance(r, dict)]
    if "content" in body:  # :embedContent
        return [body]
    return []


def _check_embed(body: dict[str, Any], profile: Profile) -> ErrorReply | None:
    requests = _embed_requests(body)
    if not requests:
        return _invalid("* BatchEmbedContentsRequest.requests: contents is not specified\n")
    for request in requests:
        tokens = count_tokens(len(_content_text(request.get("content"))))
        if tokens > profile.input_token_limit:
            return _too_long(tokens, profile.input_token_limit)
        dim = request.get("outputDimensionality")
        if dim is not None and (not isinstance(dim, int) or not 0 < dim <= profile.embedding_dim):
            return _invalid(f"outputDimensionality must be between 1 and {profile.embedding_dim}.")
    return None


def _embed_reply(body: dict[str, Any], profile: Profile) -> dict[str, Any]:
    vectors = []
    for request in _embed_requests(body):
        dim = request.get("outputDimensionality") or profile.embedding_dim
        text = _content_text(request.get("content"))
        vectors.append({"values": list(embedding_for(text, int(dim)))})
    if "requests" not in body:
        return {"embedding": vectors[0]}
    return {"embeddings": vectors}


def _model_json(model: str, profile: Profile) -> dict[str, Any]:
    return {
        "name": f"models/{model}",
        "version": profile.version,
        "displayName": profile.display_name or model,
        "description": f"Emulated model {model}.",
        "inputTokenLimit": profile.input_token_limit,
        "outputTokenLimit": profile.output_token_limit,
        "supportedGenerationMethods": list(profile.methods),
        "temperature": 1.0,
        "maxTemperature": 2.0,
        "topP": 0.95,
        "topK": 64,
    }
