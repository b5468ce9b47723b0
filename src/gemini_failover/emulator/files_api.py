"""The Files API endpoints (Gemini API only, as on Google): the resumable upload,
``files.get``, ``files.list`` and ``files.delete``, with faults and the request log.

Files belong to the endpoint (API key, see :mod:`.endpoints`) they were uploaded with.
Faults are those of ``"*"`` (these requests have no model); their actions are
``upload`` (the start request), ``upload_data`` (each chunk), ``file_get``,
``file_list`` and ``file_delete``. Every answer on the upload URL, errors included,
carries ``X-Goog-Upload-Status`` (``final`` unless the upload goes on), because the SDK
retries, with pauses, a chunk whose answer has none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from .calls import Call
from .decisions import perform
from .endpoints import RequestEndpoint
from .fault_kinds import RequestFacts
from .file_store import StoredFile
from .pipeline import AsgiEndpoint, Pipeline, reject, request_base
from .respond import Reply
from .spec import Profile
from .wire import errors
from .wire.errors import ErrorReply
from .wire.files import (
    UPLOAD_STATUS,
    UPLOAD_URL,
    UploadChunk,
    UploadStart,
    file_not_accessible,
    file_resource,
    list_files_response,
)
from .wire.requests import Action, ListModelsQuery, parse_json_object
from .wire.transport import ClientDisconnected, read_body

__all__ = ["FilesApi"]

_DEFAULT_PROFILE = Profile()


def _with_upload_status(send: Send, status: list[bytes]) -> Send:
    """A ``send`` that adds ``X-Goog-Upload-Status: status[0]`` to the answer."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {
                **message,
                "headers": [*message["headers"], (UPLOAD_STATUS.encode(), status[0])],
            }
        await send(message)

    return wrapped


class FilesApi(Pipeline):
    """``/upload/{version}/files`` and ``/{version}/files[/{id}]``."""

    def routes(self) -> list[Route]:
        return [
            Route("/upload/{version}/files", AsgiEndpoint(self.upload), methods=["POST"]),
            Route("/{version}/files", AsgiEndpoint(self.list_files), methods=["GET"]),
            Route(
                "/{version}/files/{file_id}",
                AsgiEndpoint(self.one_file),
                methods=["GET", "DELETE"],
            ),
        ]

    async def _run(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        action: Action,
        work: Callable[[Reply, RequestEndpoint, bytes], Awaitable[str]],
        endpoint: RequestEndpoint | None = None,
    ) -> None:
        if endpoint is None:
            endpoint = self.identify(scope, "gemini_api")
        call = Call(
            self._interrupts, scope, receive, send, "", action, self._clock.time(), endpoint.name
        )
        self._log.begin()
        try:
            payload = await read_body(receive) if scope["method"] == "POST" else b""
        except ClientDisconnected:
            call.close()
            self._log.add(call.record("client_disconnected"))
            return

        async def handle(c: Call) -> str:
            reply = Reply(c, _DEFAULT_PROFILE, None, self.new_response_id)
            if endpoint.problem is not None:
                return await reject(reply, endpoint.problem)
            facts = RequestFacts(
                model="", action=action, endpoint=endpoint.name, endpoint_kind=endpoint.kind
            )
            decision = await self.run_faults(c, facts)
            if decision is not None:
                await perform(decision, reply)
                return f"fault:{c.faults[-1]}"
            return await work(reply, endpoint, payload)

        await self.serve(call, handle)

    # ------------------------------------------------------------------ upload

    async def upload(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        upload_id = query.get("upload_id")
        if upload_id is None:
            await self._run(scope, receive, send, "upload", self._start)
            return
        status = [b"final"]
        wrapped = _with_upload_status(send, status)

        async def chunk(reply: Reply, endpoint: RequestEndpoint, payload: bytes) -> str:
            result = self._files.append(upload_id, UploadChunk.parse(scope["headers"]), payload)
            if isinstance(result, ErrorReply):
                return await reject(reply, result)
            if result is None:
                status[0] = b"active"
                await reply.call.replier.start(200, [(b"content-length", b"0")])
                await reply.call.replier.send({"type": "http.response.body", "body": b""})
                return "ok"
            reply.call.file = result.name
            await reply.json({"file": file_resource(result.meta)})
            return "ok"

        # The upload URL is the credential (the SDK sends no API key with the chunks):
        # the chunk belongs to the endpoint the session was started on.
        owner = self._files.session_endpoint(upload_id) or "gemini_api"
        endpoint = RequestEndpoint("gemini_api", owner)
        await self._run(scope, receive, wrapped, "upload_data", chunk, endpoint)

    async def _start(self, reply: Reply, endpoint: RequestEndpoint, payload: bytes) -> str:
        call = reply.call
        body = parse_json_object(payload)
        if body is None:
            return await reject(reply, errors.invalid_argument("Invalid JSON payload received."))
        version = call.scope["path_params"]["version"]
        base = request_base(call.scope, version)
        started = self._files.start(
            endpoint.name, UploadStart.parse(call.scope["headers"], body), base
        )
        if isinstance(started, ErrorReply):
            return await reject(reply, started)
        root = base.rsplit("/", 1)[0]
        url = f"{root}/upload/{version}/files?upload_id={started}&upload_protocol=resumable"
        await call.replier.start(
            200,
            [
                (UPLOAD_URL.encode(), url.encode()),
                (UPLOAD_STATUS.encode(), b"active"),
                (b"x-goog-upload-chunk-granularity", b"8388608"),
                (b"content-length", b"0"),
            ],
        )
        await call.replier.send({"type": "http.response.body", "body": b""})
        return "ok"

    # ------------------------------------------------------------------ get, list, delete

    async def list_files(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def listing(reply: Reply, endpoint: RequestEndpoint, payload: bytes) -> str:
            query = ListModelsQuery.parse(scope.get("query_string", b""))
            size = query.page_size if b"pageSize" in scope.get("query_string", b"") else 10
            files = self._files.listed(endpoint.name)
            page = files[query.offset : query.offset + size]
            more = query.offset + size < len(files)
            resources = [file_resource(f.meta) for f in page]
            token = str(query.offset + size) if more else None
            await reply.json(list_files_response(resources, token))
            return "ok"

        await self._run(scope, receive, send, "file_list", listing)

    async def one_file(self, scope: Scope, receive: Receive, send: Send) -> None:
        file_id: str = scope["path_params"]["file_id"]
        action: Action = "file_delete" if scope["method"] == "DELETE" else "file_get"

        async def work(reply: Reply, endpoint: RequestEndpoint, payload: bytes) -> str:
            reply.call.file = f"files/{file_id}"
            stored: StoredFile | None = self._files.get(endpoint.name, file_id)
            if stored is None:
                return await reject(reply, file_not_accessible(file_id))
            if action == "file_delete":
                self._files.delete(endpoint.name, file_id)
                await reply.json({})
            else:
                await reply.json(file_resource(stored.meta))
            return "ok"

        await self._run(scope, receive, send, action, work)
