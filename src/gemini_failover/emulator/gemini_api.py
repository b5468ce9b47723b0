"""The model endpoints, on the Gemini API and on Vertex AI paths: check a request, run
its faults, answer it, log it.

Requests are checked in the order Gemini checks them (credentials, JSON body, model,
method, inputs, structured output, tools, thinking, token limits), then the faults of
the model and of ``"*"`` are considered in order; the first one that fires decides the
answer (see :mod:`.fault_kinds`), else the model answers (see :mod:`.model`).
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .calls import Call
from .decisions import perform
from .endpoints import RequestEndpoint
from .fault_kinds import RequestFacts
from .media import FileLookup, InputPart, resolve_inputs
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
from .pipeline import AsgiEndpoint, Pipeline, reject
from .respond import Reply
from .spec import Profile
from .text import count_tokens, embedding_for
from .wire import errors, vertex
from .wire.errors import ErrorReply
from .wire.files import file_not_accessible, file_uri_id, invalid_file_uri
from .wire.inputs import PartInfo
from .wire.requests import (
    ACTION_METHODS,
    CountTokensRequest,
    EmbedRequest,
    GenerateRequest,
    ListModelsQuery,
    parse_json_object,
    route_model_path,
)
from .wire.transport import ClientDisconnected, read_body

__all__ = ["GeminiApi"]

_DEFAULT_PROFILE = Profile()
_VERTEX_MODELS = "publishers/google/models/{rest:path}"


def _part_records(
    parts: tuple[PartInfo, ...], inputs: tuple[InputPart, ...]
) -> tuple[dict[str, Any], ...]:
    """The request log's view of the parts: non-text parts get the size and MIME type
    the emulator resolved (file data: the file's)."""
    resolved = iter(inputs)
    records: list[dict[str, Any]] = []
    for part in parts:
        record: dict[str, Any] = {"role": part.role, "turn": part.turn, "kind": part.kind}
        if part.kind in ("inline_data", "file_data"):
            item = next(resolved, None)
            record["mimeType"] = item.mime_type if item else part.mime_type
            record["bytes"] = item.size if item else part.size
            if part.file_uri is not None:
                record["fileUri"] = part.file_uri
        elif part.kind != "other":
            record["mimeType"] = part.mime_type
            record["bytes"] = part.size
        records.append(record)
    return tuple(records)


def _dimension(requested: object, default: int) -> int:
    """An embedding's size: the request's (checked by check_embed), else the profile's."""
    return requested if isinstance(requested, int) and requested > 0 else default


class GeminiApi(Pipeline):
    """``/{version}/models[/{model}[:verb]]`` (Gemini API) and the Vertex AI paths."""

    def routes(self) -> list[Route]:
        methods = ["GET", "POST"]
        return [
            Route("/{version}/models", AsgiEndpoint(self.list_models), methods=["GET"]),
            Route(
                "/{version}/publishers/google/models",
                AsgiEndpoint(self.list_models),
                methods=["GET"],
            ),
            Route("/{version}/models/{rest:path}", AsgiEndpoint(self.gemini), methods=methods),
            Route(
                "/{version}/projects/{project}/locations/{location}/" + _VERTEX_MODELS,
                AsgiEndpoint(self.vertex),
                methods=methods,
            ),
            Route("/{version}/" + _VERTEX_MODELS, AsgiEndpoint(self.vertex), methods=methods),
        ]

    async def list_models(self, scope: Scope, receive: Receive, send: Send) -> None:
        vertex_path = "/publishers/google/" in scope["path"]
        endpoint = self.identify(scope, "vertex" if vertex_path else "gemini_api")
        call = Call(
            self._interrupts, scope, receive, send, "", "list", self._clock.time(), endpoint.name
        )
        self._log.begin()
        await self.serve(call, lambda c: self._dispatch(c, endpoint, b""))

    async def gemini(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._model_endpoint(scope, receive, send, self.identify(scope, "gemini_api"))

    async def vertex(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = scope["path_params"]
        endpoint = self.identify(scope, "vertex", params.get("project"), params.get("location"))
        await self._model_endpoint(scope, receive, send, endpoint)

    async def _model_endpoint(
        self, scope: Scope, receive: Receive, send: Send, endpoint: RequestEndpoint
    ) -> None:
        method: str = scope["method"]
        verbs = vertex.VERTEX_VERBS if endpoint.kind == "vertex" else None
        route = route_model_path(method, scope["path_params"]["rest"], verbs)
        call = Call(
            self._interrupts,
            scope,
            receive,
            send,
            route.model,
            route.action or "generate",
            self._clock.time(),
            endpoint.name,
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
        await self.serve(call, lambda c: self._dispatch(c, endpoint, payload))

    def _lookup(self, endpoint: RequestEndpoint) -> FileLookup:
        def lookup(uri: str) -> tuple[str, int, int, str | None] | ErrorReply:
            file_id = file_uri_id(uri)
            if endpoint.kind == "vertex":
                if file_id is not None or not uri.startswith(("gs://", "http://", "https://")):
                    return invalid_file_uri(uri)  # Vertex AI reads Cloud Storage and URLs
                return ("", 0, 1, None)
            if file_id is None:
                if "youtube.com/" in uri or "youtu.be/" in uri:
                    return ("video/*", 0, 1, None)
                return invalid_file_uri(uri)
            stored = self._files.get(endpoint.name, file_id)
            if stored is None:
                return file_not_accessible(file_id)
            return (stored.meta.mime_type, stored.meta.size, stored.pages, stored.name)

        return lookup

    def _inputs(
        self, call: Call, endpoint: RequestEndpoint, parts: tuple[PartInfo, ...], first: int
    ) -> tuple[InputPart, ...] | ErrorReply:
        inputs = resolve_inputs(parts, first, self._lookup(endpoint))
        call.parts = _part_records(parts, inputs if isinstance(inputs, tuple) else ())
        return inputs

    def _not_found(self, endpoint: RequestEndpoint, model: str, action: str) -> ErrorReply:
        if endpoint.kind == "vertex":
            return vertex.publisher_model_not_found(endpoint.model_resource(model))
        return errors.model_not_found(model, ACTION_METHODS.get(action, "generateContent"))

    async def _dispatch(self, call: Call, endpoint: RequestEndpoint, payload: bytes) -> str:
        """Answer the call; returns its outcome for the request log."""
        reply = Reply(call, _DEFAULT_PROFILE, None, self.new_response_id)
        if endpoint.problem is not None:
            return await reject(reply, endpoint.problem)
        body = parse_json_object(payload)
        if body is None:
            return await reject(reply, errors.invalid_argument("Invalid JSON payload received."))
        problem: ErrorReply | None = None

        action, model = call.action, call.model
        if action != "list":
            profile = self._models.profile_for(model)
            if profile is None:
                return await reject(reply, self._not_found(endpoint, model, action))
            reply.profile = profile
            problem = check_method(model, profile, action)
            if problem is not None and endpoint.kind == "vertex":
                problem = self._not_found(endpoint, model, action)
        prompt: Prompt | None = None
        counted_inputs: tuple[InputPart, ...] = ()
        if problem is None and action in ("generate", "stream"):
            request = GenerateRequest.parse(body)
            call.tools = request.tools
            call.thinking = request.thinking.to_dict() if request.thinking else None
            first = request.first_user_parts[0].turn if request.first_user_parts else -1
            inputs = self._inputs(call, endpoint, request.parts, first)
            if isinstance(inputs, ErrorReply):
                return await reject(reply, inputs)
            prompt = reply.prompt = Prompt.of(request, inputs)
            problem = check_prompt(model, reply.profile, prompt)
        elif problem is None and action == "count_tokens":
            counted = CountTokensRequest.parse(body)
            resolved = self._inputs(call, endpoint, counted.parts, -1)
            if isinstance(resolved, ErrorReply):
                return await reject(reply, resolved)
            counted_inputs = resolved
        elif problem is None and action == "embed":
            problem = check_embed(reply.profile, self._embed_request(call, body))
        if problem is not None:
            return await reject(reply, problem)

        facts = RequestFacts(
            model=model,
            action=action,
            continuation=prompt is not None and prompt.continuation_prefix is not None,
            structured=prompt is not None and prompt.request.schema is not None,
            endpoint=endpoint.name,
            endpoint_kind=endpoint.kind,
        )
        decision = await self.run_faults(call, facts)
        if decision is not None:
            await perform(decision, reply)
            return f"fault:{call.faults[-1]}"
        return await self._answer(reply, endpoint, body, counted_inputs)

    def _embed_request(self, call: Call, body: dict[str, Any]) -> EmbedRequest:
        if call.scope["path_params"]["rest"].endswith(":predict"):
            return vertex.predict_request(body)
        return EmbedRequest.parse(body)

    async def _answer(
        self,
        reply: Reply,
        endpoint: RequestEndpoint,
        body: dict[str, Any],
        counted_inputs: tuple[InputPart, ...],
    ) -> str:
        call, profile = reply.call, reply.profile
        action = call.action
        if action in ("generate", "stream"):
            await reply.answer()
        elif action == "count_tokens":
            await reply.json(count_tokens_reply(CountTokensRequest.parse(body), counted_inputs))
        elif action == "embed" and call.scope["path_params"]["rest"].endswith(":predict"):
            items = vertex.predict_request(body).items
            dims = [_dimension(i.output_dimensionality, profile.embedding_dim) for i in items]
            vectors = [embedding_for(i.text, d) for i, d in zip(items, dims, strict=True)]
            tokens = [count_tokens(len(i.text)) for i in items]
            await reply.json(vertex.predict_response(vectors, tokens))
        elif action == "embed":
            await reply.json(embed_reply(profile, EmbedRequest.parse(body)))
        elif action == "get" and endpoint.kind == "vertex":
            name = profile.display_name or call.model
            await reply.json(vertex.publisher_model(call.model, name, profile.version))
        elif action == "get":
            await reply.json(model_json(call.model, profile))
        else:
            query = ListModelsQuery.parse(call.scope.get("query_string", b""))
            page = list_reply(self._models.listed(), query.page_size, query.offset)
            if endpoint.kind == "vertex":
                names = [m["name"].removeprefix("models/") for m in page.pop("models")]
                page["publisherModels"] = [vertex.publisher_model(n, n, "default") for n in names]
            await reply.json(page)
        return "ok"
