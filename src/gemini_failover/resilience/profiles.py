"""Model profiles: each model's limits from ``models.get``, fetched once in the
background (eagerly from start-up, never blocking it; else when a request first needs
the model), merged with the configuration overrides and any limit the model stated in
a 400 (``ModelState.set_profile``) into ``ModelState.profile``."""

from __future__ import annotations

import asyncio
import contextlib

from gemini_failover.config import Settings
from gemini_failover.protocol import Backend
from gemini_failover.resilience.capabilities import ModelProfile, Needs, pair_profile
from gemini_failover.resilience.clock import Clock
from gemini_failover.resilience.errors import UPSTREAM_ERRORS
from gemini_failover.resilience.model import ModelState

#: Wait for models.get when building a profile; on failure, defaults are used.
PROFILE_TIMEOUT = 2.0
PROFILE_RETRY_SECONDS = 60.0
#: Every Gemini model since 1.0 takes at least 32k input and 8k output tokens; a
#: request within these never waits for a model's limits to be fetched.
SAFE_INPUT_TOKENS = 32_768
SAFE_OUTPUT_TOKENS = 8_192


class ProfileFetcher:
    def __init__(self, backend: Backend, settings: Settings, clock: Clock) -> None:
        self._backend = backend
        self._settings = settings
        self._clock = clock
        self._tasks: dict[str, asyncio.Task[None]] = {}  # fetches in flight, by model
        self._retry_at: dict[str, float] = {}  # after a failed fetch (monotonic)

    async def profile(self, state: ModelState, needs: Needs, deadline: float) -> ModelProfile:
        """The model's profile. The fetch runs in the background and requests do not
        wait for it, unless the request is big enough for the limits to matter (over
        SAFE_INPUT_TOKENS / SAFE_OUTPUT_TOKENS): then it waits (briefly, within the
        ``deadline``) rather than risk routing a long prompt to a model with a small
        context window."""
        if state.info is not None:  # the hot path: fetched long ago
            return state.profile
        if self._clock.monotonic() >= self._retry_at.get(state.name, 0.0):
            task = self._tasks.get(state.name)
            if task is None:
                task = self._tasks[state.name] = asyncio.create_task(self._fetch(state))
            if (
                needs.prompt_tokens > SAFE_INPUT_TOKENS
                or needs.features  # thinking: models.get says whether the model thinks
                or (needs.output_tokens or 0) > SAFE_OUTPUT_TOKENS
            ):
                timeout = max(0.0, min(PROFILE_TIMEOUT, deadline - self._clock.monotonic()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(task), timeout)
        return state.profile

    def start_all(self, states: list[ModelState]) -> None:
        """Start fetching every profile not known yet, in the background (start-up:
        the limits are known before the first long prompt, and start-up never waits)."""
        now = self._clock.monotonic()
        for state in states:
            due = state.info is None and now >= self._retry_at.get(state.name, 0.0)
            if due and state.name not in self._tasks:
                self._tasks[state.name] = asyncio.create_task(self._fetch(state))

    async def fetch_all(self, states: list[ModelState], timeout: float) -> None:
        """Start fetching every profile not known yet (shared with requests) and wait up
        to ``timeout`` s for them; the fetches go on in the background past it."""
        now = self._clock.monotonic()
        tasks = []
        for state in states:
            if state.info is not None or now < self._retry_at.get(state.name, 0.0):
                continue
            task = self._tasks.get(state.name)
            if task is None:
                task = self._tasks[state.name] = asyncio.create_task(self._fetch(state))
            tasks.append(task)
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)  # never cancels them

    async def _fetch(self, state: ModelState) -> None:
        try:
            state.info = await self._backend.model_info(state.name, timeout=PROFILE_TIMEOUT)
        except UPSTREAM_ERRORS:
            pass  # unknown limits: serve on overrides/defaults, ask again later
        else:
            state.set_profile(pair_profile(self._settings, state.name, state.info))
        finally:
            self._tasks.pop(state.name, None)
            if state.info is None:  # failed (or a bug, which the task still carries)
                self._retry_at[state.name] = self._clock.monotonic() + PROFILE_RETRY_SECONDS

    async def aclose(self) -> None:
        """Cancel the fetches in flight."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
