"""The narrow interface between the failover manager and a Gemini backend.

Plain frozen dataclasses and one Protocol: no SDK types cross this line, so the
manager and everything above it are testable without google.genai and without
sockets (httpx's lesson: transport at the bottom, behind a narrow interface).

Backends raise ``google.api_core.exceptions.GoogleAPICallError`` subclasses (see
``gemini_failover.gemini.errors``) and nothing else for upstream failures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["user", "model"]


@dataclass(frozen=True, slots=True)
class Turn:
    role: Role
    text: str


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One generation request, independent of the model that will serve it."""

    contents: tuple[Turn, ...]
    system_instruction: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    stop_sequences: tuple[str, ...] = ()
    #: A JSON Schema: ask for structured (JSON) output that validates against it.
    response_schema: Mapping[str, Any] | None = None

    @staticmethod
    def from_prompt(prompt: str, **kwargs: Any) -> GenerationRequest:
        return GenerationRequest(contents=(Turn("user", prompt),), **kwargs)

    @property
    def structured(self) -> bool:
        return self.response_schema is not None

    def prompt_chars(self) -> int:
        n = sum(len(t.text) for t in self.contents)
        return n + len(self.system_instruction or "")


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0


@dataclass(frozen=True, slots=True)
class GenerationResult:
    text: str
    finish_reason: str
    usage: Usage = field(default_factory=Usage)
    model_version: str | None = None


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """A text delta. The last chunk of a complete stream has ``finish_reason`` set."""

    text: str
    finish_reason: str | None = None
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What ``models.get`` says about a model."""

    name: str
    input_token_limit: int | None = None
    output_token_limit: int | None = None
    supported_methods: tuple[str, ...] = ()


class Backend(Protocol):
    """One Gemini endpoint. Every method raises only GoogleAPICallError subclasses
    for upstream trouble; ``timeout`` is seconds for the whole attempt."""

    async def generate(
        self, model: str, request: GenerationRequest, *, timeout: float
    ) -> GenerationResult: ...

    def stream(
        self,
        model: str,
        request: GenerationRequest,
        *,
        timeout: float,
        deadline: float | None = None,
    ) -> AsyncIterator[StreamChunk]:
        """``timeout``: longest wait for one chunk; ``deadline``: event-loop time
        (``loop.time()``) by which the whole stream must end."""
        ...

    async def count_tokens(
        self, model: str, contents: tuple[Turn, ...], *, timeout: float
    ) -> int: ...

    async def embed(
        self, model: str, texts: tuple[str, ...], *, timeout: float
    ) -> list[list[float]]: ...

    async def model_info(self, model: str, *, timeout: float) -> ModelInfo: ...

    async def aclose(self) -> None: ...
