"""The HTTP control API under ``/_emulator`` (no API key needed): model settings, the
request log, reset."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .log import RequestRecord
from .spec import Fault, ModelSettings, Profile
from .wire import errors
from .wire.requests import normalise_model

__all__ = ["Controlled", "control_routes"]


class Controlled(Protocol):
    """What the control API needs of the emulator."""

    @property
    def requests(self) -> list[RequestRecord]: ...

    def settings(self) -> dict[str, Any]: ...

    def configure(
        self,
        model: str,
        profile: Profile | Mapping[str, Any] | None = None,
        faults: Iterable[Fault | Mapping[str, Any]] | None = None,
    ) -> None: ...

    def remove(self, model: str) -> bool: ...

    def reset(self) -> None: ...

    @property
    def files(self) -> list[dict[str, Any]]: ...

    def expire_file(self, name: str) -> bool: ...

    def delete_file(self, name: str) -> bool: ...


def _validation_error(exc: ValidationError) -> JSONResponse:
    problems = json.loads(exc.json(include_url=False))
    summary = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in problems
    )
    body = errors.error_body(
        422, f"Invalid emulator settings: {summary}", status="INVALID_ARGUMENT", details=problems
    )
    return JSONResponse(body, status_code=422)


def control_routes(emulator: Controlled) -> list[Route]:
    """The ``/_emulator/...`` routes acting on ``emulator``."""

    async def list_settings(request: Request) -> Response:
        return JSONResponse(emulator.settings())

    async def one_model(request: Request) -> Response:
        model = normalise_model(request.path_params["model"])
        if request.method == "DELETE":
            return JSONResponse({"deleted": emulator.remove(model)})
        if request.method == "PUT":
            try:
                raw = await request.json()
                settings = ModelSettings.model_validate(raw if raw is not None else {})
            except ValidationError as exc:
                return _validation_error(exc)
            except ValueError as exc:
                body = errors.error_body(400, f"Invalid JSON body: {exc}")
                return JSONResponse(body, status_code=400)
            emulator.configure(model, settings.profile, settings.faults)
        current = emulator.settings()["models"].get(model)
        if current is None:
            body = errors.error_body(404, f"Model {model} is not configured.")
            return JSONResponse(body, status_code=404)
        return JSONResponse({"model": model, **current})

    async def request_log(request: Request) -> Response:
        q = request.query_params
        records = [
            r.to_dict()
            for r in emulator.requests
            if ("model" not in q or r.model == normalise_model(q["model"]))
            and ("action" not in q or r.action == q["action"])
            and ("outcome" not in q or r.outcome == q["outcome"])
            and ("endpoint" not in q or r.endpoint == q["endpoint"])
        ]
        return JSONResponse({"requests": records})

    async def reset(request: Request) -> Response:
        emulator.reset()
        return JSONResponse({"reset": True})

    async def list_files(request: Request) -> Response:
        return JSONResponse({"files": emulator.files})

    async def one_file(request: Request) -> Response:
        name: str = request.path_params["name"]
        if request.method == "DELETE":
            return JSONResponse({"deleted": emulator.delete_file(name)})
        file_id, _, verb = name.partition(":")
        if verb != "expire":
            body = errors.error_body(404, f"Unknown file action: {verb or '(none)'}")
            return JSONResponse(body, status_code=404)
        return JSONResponse({"expired": emulator.expire_file(file_id)})

    return [
        Route("/_emulator/models", list_settings, methods=["GET"]),
        Route("/_emulator/models/{model:path}", one_model, methods=["GET", "PUT", "DELETE"]),
        Route("/_emulator/requests", request_log, methods=["GET"]),
        Route("/_emulator/reset", reset, methods=["POST"]),
        Route("/_emulator/files", list_files, methods=["GET"]),
        Route("/_emulator/files/{name}", one_file, methods=["POST", "DELETE"]),
    ]
