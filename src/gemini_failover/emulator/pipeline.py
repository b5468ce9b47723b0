"""What every emulated endpoint does around its own work: log the request, run the
faults of its model and of ``"*"``, turn interruptions and bugs into log outcomes.

:class:`Pipeline` is the base of the Gemini / Vertex AI model endpoints
(:mod:`.gemini_api`) and the Files API (:mod:`.files_api`).
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
from starlette.types import Receive, Scope, Send

from .calls import Call, ConnectionDropped, Interrupted, Interrupts
from .clock import Clock
from .decisions import Decision, Delay
from .endpoints import RequestEndpoint, identify
from .fault_kinds import RequestFacts
from .file_store import FileStore
from .log import RequestLog
from .respond import Reply
from .spec import Scenario
from .state import ModelTable
from .wire import errors
from .wire.errors import ErrorReply

__all__ = ["AsgiEndpoint", "Pipeline", "Settings", "not_found_handler", "reject"]

logger = logging.getLogger("gemini_failover.emulator")


class AsgiEndpoint:
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


class Settings:
    """The scenario-wide settings endpoints read (replaced on reset)."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario


async def reject(reply: Reply, problem: ErrorReply) -> str:
    """Answer with a rejection; returns the log outcome."""
    await reply.error(problem)
    return f"error:{problem.status}"


class Pipeline:
    """Shared machinery: the model table, the log, shutdown interrupts, the clock, the
    file store, the scenario settings and response ids."""

    def __init__(
        self,
        models: ModelTable,
        log: RequestLog,
        interrupts: Interrupts,
        clock: Clock,
        files: FileStore,
        settings: Settings,
    ) -> None:
        self._models = models
        self._log = log
        self._interrupts = interrupts
        self._clock = clock
        self._files = files
        self._settings = settings
        self._ids = itertools.count(1)

    def new_response_id(self) -> str:
        return f"emu-{next(self._ids)}"

    def identify(
        self,
        scope: Scope,
        kind: str,
        project: str | None = None,
        location: str | None = None,
    ) -> RequestEndpoint:
        scenario = self._settings.scenario
        return identify(
            scenario.endpoints,
            "vertex" if kind == "vertex" else "gemini_api",
            scope["headers"],
            scope.get("query_string", b""),
            vertex_token=scenario.vertex_token,
            project=project,
            location=location,
        )

    async def serve(self, call: Call, handler: Callable[[Call], Awaitable[str]]) -> None:
        """Run ``handler(call)`` (returns the outcome) and log the request, whatever
        happens; ``begin`` must have been logged."""
        try:
            outcome = await handler(call)
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

    async def run_faults(self, call: Call, facts: RequestFacts) -> Decision | None:
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


def request_base(scope: Scope, version: str) -> str:
    """``scheme://host/{version}`` of a request (what resource URIs start with)."""
    headers: dict[bytes, bytes] = dict(scope["headers"])
    host = headers.get(b"host", b"").decode("latin-1")
    if not host and scope.get("server"):
        server: Any = scope["server"]
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}/{version}"
