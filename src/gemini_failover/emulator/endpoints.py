"""Which endpoint a request came to, and whether its credentials are accepted.

The emulator serves two kinds of endpoint on one port: ``gemini_api`` (the Gemini API
paths, any API key) and ``vertex`` (the Vertex AI paths: project mode with the
configured bearer token, express mode with any API key). A scenario may name endpoints
(``{"name": "backup", "kind": "gemini_api", "api_key": "key-b"}``) so that two API keys,
or two Vertex projects, are two endpoints: a request is logged under, files belong to,
and faults with ``endpoint`` are addressed to the first named endpoint of its kind whose
given fields all match, else the kind itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .spec import EndpointSpec
from .wire import errors, vertex
from .wire.errors import ErrorReply
from .wire.requests import api_key, has_api_key

__all__ = ["EndpointKind", "RequestEndpoint", "identify"]

EndpointKind = Literal["gemini_api", "vertex"]


@dataclass(frozen=True, slots=True)
class RequestEndpoint:
    """Where a request came: kind, endpoint name, Vertex project and location (project
    mode) and the credential problem to answer (None: accepted)."""

    kind: EndpointKind
    name: str
    project: str | None = None
    location: str | None = None
    problem: ErrorReply | None = None

    def model_resource(self, model: str) -> str:
        """How this endpoint names a model in errors."""
        if self.kind == "gemini_api":
            return f"models/{model}"
        if self.project is not None:
            return (
                f"projects/{self.project}/locations/{self.location}/publishers/google/"
                f"models/{model}"
            )
        return f"publishers/google/models/{model}"


def _matches(
    spec: EndpointSpec, key: str | None, project: str | None, location: str | None
) -> bool:
    return (
        (spec.api_key is None or spec.api_key == key)
        and (spec.project is None or spec.project == project)
        and (spec.location is None or spec.location == location)
    )


def identify(
    specs: Sequence[EndpointSpec],
    kind: EndpointKind,
    headers: list[tuple[bytes, bytes]],
    query_string: bytes,
    *,
    vertex_token: str,
    project: str | None = None,
    location: str | None = None,
) -> RequestEndpoint:
    """The endpoint of a request, with its credential check done."""
    key = api_key(headers, query_string)
    name: str = kind
    for spec in specs:
        if spec.kind == kind and _matches(spec, key, project, location):
            name = spec.name
            break
    problem: ErrorReply | None = None
    if kind == "gemini_api":
        if not has_api_key(headers, query_string):
            problem = errors.missing_api_key()
    elif project is not None:  # project mode: OAuth
        if vertex.bearer_token(headers) != vertex_token:
            problem = vertex.invalid_token()
    elif key is None and vertex.bearer_token(headers) != vertex_token:  # express mode
        problem = vertex.invalid_token()
    return RequestEndpoint(kind, name, project, location, problem)
