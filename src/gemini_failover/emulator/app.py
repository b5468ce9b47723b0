"""The emulator: Gemini REST endpoints with fault injection, a request log and a control API.

One :class:`Emulator` composes the model settings (:mod:`.state`), the request log
(:mod:`.log`), the Gemini endpoints (:mod:`.gemini_api`) and the control API
(:mod:`.control`) into a Starlette app (``emulator.app``). Run it with
:class:`~gemini_failover.emulator.server.EmulatorServer` (in the current event loop),
:class:`~gemini_failover.emulator.server.EmulatorThread` (in a background thread) or
``gemini-failover emulate``. State is lock-guarded so that a test thread can reconfigure
an emulator served from another thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException

from .calls import ABORT_SCOPE_KEY, ConnectionDropped, Interrupts
from .clock import Clock, SystemClock
from .control import control_routes
from .file_store import FileStore
from .files_api import FilesApi
from .gemini_api import GeminiApi
from .log import RequestLog, RequestRecord
from .pipeline import Settings, not_found_handler
from .spec import Fault, Profile, Scenario
from .state import ModelTable, as_scenario

__all__ = ["ABORT_SCOPE_KEY", "ConnectionDropped", "Emulator", "RequestRecord"]


class Emulator:
    """A Gemini REST API emulator with per-model profiles and fault injection.

    ``Emulator(scenario)`` takes a :class:`~gemini_failover.emulator.spec.Scenario` or its
    dict form (``{"models": {name: {"profile": {...}, "faults": [...]}}}``). The settings
    of the model ``"*"`` are the defaults: its profile serves every model that is not
    configured, and its faults apply to every model after the model's own faults.
    ``clock`` (default: the system's) is the time rate limits, quota windows and the
    request log go by; a :class:`~gemini_failover.emulator.clock.ManualClock` lets a test
    set it.
    """

    def __init__(
        self,
        scenario: Scenario | Mapping[str, Any] | None = None,
        *,
        max_records: int = 100_000,
        clock: Clock | None = None,
    ) -> None:
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._scenario = as_scenario(scenario)
        self._models = ModelTable(self._scenario, self.clock)
        self._log = RequestLog(max_records)
        self._interrupts = Interrupts()
        self._files = FileStore(self._scenario.files, self.clock)
        self._settings = Settings(self._scenario)
        shared = (
            self._models,
            self._log,
            self._interrupts,
            self.clock,
            self._files,
            self._settings,
        )
        api = GeminiApi(*shared)
        files_api = FilesApi(*shared)
        self.app: Starlette = Starlette(
            routes=[*control_routes(self), *files_api.routes(), *api.routes()],
            exception_handlers={HTTPException: not_found_handler},
        )

    # ------------------------------------------------------------------ configuration

    def configure(
        self,
        model: str,
        profile: Profile | Mapping[str, Any] | None = None,
        faults: Iterable[Fault | Mapping[str, Any]] | None = None,
    ) -> None:
        """Replace one model's settings (``"*"`` for the defaults). Raises ValueError
        (pydantic ValidationError) for an invalid profile or fault."""
        self._models.configure(model, profile, faults)

    def remove(self, model: str) -> bool:
        """Forget one model's settings; returns whether it was configured."""
        return self._models.remove(model)

    def reset(self) -> None:
        """Restore the scenario the emulator was built with and clear the request log
        and the Files API's files."""
        self._models.load(self._scenario)
        self._files.reset(self._scenario.files)
        self._log.clear()

    def clear_requests(self) -> None:
        """Clear the request log only."""
        self._log.clear()

    def settings(self) -> dict[str, Any]:
        """Current profiles and faults (with remaining counts), as the control API shows."""
        return self._models.settings()

    def profile_for(self, model: str) -> Profile | None:
        """The profile serving this model, or None when the model is not served."""
        return self._models.profile_for(model)

    # ------------------------------------------------------------------ files

    @property
    def vertex_token(self) -> str:
        """The OAuth bearer token the Vertex AI paths accept."""
        return self._scenario.vertex_token

    @property
    def files(self) -> list[dict[str, Any]]:
        """The Files API's files (every endpoint's, expired ones left out): each a File
        resource plus ``endpoint`` (its owner) and ``pages`` (PDFs)."""
        return [f.to_dict() for f in self._files.all_files()]

    def expire_file(self, name: str) -> bool:
        """Make a file (``files/{id}`` or its id) expire now: it is gone, as on Gemini
        after 48 hours, for ``files.get`` and for ``fileData`` parts alike."""
        return self._files.expire(name)

    def delete_file(self, name: str) -> bool:
        """Delete a file whatever endpoint owns it."""
        return self._files.remove(name)

    # ------------------------------------------------------------------ request log

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the request log, oldest first."""
        return self._log.snapshot()

    @property
    def in_flight(self) -> int:
        """Requests received and not answered yet (hanging ones included)."""
        return self._log.in_flight

    def count(
        self,
        model: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        status: int | None = None,
        endpoint: str | None = None,
    ) -> int:
        """How many logged requests match all the given fields."""
        return self._log.count(model, action, outcome, status, endpoint)

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
        return await self._log.wait_for(predicate, timeout)

    # ------------------------------------------------------------------ shutdown

    def release_hung_requests(self) -> int:
        """End every request that is hanging or waiting on a latency fault.

        Such a request's connection is closed without an answer and logged as
        ``fault:hang`` (hang) or ``server_shutdown`` (latency). Servers call this when
        they shut down; returns how many requests were released.
        """
        return self._interrupts.release_all()
