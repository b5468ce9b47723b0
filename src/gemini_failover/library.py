"""The failover manager as a Python library: build it from settings, call it, close it.

Applications that call Gemini in-process (no MCP, no gateway) get the same failover as
the server::

    from gemini_failover import GenerationRequest, failover_manager

    async with failover_manager(models=["gemini-2.5-pro", "gemini-2.5-flash"]) as gemini:
        result = await gemini.generate(GenerationRequest.from_prompt("Hello"))
        print(result.text, result.provenance.served_by, result.provenance.failovers)

Keyword arguments win (what the code says), then the environment (``GEMINI_API_KEY``,
``GEMINI_FAILOVER_*``), then an optional TOML file, then defaults; a bad setting raises
:class:`~gemini_failover.config.ConfigError` naming it. The manager shares its
model state through Redis when ``redis_url`` is set, like every server instance.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from gemini_failover.config import ConfigError, Settings, describe_error, load_settings
from gemini_failover.protocol import Backend
from gemini_failover.resilience.manager import FailoverManager
from gemini_failover.state import StateStore


def create_manager(
    settings: Settings | None = None,
    *,
    config_file: str | Path | None = None,
    backend: Backend | None = None,
    store: StateStore | None = None,
    **overrides: Any,
) -> FailoverManager:
    """A FailoverManager over Gemini (google-genai, loaded on first use). No I/O: call
    ``await manager.start()`` before use and ``await manager.aclose()`` after, or use
    :func:`failover_manager`. ``backend``/``store`` replace the Gemini backend or the
    state store (Redis when ``redis_url`` is set, else memory)."""
    if settings is None:
        settings = _explicit(load_settings(config_file), overrides)
    elif overrides or config_file is not None:
        raise TypeError("pass either settings or config_file/overrides, not both")
    if backend is None:
        from gemini_failover.gemini.endpoints import build_backend

        for name in settings.endpoints_without_credentials():
            if name in settings.endpoints:
                raise ConfigError(f"endpoints.{name}.api_key: the endpoint has no API key")
            raise ConfigError("api_key: no Gemini API key (set GEMINI_API_KEY)")
        backend = build_backend(settings)
    if store is None and settings.redis_url is not None:
        from gemini_failover.state.redis import RedisStateStore

        store = RedisStateStore.from_settings(settings)
    return FailoverManager(settings, backend, store=store)


@contextlib.asynccontextmanager
async def failover_manager(
    settings: Settings | None = None,
    *,
    config_file: str | Path | None = None,
    **overrides: Any,
) -> AsyncIterator[FailoverManager]:
    """``async with failover_manager(...) as gemini``: a started manager, closed (its
    HTTP clients, background fetches and Redis connections) on the way out."""
    manager = create_manager(settings, config_file=config_file, **overrides)
    await manager.start()
    try:
        yield manager
    finally:
        await manager.aclose()


class _ExplicitFirst(Settings):
    """Settings where the values passed in beat the environment (the server's order is
    the other way round, so that an ``env`` block can override a shared file)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings


def _explicit(base: Settings, overrides: dict[str, Any]) -> Settings:
    """``base`` (environment over file over defaults) with ``overrides`` on top."""
    if not overrides:
        return base
    try:
        return _ExplicitFirst(**{**base.model_dump(), **overrides})
    except ValidationError as exc:
        raise ConfigError(describe_error(exc)) from None
