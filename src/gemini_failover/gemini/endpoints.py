"""EndpointsBackend: one Backend over several endpoints (quota pools).

A chain entry is a key, ``endpoint:model`` or a bare model on the default endpoint
(:mod:`gemini_failover.pairs`). This backend splits the key and calls that endpoint's
:class:`GeminiBackend` with the bare model. Each endpoint has its own google-genai
client (made on first use) and its own upload cache, so a file uploaded through one
endpoint is uploaded again through another (or, where there is no Files API, sent
inline or refused with the reason) and never referenced across endpoints.

:func:`build_backend` is the one place settings become a backend: the server, the
library, the gateway and the demo all use it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING

from gemini_failover import pairs
from gemini_failover.gemini.backend import GeminiBackend
from gemini_failover.gemini.clients import GEMINI_API_VERSION, ClientSpec
from gemini_failover.gemini.uploads import Opener
from gemini_failover.protocol import (
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    StreamChunk,
    Turn,
)

if TYPE_CHECKING:
    from gemini_failover.config import EndpointSettings, Settings


class EndpointsBackend:
    """Dispatches each call to the endpoint its model key names."""

    def __init__(self, backends: Mapping[str, GeminiBackend], default: str) -> None:
        if default not in backends:
            raise ValueError(f"the default endpoint {default!r} has no backend")
        self.backends = dict(backends)
        self.default = default

    def __repr__(self) -> str:
        return f"EndpointsBackend({', '.join(self.backends)}; default {self.default})"

    def route(self, key: str) -> tuple[GeminiBackend, str]:
        """The endpoint's backend and the bare model for a chain key."""
        endpoint, model = pairs.split(key)
        backend = self.backends.get(self.default if endpoint is None else endpoint)
        if backend is None:  # validated at start-up: a key outside the configuration
            raise KeyError(f"no endpoint {endpoint!r} for {key!r}")
        return backend, model

    async def warm_up(self) -> None:
        await self.backends[self.default].warm_up()  # one SDK import serves them all

    async def generate(
        self, model: str, request: GenerationRequest, *, timeout: float
    ) -> GenerationResult:
        backend, bare = self.route(model)
        return await backend.generate(bare, request, timeout=timeout)

    def stream(
        self,
        model: str,
        request: GenerationRequest,
        *,
        timeout: float,
        deadline: float | None = None,
    ) -> AsyncIterator[StreamChunk]:
        backend, bare = self.route(model)
        return backend.stream(bare, request, timeout=timeout, deadline=deadline)

    async def count_tokens(self, model: str, contents: tuple[Turn, ...], *, timeout: float) -> int:
        backend, bare = self.route(model)
        return await backend.count_tokens(bare, contents, timeout=timeout)

    async def embed(
        self, model: str, texts: tuple[str, ...], *, timeout: float
    ) -> list[list[float]]:
        backend, bare = self.route(model)
        return await backend.embed(bare, texts, timeout=timeout)

    async def model_info(self, model: str, *, timeout: float) -> ModelInfo:
        backend, bare = self.route(model)
        return await backend.model_info(bare, timeout=timeout)

    async def aclose(self) -> None:
        for backend in self.backends.values():
            await backend.aclose()


def client_spec(endpoint: EndpointSettings) -> ClientSpec:
    """The client an endpoint's settings describe (secrets unwrapped here only)."""
    key = endpoint.api_key.get_secret_value().strip() if endpoint.api_key else None
    token = endpoint.access_token.get_secret_value().strip() if endpoint.access_token else None
    if endpoint.kind == "gemini_api":
        return ClientSpec(
            api_key=key or "",
            base_url=endpoint.base_url,
            api_version=endpoint.api_version or GEMINI_API_VERSION,
        )
    return ClientSpec(
        api_key=key or None,
        base_url=endpoint.base_url,
        api_version=endpoint.api_version,
        vertex=True,
        project=endpoint.project,
        location=endpoint.location,
        access_token=token or None,
    )


def build_backend(
    settings: Settings, *, opener: Opener | None = None, spool_dir: str | None = None
) -> EndpointsBackend:
    """A backend over every endpoint the chains use (clients made on first use)."""
    backends = {
        name: GeminiBackend(spec=client_spec(endpoint), opener=opener, spool_dir=spool_dir)
        for name, endpoint in settings.endpoints_in_use().items()
    }
    default = settings.default_endpoint_name
    if default not in backends:  # no bare model in the chains: still a valid default
        table = settings.endpoint_table()
        backends[default] = GeminiBackend(spec=client_spec(table[default]), opener=opener)
    return EndpointsBackend(backends, default)


__all__ = ["EndpointsBackend", "build_backend", "client_spec"]
